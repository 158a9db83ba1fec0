"""``OnnxRuntime``: a ``ModelRuntime`` over an ONNX Runtime inference session.

Guarantees:

* The signature is read from the session itself: ONNX element types map to Open Inference
  Protocol datatypes (``tensor(float)`` -> ``FP32``, ...), symbolic or unknown dims to -1.
* ``device="cuda"`` runs on ``CUDAExecutionProvider`` or fails at load with
  ``DeviceUnavailableError``; it never falls back to CPU silently.
* ``predict`` is safe to call from several threads (ONNX Runtime sessions are).
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from rayrollout.errors import DeviceUnavailableError, ModelLoadError, PredictError
from rayrollout.runtime._common import TASKS, check_device, check_path, gather_inputs
from rayrollout.runtime.base import ModelSignature, TensorSpec

ONNX_TO_OIP: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
}

TASK_METADATA_KEY = "rayrollout.task"


def _spec(arg: ort.NodeArg) -> TensorSpec:
    datatype = ONNX_TO_OIP.get(arg.type)
    if datatype is None:
        raise ModelLoadError(
            f"unsupported ONNX type {arg.type!r} for {arg.name!r}; supported: {sorted(ONNX_TO_OIP)}"
            " (export classifiers with zipmap=False)"
        )
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or []))
    return TensorSpec(name=arg.name, datatype=datatype, shape=shape)


class OnnxRuntime:
    """Load ``path`` with ONNX Runtime.

    ``intra_op_threads`` / ``inter_op_threads`` bound the session's thread pools (1 each by
    default: a Serve replica is one CPU, and scaling out is done with replicas). ``task``
    overrides the ``rayrollout.task`` model metadata; without either it is "classification".
    """

    kind = "onnx"

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str = "cpu",
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        task: str | None = None,
    ) -> None:
        self.path = check_path(path)
        self.device = check_device(device)
        if intra_op_threads < 0 or inter_op_threads < 0:
            raise ValueError("thread counts must be >= 0 (0 lets ONNX Runtime choose)")
        if device == "cuda":
            available = ort.get_available_providers()
            if "CUDAExecutionProvider" not in available:
                raise DeviceUnavailableError(
                    f"device='cuda' needs onnxruntime-gpu with CUDAExecutionProvider; this "
                    f"onnxruntime {ort.__version__} offers {available}"
                )
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = inter_op_threads
        opts.log_severity_level = 3  # errors only; warnings about fallbacks are checked below
        try:
            self._session = ort.InferenceSession(self.path, sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ModelLoadError(f"cannot load ONNX model {self.path!r}: {exc}") from exc
        if device == "cuda" and "CUDAExecutionProvider" not in self._session.get_providers():
            raise DeviceUnavailableError(
                f"CUDAExecutionProvider failed to initialise for {self.path!r} (CUDA/cuDNN "
                "libraries missing?); refusing to fall back to CPU"
            )
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads

        meta = self._session.get_modelmeta().custom_metadata_map
        task = task or meta.get(TASK_METADATA_KEY) or "classification"
        if task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
        self._signature = ModelSignature(
            inputs=tuple(_spec(a) for a in self._session.get_inputs()),
            outputs=tuple(_spec(a) for a in self._session.get_outputs()),
            task=task,
        )
        self._output_names = [s.name for s in self._signature.outputs]

    @property
    def signature(self) -> ModelSignature:
        return self._signature

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch. Missing inputs raise ``ValueError``; a model failure ``PredictError``."""
        feeds = gather_inputs(self._signature.inputs, inputs)
        try:
            results = self._session.run(self._output_names, feeds)
        except Exception as exc:
            raise PredictError(f"ONNX model {self.path!r} failed: {exc}") from exc
        return dict(zip(self._output_names, results, strict=True))

    def __repr__(self) -> str:
        return f"OnnxRuntime({self.path!r}, device={self.device!r})"
