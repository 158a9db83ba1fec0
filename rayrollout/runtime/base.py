"""The ``ModelRuntime`` plug-in point: load an artifact, predict a batch, describe its inputs.

Only modules under ``rayrollout.runtime`` import ``onnxruntime`` or ``torch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

# Open Inference Protocol (v2) datatype names <-> numpy dtypes.
OIP_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
NUMPY_TO_OIP: dict[np.dtype, str] = {v: k for k, v in OIP_TO_NUMPY.items()}


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output. ``shape`` uses -1 for a dynamic dimension (dim 0 is the batch)."""

    name: str
    datatype: str  # an Open Inference Protocol datatype name, e.g. "FP32"
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return OIP_TO_NUMPY[self.datatype]

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelSignature:
    """What a model takes and gives; the router validates requests against ``inputs``.

    ``task`` is "classification" (the first output holds class indices/labels and the router
    compares shadows by agreement) or "regression" (compared by absolute/relative difference).
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    task: str = "classification"

    def to_dict(self) -> dict[str, object]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "task": self.task,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSignature:
        """Inverse of ``to_dict`` (what a version replica answers to ``signature()``)."""

        def specs(items: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(t["name"], t["datatype"], tuple(t["shape"])) for t in items)

        return cls(specs(d["inputs"]), specs(d["outputs"]), str(d.get("task", "classification")))


@runtime_checkable
class ModelRuntime(Protocol):
    """A loaded model. ``predict`` takes and returns whole batches (dim 0)."""

    kind: str  # registry name, e.g. "onnx", "torchscript"
    device: str  # "cpu" or "cuda"

    @property
    def signature(self) -> ModelSignature: ...

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...
