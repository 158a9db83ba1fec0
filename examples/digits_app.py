"""Your own Serve deployment as a rollout version (``app:``, the tensor interface): a
scikit-learn digits classifier on ``rayrollout``'s ``TensorModel``.

::

    - name: v2-app
      app:
        import_path: examples.digits_app:app_builder
        args: {artifact: models/artifacts/sklearn-digits.joblib}

rayrollout builds the application with ``app_builder(args)`` (as ``serve run`` builds a
config's application), gives its ingress deployment the version's Serve options
(``num_replicas``, ``autoscaling_config``, ``ray_actor_options``...) and calls it by handle:
``predict(inputs)`` with the arrays of one request (batched with its neighbours by
``TensorModel``), ``predict_many(items)`` with several requests the router sent together, and
``signature()``. The router validates every request against
``inputs`` before it reaches the deployment.

It runs on its own too: ``serve run examples.digits_app:app_builder
artifact=models/artifacts/sklearn-digits.joblib`` (then call it by handle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application

from examples.sklearn_runtime import classify, load_classifier, signature_of
from rayrollout.errors import ModelLoadError
from rayrollout.runtime import TensorSpec
from rayrollout.serving.tensor import TensorModel
from rayrollout.spec.serving import project_root

N_FEATURES, N_CLASSES = 64, 10


class SklearnDigits(TensorModel):
    """8x8 digits in (64 pixels in 0..16), their class and class probabilities out."""

    inputs = [TensorSpec("input", "FP32", (-1, N_FEATURES))]
    outputs = [TensorSpec("label", "INT64", (-1,)),
               TensorSpec("probabilities", "FP32", (-1, N_CLASSES))]
    task = "classification"

    def __init__(self, artifact: str, max_batch_size: int = 32) -> None:
        super().__init__(max_batch_size=max_batch_size)
        self.model = load_classifier(artifact)
        declared = self.signature()
        loaded = signature_of(self.model).to_dict()
        if loaded != declared:  # fail the replica's start, before any traffic
            raise ModelLoadError(f"{artifact!r} takes and gives {loaded}, not the declared "
                                 f"{declared}")

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return classify(self.model, inputs["input"])


# Its Serve deployment, named after the class. No options here: the version's (replicas, CPUs,
# ...) apply. (``@serve.deployment`` on the class does the same; this form keeps both types.)
digits_deployment = serve.deployment()(SklearnDigits)


class DigitsAppArgs(BaseModel):
    """``app.args`` of the version. ``artifact``: a joblib file; a relative path resolves
    against the project root (``rayrollout.spec.serving.project_root``), wherever the builder
    runs."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    artifact: str = Field(min_length=1, max_length=4096)
    max_batch_size: int = Field(32, ge=1, le=4096)

    def artifact_path(self) -> Path:
        p = Path(self.artifact)
        return p if p.is_absolute() else project_root() / p


def app_builder(args: dict[str, Any]) -> Application:
    """The application of one version: ``args`` as ``DigitsAppArgs`` (an unknown or bad field
    fails here, naming it). A missing artifact fails here too, not in a replica."""
    a = DigitsAppArgs.model_validate(args)
    path = a.artifact_path()
    if not path.is_file():
        raise FileNotFoundError(f"app.args.artifact: model artifact not found: {str(path)!r}")
    return digits_deployment.bind(str(path), max_batch_size=a.max_batch_size)
