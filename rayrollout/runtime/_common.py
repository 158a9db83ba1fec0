"""Helpers shared by the runtime implementations (no third-party imports)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from rayrollout.runtime.base import TensorSpec

DEVICES = ("cpu", "cuda")
TASKS = ("classification", "regression")


def check_path(path: str | os.PathLike[str]) -> str:
    """Return ``path`` as a string, or raise ``FileNotFoundError`` naming it."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise FileNotFoundError(f"model artifact not found: {p!r}")
    return p


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}")
    return device


def gather_inputs(
    specs: tuple[TensorSpec, ...], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Pick the declared inputs in order, as contiguous arrays of the declared dtype.

    Raises ``ValueError`` (bad input, not a model failure) if a declared input is missing.
    """
    missing = [s.name for s in specs if s.name not in inputs]
    if missing:
        raise ValueError(f"missing model inputs {missing}; got {sorted(inputs)}")
    return {s.name: np.ascontiguousarray(inputs[s.name], dtype=s.dtype) for s in specs}
