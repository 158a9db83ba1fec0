"""Your own Serve HTTP application as a rollout version (``app:``, the pass-through ``http``
interface): a text classifier that says which scikit-learn dataset a sentence describes.

::

    - name: t2
      app:
        import_path: examples.text_app:app_builder
        args: {artifact: models/artifacts/text-v2.joblib}
        interface: http
        prediction: {pointer: /label, labels: [iris, wine, breast_cancer, diabetes, digits,
                                               linnerud]}

Its HTTP API, under the model's route prefix (the router passes every request through
unchanged and adds ``x-model-version``, ``x-routing-epoch`` and ``x-rollout-request-id``):

* ``POST /classify`` ``{"text": "..."}`` -> ``{"label": "<dataset>", "confidence": 0.93}``:
  ``label`` is the class of the largest probability, ``confidence`` that probability
  (rounded to 4 digits). A body that is not a JSON object with exactly a string ``text`` of
  1 to 10,000 characters is a 422 with FastAPI's JSON error naming the field (the router
  counts it as rejected, never as an error of the version).
* ``GET /healthz`` -> ``{"status": "ok", "labels": [...]}`` (the classes the model knows).

The artifact is a scikit-learn pipeline saved with joblib (``models/build_text_models.py``)
whose ``classes_`` are the class names. ``joblib.load`` unpickles, which runs code: load only
artifacts you trust.

It runs on its own too: ``serve run examples.text_app:app_builder
artifact=models/artifacts/text-v1.joblib``, then ``curl --json '{"text": "petal width in cm"}'
localhost:8000/classify``. The body must be sent as JSON (``content-type: application/json``, or
none): FastAPI does not read a form (``curl -d``) as JSON, and answers it with a 422.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application
from ray.serve.deployment import Deployment

from rayrollout.errors import ModelLoadError
from rayrollout.spec.serving import project_root

MAX_TEXT_CHARS = 10_000


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class ClassifyResponse(BaseModel):
    label: str
    confidence: float


def load_text_model(path: str | os.PathLike[str]) -> Any:
    """The pipeline saved at ``path``, checked to be a fitted text classifier this app can
    serve: ``predict_proba`` and class names (strings) as ``classes_``."""
    import joblib

    try:
        model = joblib.load(path)
    except Exception as e:  # unpickling raises whatever the pickled classes raise
        raise ModelLoadError(f"cannot load {os.fspath(path)!r} with joblib: {e}") from e
    classes = getattr(model, "classes_", None)
    if not hasattr(model, "predict_proba") or classes is None:
        raise ModelLoadError(f"{os.fspath(path)!r} holds a {type(model).__name__}, not a fitted "
                             "classifier (no predict_proba or classes_)")
    if not all(isinstance(c, str) for c in classes):
        raise ModelLoadError(f"{os.fspath(path)!r}: classes must be names (strings), got "
                             f"{list(classes)[:5]!r}")
    return model


def classify(model: Any, text: str) -> ClassifyResponse:
    """The answer for one text: the class of the largest probability, and that probability."""
    proba = np.asarray(model.predict_proba([text]))[0]
    best = int(np.argmax(proba))
    return ClassifyResponse(label=str(model.classes_[best]),
                            confidence=round(float(proba[best]), 4))


def make_app(model: Any) -> FastAPI:
    """The HTTP API around a loaded ``model`` (any object ``classify`` takes): what a replica
    serves, and what tests call in-process."""
    api = FastAPI(title="text classifier")
    labels = [str(c) for c in model.classes_]

    @api.post("/classify")
    def _classify(request: ClassifyRequest) -> ClassifyResponse:
        # a plain def: FastAPI runs it on a worker thread, off the replica's event loop
        return classify(model, request.text)

    @api.get("/healthz")
    def _healthz() -> dict[str, Any]:
        return {"status": "ok", "labels": labels}

    return api


class TextClassifier:
    """One replica: loads the model, then serves ``make_app(model)`` (Serve calls
    ``__serve_build_asgi_app__`` once the constructor has returned)."""

    def __init__(self, artifact: str) -> None:
        self.model = load_text_model(artifact)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return make_app(self.model)


# No options here: the version's (replicas, CPUs, ...) apply. Made by calls rather than class
# decorators, which type checkers do not apply to a class.
text_classifier: Deployment = serve.deployment()(serve.ingress()(TextClassifier))


class TextAppArgs(BaseModel):
    """``app.args`` of the version: ``artifact``, a joblib file; a relative path resolves
    against the project root (``rayrollout.spec.serving.project_root``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    artifact: str = Field(min_length=1, max_length=4096)


def app_builder(args: dict[str, Any]) -> Application:
    """The application of one version: ``args`` as ``TextAppArgs`` (an unknown or bad field
    fails here, naming it). A missing artifact fails here too, not in a replica."""
    a = TextAppArgs.model_validate(args)
    path = Path(a.artifact)
    if not path.is_absolute():
        path = project_root() / path
    if not path.is_file():
        raise FileNotFoundError(f"app.args.artifact: model artifact not found: {str(path)!r}")
    return text_classifier.bind(str(path))
