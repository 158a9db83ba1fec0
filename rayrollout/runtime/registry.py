"""``load_runtime``: the one place that maps a runtime kind to its implementation.

Implementations are imported lazily, so serving ONNX models never imports ``torch``. An
unknown kind is a ``ValueError`` naming the known ones, never a silent default.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from rayrollout.runtime._common import check_path
from rayrollout.runtime.base import ModelRuntime

# kind -> "module:class"
RUNTIMES: dict[str, str] = {
    "onnx": "rayrollout.runtime.onnx:OnnxRuntime",
    "torchscript": "rayrollout.runtime.torchscript:TorchScriptRuntime",
}


def known_kinds() -> list[str]:
    return sorted(RUNTIMES)


def load_runtime(
    kind: str, path: str | os.PathLike[str], device: str = "cpu", **options: Any
) -> ModelRuntime:
    """Load the artifact at ``path`` with the runtime registered as ``kind``.

    ``options`` go to the implementation (e.g. ``intra_op_threads`` for "onnx",
    ``num_threads`` / ``input_spec`` for "torchscript"). Raises ``ValueError`` for an unknown
    kind and ``FileNotFoundError`` (naming the path) for a missing artifact, both before any
    runtime library is imported.
    """
    target = RUNTIMES.get(kind)
    if target is None:
        raise ValueError(f"unknown model runtime kind {kind!r}; known kinds: {known_kinds()}")
    check_path(path)
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    runtime: ModelRuntime = cls(path, device=device, **options)
    return runtime
