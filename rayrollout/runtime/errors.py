"""Errors raised by model runtimes, translated from ``onnxruntime`` / ``torch`` at the boundary.

::

    ModelRuntimeError
    ├── DeviceUnavailableError   asked for "cuda" where the runtime cannot use a GPU
    ├── ModelLoadError           the artifact exists but cannot be loaded or described
    └── PredictError             the model raised on a batch (a model failure, answered 5xx)

A missing artifact is a plain ``FileNotFoundError``; an unknown runtime kind a ``ValueError``;
a batch that lacks a declared input a ``ValueError`` (bad input, never a model failure).
"""

from __future__ import annotations


class ModelRuntimeError(Exception):
    """Base of every error a runtime raises on its own account."""


class DeviceUnavailableError(ModelRuntimeError):
    """The requested device cannot be used by this runtime on this machine."""


class ModelLoadError(ModelRuntimeError):
    """The artifact was found but could not be loaded."""


class PredictError(ModelRuntimeError):
    """The model itself failed on a batch."""
