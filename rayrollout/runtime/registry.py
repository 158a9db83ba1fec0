"""``load_runtime``: the one place that maps a runtime kind to its implementation.

Implementations are imported lazily, so serving ONNX models never imports ``torch``. An
unknown kind is a ``ValueError`` naming the known ones, never a silent default.

Kind ``python`` is the user's own runtime: a class named by import path (``runtime_class``)
that implements ``ModelRuntime``, built as ``cls(path_or_None, device=device, **args)``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from rayrollout.errors import ModelLoadError
from rayrollout.imports import import_object
from rayrollout.runtime._common import check_path
from rayrollout.runtime.base import ModelRuntime, ModelSignature

# kind -> "module:class"
RUNTIMES: dict[str, str] = {
    "onnx": "rayrollout.runtime.onnx:OnnxRuntime",
    "torchscript": "rayrollout.runtime.torchscript:TorchScriptRuntime",
}


PYTHON = "python"  # the user's own ModelRuntime class


def known_kinds() -> list[str]:
    return sorted([*RUNTIMES, PYTHON])


def load_runtime(
    kind: str, path: str | os.PathLike[str] | None, device: str = "cpu", **options: Any
) -> ModelRuntime:
    """Load the artifact at ``path`` with the runtime registered as ``kind``.

    ``options`` go to the implementation (e.g. ``intra_op_threads`` for "onnx",
    ``num_threads`` / ``input_spec`` for "torchscript"; for "python", ``runtime_class`` names
    the class and the rest are its arguments). Raises ``ValueError`` for an unknown kind and
    ``FileNotFoundError`` (naming the path) for a missing artifact, both before any runtime
    library is imported.
    """
    if kind == PYTHON:
        return _load_python(path, device, **options)
    target = RUNTIMES.get(kind)
    if target is None:
        raise ValueError(f"unknown model runtime kind {kind!r}; known kinds: {known_kinds()}")
    if path is None:
        raise ValueError(f"runtime {kind!r} needs an artifact")
    check_path(path)
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    runtime: ModelRuntime = cls(path, device=device, **options)
    return runtime


def _load_python(path: str | os.PathLike[str] | None, device: str, runtime_class: str,
                 **args: Any) -> ModelRuntime:
    """The user's class, built and checked: it must describe its inputs and outputs
    (``signature``, a ``ModelSignature``) and ``predict`` batches."""
    if path is not None:
        check_path(path)
    try:
        cls = import_object(runtime_class)
    except ImportError as e:
        raise ModelLoadError(f"runtime_class {runtime_class!r}: {e}") from e
    runtime = cls(path, device=device, **args)
    if not isinstance(runtime, ModelRuntime):
        raise ModelLoadError(f"runtime_class {runtime_class!r} does not implement ModelRuntime "
                             "(kind, device, signature, predict)")
    if not isinstance(runtime.signature, ModelSignature):
        raise ModelLoadError(f"runtime_class {runtime_class!r}: signature must be a "
                             f"ModelSignature, not {type(runtime.signature).__name__}")
    return runtime
