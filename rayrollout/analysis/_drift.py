"""Test D: prediction drift, per bin (STATISTICS.md section 1.4).

``BinnedDriftEProcess`` tests ``H0: canary and stable predictions have the same distribution``.
Because routing is random with weight ``w``, under H0 ``P(canary | bin b, past) = w`` for every
bin; each event multiplies the e-value by ``q/w`` (canary) or ``(1-q)/(1-w)`` (stable), ``q`` the
predictive canary share of its bin from a ``Beta(kappa w, kappa (1-w))`` prior (Lindon-Malek).
Any predictable ``q`` keeps ``E`` a test martingale: ``P(sup E >= 1/alpha) <= alpha``.

A new model is expected to differ, so ``BinnedToleranceEProcess`` tests a band instead:
``H0: lo <= rho_b <= hi`` for every guarded bin, where ``rho_b = P(b | canary) / P(b | stable)``,
with test A upwards (``rho0 = hi``) and downwards (``rho0 = lo``), averaged over bins and
directions (an average of test supermartingales for one filtration is one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._bad_event import DEFAULT_RHO_GRID, BadEventEProcess
from rayrollout.analysis._mix import as_float_list, log_mean_exp


def _edges(edges: Sequence[float]) -> np.ndarray:
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1 or e.size == 0 or np.isnan(e).any() or (np.diff(e) <= 0).any():
        raise ValueError(f"edges must be a non-empty increasing sequence, got {edges!r}")
    return e


class BinnedDriftEProcess:
    """Per-bin predictive-ratio test martingale; ``len(edges) + 1`` bins (``x < e0`` is bin 0)."""

    def __init__(self, edges: Sequence[float], kappa: float = 100.0) -> None:
        self.edges = _edges(edges)
        if not kappa > 0.0:
            raise ValueError(f"kappa must be > 0, got {kappa!r}")
        self.kappa = float(kappa)
        k = self.edges.size + 1
        self.n_bin = np.zeros(k, dtype=np.int64)
        self.n_canary_bin = np.zeros(k, dtype=np.int64)
        self._log_e = 0.0
        self._max_log_e = 0.0

    @property
    def log_e(self) -> float:
        """``log E_n`` now."""
        return self._log_e

    @property
    def max_log_e(self) -> float:
        """Running maximum of ``log E_n``."""
        return self._max_log_e

    def bin_of(self, x: np.ndarray) -> np.ndarray:
        """Bin index of each value."""
        out: np.ndarray = np.searchsorted(self.edges, x, side="right")
        return out

    def update(self, x: float, from_canary: bool, w: float) -> float:
        """Add one prediction; events with ``w`` outside (0, 1) are skipped. O(1)."""
        if not 0.0 < w < 1.0:
            return self._log_e
        b = int(np.searchsorted(self.edges, x, side="right"))
        q = (self.kappa * w + self.n_canary_bin[b]) / (self.kappa + self.n_bin[b])
        self._log_e += math.log(q / w) if from_canary else math.log((1.0 - q) / (1.0 - w))
        self._max_log_e = max(self._max_log_e, self._log_e)
        self.n_bin[b] += 1
        self.n_canary_bin[b] += int(from_canary)
        return self._log_e

    def update_many(self, x: np.ndarray, from_canary: np.ndarray, w: np.ndarray) -> float:
        """Vectorised ``update`` in order (same result as a loop, to rounding)."""
        ww = np.asarray(w, dtype=float)
        ok = (ww > 0.0) & (ww < 1.0)
        xs = np.asarray(x, dtype=float)[ok]
        a = np.asarray(from_canary, dtype=bool)[ok]
        ww = ww[ok]
        if xs.size == 0:
            return self._log_e
        b = self.bin_of(xs)
        order = np.argsort(b, kind="stable")
        bs, as_ = b[order], a[order].astype(np.int64)
        starts = np.r_[0, np.flatnonzero(np.diff(bs)) + 1]
        run = np.repeat(starts, np.diff(np.r_[starts, bs.size]))
        before = np.arange(bs.size) - run  # same-bin events earlier in this batch
        cum = np.cumsum(as_)
        before_c = cum - as_ - (cum[run] - as_[run])
        n_b = np.empty(bs.size, dtype=np.int64)
        n_c = np.empty(bs.size, dtype=np.int64)
        n_b[order] = before + self.n_bin[bs]
        n_c[order] = before_c + self.n_canary_bin[bs]
        q = (self.kappa * ww + n_c) / (self.kappa + n_b)
        inc = np.where(a, np.log(q / ww), np.log((1.0 - q) / (1.0 - ww)))
        path = self._log_e + np.cumsum(inc)
        self._log_e = float(path[-1])
        self._max_log_e = max(self._max_log_e, float(path.max()))
        np.add.at(self.n_bin, b, 1)
        np.add.at(self.n_canary_bin, b, a.astype(np.int64))
        return self._log_e

    def to_state(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "edges": as_float_list(self.edges),
            "kappa": self.kappa,
            "n_bin": self.n_bin.tolist(),
            "n_canary_bin": self.n_canary_bin.tolist(),
            "log_e": self._log_e,
            "max_log_e": self._max_log_e,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BinnedDriftEProcess:
        p = cls(state["edges"], state["kappa"])
        p.n_bin = np.asarray(state["n_bin"], dtype=np.int64)
        p.n_canary_bin = np.asarray(state["n_canary_bin"], dtype=np.int64)
        p._log_e = float(state["log_e"])
        p._max_log_e = float(state["max_log_e"])
        return p


class BinnedToleranceEProcess:
    """Test A per guarded bin against the two-sided null band ``lo <= rho_b <= hi``.

    ``guarded`` selects the bins (default: all); e.g. ``edges=[0.5], guarded=[1]`` judges the
    "predicted positive" share only. ``max_log_e`` is tracked at batch ends only (a valid,
    slightly conservative monitor).
    """

    def __init__(
        self,
        edges: Sequence[float],
        lo: float = 0.8,
        hi: float = 1.25,
        grid: Sequence[float] = DEFAULT_RHO_GRID,
        guarded: Sequence[int] | None = None,
    ) -> None:
        self.edges = _edges(edges)
        if not 0.0 < lo <= 1.0 <= hi:
            raise ValueError(f"need 0 < lo <= 1 <= hi, got lo={lo!r} hi={hi!r}")
        if any(g <= 1.0 for g in grid):
            raise ValueError(f"grid multipliers must be > 1, got {grid!r}")
        k = self.edges.size + 1
        self.guarded = tuple(range(k)) if guarded is None else tuple(int(b) for b in guarded)
        if not self.guarded or any(not 0 <= b < k for b in self.guarded):
            raise ValueError(f"guarded bins must lie in [0, {k}), got {guarded!r}")
        self.lo, self.hi, self.grid = float(lo), float(hi), tuple(float(g) for g in grid)
        self.up = {b: BadEventEProcess(self.hi, self.grid) for b in self.guarded}
        down = [1.0 / g for g in self.grid]
        self.down = {b: BadEventEProcess(self.lo, down) for b in self.guarded}
        self._max_log_e = 0.0

    @property
    def log_e(self) -> float:
        """``log`` of the average e-value over guarded bins and both directions."""
        return log_mean_exp([p.log_e for p in (*self.up.values(), *self.down.values())])

    @property
    def max_log_e(self) -> float:
        """Running maximum of ``log E`` at update ends."""
        return self._max_log_e

    def update(self, x: float, from_canary: bool, w: float) -> float:
        """Add one prediction (unguarded bins are ignored)."""
        b = int(np.searchsorted(self.edges, x, side="right"))
        if b in self.up:
            self.up[b].update(from_canary, w)
            self.down[b].update(from_canary, w)
        return self._track()

    def update_many(self, x: np.ndarray, from_canary: np.ndarray, w: np.ndarray) -> float:
        """Vectorised ``update``: bins are independent, so grouping by bin is exact."""
        b = np.searchsorted(self.edges, np.asarray(x, dtype=float), side="right")
        a = np.asarray(from_canary, dtype=bool)
        ww = np.asarray(w, dtype=float)
        for k in self.guarded:
            m = b == k
            if m.any():
                self.up[k].update_many(a[m], ww[m])
                self.down[k].update_many(a[m], ww[m])
        return self._track()

    def _track(self) -> float:
        le = self.log_e
        self._max_log_e = max(self._max_log_e, le)
        return le

    def to_state(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "edges": as_float_list(self.edges),
            "lo": self.lo,
            "hi": self.hi,
            "grid": list(self.grid),
            "guarded": list(self.guarded),
            "up": {str(b): p.to_state() for b, p in self.up.items()},
            "down": {str(b): p.to_state() for b, p in self.down.items()},
            "max_log_e": self._max_log_e,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BinnedToleranceEProcess:
        p = cls(state["edges"], state["lo"], state["hi"], state["grid"], state["guarded"])
        p.up = {int(b): BadEventEProcess.from_state(s) for b, s in state["up"].items()}
        p.down = {int(b): BadEventEProcess.from_state(s) for b, s in state["down"].items()}
        p._max_log_e = float(state["max_log_e"])
        return p
