"""Fixtures of the in-process ingress tests: the example ONNX models and held-out rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rayrollout.runtime import load_runtime
from tests.conftest import ARTIFACTS, ROOT


@pytest.fixture(scope="module")
def runtimes() -> dict[str, Any]:
    """v1 and v2 of the digits classifier, loaded once per module."""
    return {v: load_runtime("onnx", ARTIFACTS / f"{v}.onnx") for v in ("v1", "v2")}


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """64 held-out digits as FP32 rows."""
    return np.load(ROOT / "models" / "heldout.npz")["X"].astype(np.float32)[:64]
