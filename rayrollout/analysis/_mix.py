"""Small numeric helpers shared by the e-processes (log-mean-exp in Python and numpy)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Batches are processed in chunks of this many rows to bound temporary (n, J) arrays.
CHUNK = 65536


def log_mean_exp(xs: Sequence[float]) -> float:
    """``log(mean(exp(xs)))`` without overflow (pure Python, for the per-event path)."""
    m = max(xs)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(x - m) for x in xs) / len(xs))


def log_mean_exp_rows(a: np.ndarray) -> np.ndarray:
    """Row-wise ``log(mean(exp(a)))`` of an (n, J) array."""
    m = a.max(axis=1)
    safe = np.where(np.isfinite(m), m, 0.0)
    out: np.ndarray = safe + np.log(np.exp(a - safe[:, None]).mean(axis=1))
    return out


def as_float_list(xs: Sequence[float] | np.ndarray) -> list[float]:
    """A plain list of Python floats (JSON-able state)."""
    return [float(x) for x in xs]
