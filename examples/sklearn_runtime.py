"""``SklearnRuntime``: a scikit-learn classifier saved with joblib, served as a rayrollout
version of kind ``runtime: python``.

::

    - name: v2-sklearn
      runtime: python
      runtime_class: examples.sklearn_runtime:SklearnRuntime
      artifact: models/artifacts/sklearn-digits.joblib
      runtime_args: {threads: 1}

Each replica fetches the artifact and builds ``SklearnRuntime(local_path, device=...,
**runtime_args)``; rayrollout's own replica batches concurrent requests into one ``predict``.

Guarantees:

* The signature is read from the loaded estimator: input ``input`` FP32 ``[-1,
  n_features_in_]``; outputs ``label`` INT64 ``[-1]`` (a class of ``classes_``) and
  ``probabilities`` FP32 ``[-1, n_classes]`` (columns in the order of ``classes_``); task
  classification. ``label`` is always the class of the largest probability of its row.
* An estimator that cannot give that (no ``predict_proba``, classes that are not integers, no
  ``n_features_in_``) fails at load with ``ModelLoadError``, before any traffic.
* A batch without ``input``, or of the wrong width, is a ``ValueError`` (bad input); an
  estimator that raises on a valid batch is a ``PredictError`` (a failure of the version).
* ``device="cuda"`` fails with ``DeviceUnavailableError``: scikit-learn runs on CPU only, and a
  version that asked for a GPU is never served on a CPU silently.

``joblib.load`` unpickles, which runs code: load only artifacts you trust, and pin them with the
version's ``sha256``.
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import numpy as np
from threadpoolctl import ThreadpoolController

from rayrollout.errors import DeviceUnavailableError, ModelLoadError, PredictError
from rayrollout.runtime import ModelSignature, TensorSpec

INPUT = "input"


def load_classifier(path: str | os.PathLike[str]) -> Any:
    """The estimator saved at ``path`` (``joblib.dump``), checked to be a classifier this
    module can serve: ``predict_proba``, integer ``classes_`` and ``n_features_in_``."""
    try:
        model = joblib.load(path)
    except Exception as e:  # unpickling raises whatever the pickled classes raise
        raise ModelLoadError(f"cannot load {os.fspath(path)!r} with joblib: {e}") from e
    missing = [a for a in ("predict_proba", "classes_", "n_features_in_") if not hasattr(model, a)]
    if missing:
        raise ModelLoadError(f"{os.fspath(path)!r} holds a {type(model).__name__}, not a fitted "
                             f"classifier (no {', '.join(missing)})")
    if np.asarray(model.classes_).dtype.kind not in "iu":
        raise ModelLoadError(f"{os.fspath(path)!r}: classes must be integers (the label output "
                             f"is INT64), got {np.asarray(model.classes_).dtype}")
    return model


def signature_of(model: Any) -> ModelSignature:
    """What ``classify`` takes and gives for ``model``."""
    return ModelSignature(
        inputs=(TensorSpec(INPUT, "FP32", (-1, int(model.n_features_in_))),),
        outputs=(TensorSpec("label", "INT64", (-1,)),
                 TensorSpec("probabilities", "FP32", (-1, len(model.classes_)))),
        task="classification",
    )


def classify(model: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """``model`` on the rows of ``x`` (already checked): the label and the probabilities of
    every row, from one ``predict_proba`` call."""
    try:
        proba = np.asarray(model.predict_proba(x), dtype=np.float32)
    except Exception as e:
        raise PredictError(f"{type(model).__name__}.predict_proba failed: {e}") from e
    classes = np.asarray(model.classes_, dtype=np.int64)
    return {"label": classes[proba.argmax(axis=1)], "probabilities": proba}


class SklearnRuntime:
    """A ``ModelRuntime`` over a joblib-saved scikit-learn classifier (a ``Pipeline`` or a bare
    estimator). ``threads`` bounds the BLAS/OpenMP threads of each ``predict`` (1: a replica is
    one CPU, and scaling out is done with replicas); the process's setting is restored after."""

    kind = "python"

    def __init__(self, path: str | os.PathLike[str] | None, device: str = "cpu",
                 threads: int = 1) -> None:
        if path is None:
            raise ModelLoadError("SklearnRuntime needs an artifact (the version's artifact: a "
                                 "joblib file)")
        if device != "cpu":
            raise DeviceUnavailableError(f"scikit-learn runs on CPU only; device={device!r} "
                                         "asked for something else")
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"runtime_args.threads must be an integer >= 1, got {threads!r}")
        self.path = os.fspath(path)
        self.device = device
        self.threads = threads
        self.model = load_classifier(self.path)
        self._signature = signature_of(self.model)
        self._width = int(self.model.n_features_in_)
        self._pools = ThreadpoolController()  # found once: limiting it per batch is then cheap

    @property
    def signature(self) -> ModelSignature:
        return self._signature

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One batch: ``inputs["input"]`` of shape ``[rows, n_features]``."""
        if INPUT not in inputs:
            raise ValueError(f"missing model input {INPUT!r}; got {sorted(inputs)}")
        x = np.asarray(inputs[INPUT], dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self._width:
            raise ValueError(f"input {INPUT!r} must have shape [rows, {self._width}], got "
                             f"{list(x.shape)}")
        with self._pools.limit(limits=self.threads):
            return classify(self.model, x)

    def __repr__(self) -> str:
        return f"SklearnRuntime({self.path!r}, device={self.device!r})"
