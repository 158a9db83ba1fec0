"""``TorchScriptRuntime``: a ``ModelRuntime`` over a TorchScript module (``torch.jit.load``).

TorchScript does not describe its inputs reliably, so the signature is explicit, one of:

* the sidecar ``<model>.json`` (e.g. ``v2-torch.pt.json``) holding ``ModelSignature.to_dict()``,
  used when no ``input_spec`` is given;
* ``input_spec`` and ``output_spec``;
* ``input_spec`` and ``output_names``: output datatypes and shapes are then read from one probe
  call on a one-row batch of zeros at load (dynamic dims taken as 1).

The module is called with the declared inputs, in order, as positional tensors. It returns
one tensor or a tuple/list of tensors, matched in order to the declared outputs (or a dict
keyed by output name).

Guarantees:

* ``device="cuda"`` fails at load with ``DeviceUnavailableError`` where torch sees no GPU.
* ``predict`` runs under ``torch.inference_mode()`` and returns numpy arrays on the host,
  cast to the declared output datatypes.
* ``num_threads`` (default 1) is applied with ``torch.set_num_threads``, which is process-wide.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rayrollout.errors import DeviceUnavailableError, ModelLoadError, PredictError
from rayrollout.runtime._common import TASKS, check_device, check_path, gather_inputs
from rayrollout.runtime.base import NUMPY_TO_OIP, OIP_TO_NUMPY, ModelSignature, TensorSpec

SpecLike = TensorSpec | dict[str, Any]


def _to_spec(s: SpecLike) -> TensorSpec:
    if isinstance(s, TensorSpec):
        return s
    return TensorSpec(name=str(s["name"]), datatype=str(s["datatype"]), shape=tuple(s["shape"]))


def signature_from_dict(d: dict[str, Any]) -> ModelSignature:
    """Inverse of ``ModelSignature.to_dict()``."""
    return ModelSignature(
        inputs=tuple(_to_spec(s) for s in d["inputs"]),
        outputs=tuple(_to_spec(s) for s in d["outputs"]),
        task=str(d.get("task", "classification")),
    )


def _as_list(raw: Any) -> list[Any]:
    return list(raw) if isinstance(raw, tuple | list) else [raw]


def _torch_dtype(spec: TensorSpec) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=spec.dtype)).dtype


def sidecar_path(path: str) -> str:
    return path + ".json"


class TorchScriptRuntime:
    """Load a TorchScript module from ``path``; see the module docstring for the signature.

    Specs are ``TensorSpec`` or dicts like ``TensorSpec.to_dict()``. ``output_names`` renames
    the module's outputs in order (datatypes and shapes kept).
    """

    kind = "torchscript"

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str = "cpu",
        input_spec: Sequence[SpecLike] | None = None,
        output_spec: Sequence[SpecLike] | None = None,
        output_names: Sequence[str] | None = None,
        task: str | None = None,
        num_threads: int = 1,
    ) -> None:
        self.path = check_path(path)
        self.device = check_device(device)
        if device == "cuda" and not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device='cuda' but torch {torch.__version__} sees no CUDA device "
                f"(torch.version.cuda={torch.version.cuda})"
            )
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.num_threads = num_threads
        torch.set_num_threads(num_threads)
        try:
            module = torch.jit.load(self.path, map_location=device)
        except Exception as exc:
            raise ModelLoadError(f"cannot load TorchScript model {self.path!r}: {exc}") from exc
        self._module = module.eval()
        self._signature = self._load_signature(input_spec, output_spec, output_names, task)

    def _load_signature(
        self,
        input_spec: Sequence[SpecLike] | None,
        output_spec: Sequence[SpecLike] | None,
        output_names: Sequence[str] | None,
        task: str | None,
    ) -> ModelSignature:
        if input_spec is None and output_spec is not None:
            raise ValueError("output_spec needs input_spec")
        if input_spec is not None:
            inputs = tuple(_to_spec(s) for s in input_spec)
            if output_spec is not None:
                sig = ModelSignature(inputs=inputs, outputs=tuple(_to_spec(s) for s in output_spec))
            else:
                sig = ModelSignature(inputs=inputs, outputs=self._probe_outputs(inputs))
        else:
            side = sidecar_path(self.path)
            if not os.path.isfile(side):
                raise ModelLoadError(
                    f"TorchScript model {self.path!r} needs input_spec/output_spec or a "
                    f"signature sidecar at {side!r}"
                )
            try:
                with open(side) as f:
                    sig = signature_from_dict(json.load(f))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ModelLoadError(f"bad signature sidecar {side!r}: {exc}") from exc
        outputs = sig.outputs
        if output_names is not None:
            if len(output_names) != len(outputs):
                raise ValueError(
                    f"output_names has {len(output_names)} names for {len(outputs)} outputs"
                )
            outputs = tuple(
                TensorSpec(n, s.datatype, s.shape)
                for n, s in zip(output_names, outputs, strict=True)
            )
        # Fail at load, not on the first request.
        for s in sig.inputs + outputs:
            if s.datatype not in OIP_TO_NUMPY:
                raise ValueError(
                    f"{s.name!r}: unknown datatype {s.datatype!r}; known: {sorted(OIP_TO_NUMPY)}"
                )
        task = task or sig.task
        if task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
        return ModelSignature(inputs=sig.inputs, outputs=outputs, task=task)

    def _probe_outputs(self, inputs: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
        with torch.inference_mode():
            args = [
                torch.zeros([1 if d < 0 else d for d in s.shape], dtype=_torch_dtype(s)).to(
                    self.device
                )
                for s in inputs
            ]
            try:
                raw = self._module(*args)
            except Exception as exc:
                raise ModelLoadError(
                    f"probe call of {self.path!r} on zeros shaped like {inputs} failed: {exc}"
                ) from exc
        tensors = list(raw.values()) if isinstance(raw, dict) else _as_list(raw)
        names = list(raw) if isinstance(raw, dict) else [f"output_{i}" for i in range(len(tensors))]
        specs = []
        for name, t in zip(names, tensors, strict=True):
            arr = t.detach().cpu().numpy()
            if arr.dtype not in NUMPY_TO_OIP:
                raise ModelLoadError(f"output {name!r} has unsupported dtype {arr.dtype}")
            specs.append(TensorSpec(name, NUMPY_TO_OIP[arr.dtype], (-1, *arr.shape[1:])))
        return tuple(specs)

    @property
    def signature(self) -> ModelSignature:
        return self._signature

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch. Missing inputs raise ``ValueError``; a model failure ``PredictError``."""
        feeds = gather_inputs(self._signature.inputs, inputs)
        specs = self._signature.outputs
        try:
            with torch.inference_mode():
                args = [torch.from_numpy(a).to(self.device) for a in feeds.values()]
                raw = self._module(*args)
                tensors = [raw[s.name] for s in specs] if isinstance(raw, dict) else _as_list(raw)
                if len(tensors) != len(specs):
                    raise ValueError(
                        f"module gave {len(tensors)} outputs, spec declares {len(specs)}"
                    )
                arrays = [t.detach().cpu().numpy() for t in tensors]
        except Exception as exc:
            raise PredictError(f"TorchScript model {self.path!r} failed: {exc}") from exc
        return {s.name: a.astype(s.dtype, copy=False) for s, a in zip(specs, arrays, strict=True)}

    def __repr__(self) -> str:
        return f"TorchScriptRuntime({self.path!r}, device={self.device!r})"
