"""Model runtimes: load an artifact, predict a batch, describe its inputs.

``load_runtime(kind, path, device)`` is the entry point; "onnx" and "torchscript" are built
in, imported only when used. ``rayrollout.runtime.fake`` holds test doubles.
"""

from rayrollout.errors import (
    DeviceUnavailableError,
    ModelLoadError,
    ModelRuntimeError,
    PredictError,
)
from rayrollout.runtime.base import (
    NUMPY_TO_OIP,
    OIP_TO_NUMPY,
    ModelRuntime,
    ModelSignature,
    TensorSpec,
)
from rayrollout.runtime.registry import known_kinds, load_runtime
from rayrollout.runtime.summary import summarize_prediction

__all__ = [
    "NUMPY_TO_OIP",
    "OIP_TO_NUMPY",
    "DeviceUnavailableError",
    "ModelLoadError",
    "ModelRuntime",
    "ModelRuntimeError",
    "ModelSignature",
    "PredictError",
    "TensorSpec",
    "known_kinds",
    "load_runtime",
    "summarize_prediction",
]
