"""Test A: the bad-event e-process (STATISTICS.md section 1.1).

For the k-th bad event (an error, a timeout, a wrong label, a tail exceedance) from either arm,
``A_k = 1`` when it came from the canary and ``w_k`` is the probability that the request was
routed to the canary (conditional on it going to canary or baseline). Under the model
``p_c(t) = rho * p_s(t)``, ``P(A_k = 1 | past) = theta_k(rho) = w rho / (w rho + 1 - w)``.

``E_n = mean_j prod_k L_k(rho_j)`` with ``rho_j = rho0 * g_j``. For a grid above 1 (the
default) every product is a test supermartingale under the composite null ``rho <= rho0``,
so ``P(sup_n E_n >= 1/alpha) <= alpha`` (Ville), for any predictable, time-varying ``w_k``.
A grid below 1 tests the mirrored null ``rho >= rho0`` (used by the tolerance-band tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._mix import CHUNK, as_float_list, log_mean_exp, log_mean_exp_rows

DEFAULT_RHO_GRID: tuple[float, ...] = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0)


def theta(rho: float, w: float) -> float:
    """``P(bad event is from the canary)`` when canary weight is ``w`` and ratio ``rho``."""
    return w * rho / (w * rho + 1.0 - w)


class BadEventEProcess:
    """Discrete-mixture likelihood-ratio e-process for ``H0: rho <= rho0`` (O(J) state).

    Events with ``w`` outside the open interval (0, 1) carry no information and leave the
    e-value unchanged (they are still counted). ``max_log_e`` is the running maximum of
    ``log E_n`` over every event seen, so a caller that checks it only at batch ends still
    sees a crossing that happened inside a batch.
    """

    def __init__(self, rho0: float = 1.0, grid: Sequence[float] = DEFAULT_RHO_GRID) -> None:
        if not rho0 > 0.0 or not math.isfinite(rho0):
            raise ValueError(f"rho0 must be a positive number, got {rho0!r}")
        grid = tuple(float(g) for g in grid)
        if not grid or any(not g > 0.0 or g == 1.0 or not math.isfinite(g) for g in grid):
            raise ValueError(f"grid must be positive multipliers != 1, got {grid!r}")
        self.rho0 = float(rho0)
        self.grid = grid
        self._rho = [self.rho0 * g for g in grid]
        self._log_g = [math.log(g) for g in grid]
        self._rho_arr = np.asarray(self._rho)
        self._log_g_arr = np.asarray(self._log_g)
        self._s = [0.0] * len(grid)
        self._log_e = 0.0
        self._max_log_e = 0.0
        self.n_canary = 0
        self.n_baseline = 0
        self.sum_w = 0.0  # sum of the informative weights, for an effective-weight summary

    @property
    def log_e(self) -> float:
        """``log E_n`` now (0.0 before any event)."""
        return self._log_e

    @property
    def max_log_e(self) -> float:
        """``max_{k <= n} log E_k``: the quantity whose crossing is controlled by Ville."""
        return self._max_log_e

    @property
    def n(self) -> int:
        """Bad events seen from both arms."""
        return self.n_canary + self.n_baseline

    def update(self, from_canary: bool, w: float) -> float:
        """Add one bad event; return ``log E_n``. O(J)."""
        if from_canary:
            self.n_canary += 1
        else:
            self.n_baseline += 1
        if not 0.0 < w < 1.0:
            if math.isnan(w):
                raise ValueError("routing weight is NaN")
            return self._log_e
        self.sum_w += w
        v = 1.0 - w
        base = math.log(w * self.rho0 + v)
        s = self._s
        if from_canary:
            for j, r in enumerate(self._rho):
                s[j] += base - math.log(w * r + v) + self._log_g[j]
        else:
            for j, r in enumerate(self._rho):
                s[j] += base - math.log(w * r + v)
        self._log_e = log_mean_exp(s)
        if self._log_e > self._max_log_e:
            self._max_log_e = self._log_e
        return self._log_e

    def update_many(self, from_canary: np.ndarray, w: np.ndarray) -> float:
        """Add bad events in order; same result as calling ``update`` for each (to rounding)."""
        a = np.asarray(from_canary, dtype=bool)
        ww = np.asarray(w, dtype=float)
        if a.shape != ww.shape:
            raise ValueError(f"shape mismatch: {a.shape} vs {ww.shape}")
        if np.isnan(ww).any():
            raise ValueError("routing weight is NaN")
        nc = int(a.sum())
        self.n_canary += nc
        self.n_baseline += a.size - nc
        ok = (ww > 0.0) & (ww < 1.0)
        a, ww = a[ok], ww[ok]
        self.sum_w += float(ww.sum())
        for lo in range(0, a.size, CHUNK):
            self._update_chunk(a[lo : lo + CHUNK], ww[lo : lo + CHUNK])
        return self._log_e

    def _update_chunk(self, a: np.ndarray, w: np.ndarray) -> None:
        if a.size == 0:
            return
        v = (1.0 - w)[:, None]
        inc = np.log(w[:, None] * self.rho0 + v) - np.log(w[:, None] * self._rho_arr + v)
        inc += a[:, None] * self._log_g_arr
        path = np.asarray(self._s) + np.cumsum(inc, axis=0)
        lme = log_mean_exp_rows(path)
        self._s = as_float_list(path[-1])
        self._log_e = float(lme[-1])
        self._max_log_e = max(self._max_log_e, float(lme.max()))

    def to_state(self) -> dict[str, Any]:
        """JSON-able state; ``from_state(to_state())`` continues identically."""
        return {
            "rho0": self.rho0,
            "grid": list(self.grid),
            "s": list(self._s),
            "log_e": self._log_e,
            "max_log_e": self._max_log_e,
            "n_canary": self.n_canary,
            "n_baseline": self.n_baseline,
            "sum_w": self.sum_w,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BadEventEProcess:
        p = cls(rho0=state["rho0"], grid=state["grid"])
        p._s = as_float_list(state["s"])
        p._log_e = float(state["log_e"])
        p._max_log_e = float(state["max_log_e"])
        p.n_canary = int(state["n_canary"])
        p.n_baseline = int(state["n_baseline"])
        p.sum_w = float(state["sum_w"])
        return p
