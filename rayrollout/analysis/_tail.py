"""Test C: tail latency via exceedance events fed to test A (STATISTICS.md section 1.3).

The threshold ``q`` is the stable empirical ``p``-quantile computed only from stable data seen
before the current refresh period starts, so it is fixed (predictable) before any request it
judges. A bad event is a judged request from either arm with latency above ``q``. Under H0
(canary not stochastically slower in the tail than ``rho0`` allows) the bad-event e-process is
a test supermartingale, so ``P(ever log E >= log(1/alpha)) <= alpha``.

Stable latencies go into a deterministic fixed-bin log histogram (``sketch_size`` bins between
``lo_ms`` and ``hi_ms``, relative bin width about 0.9% by default): bounded memory, no
randomness. The threshold is the upper edge of the bin holding the quantile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._bad_event import DEFAULT_RHO_GRID, BadEventEProcess


class LogHistogram:
    """Counts of positive values in ``n_bins`` geometric bins over ``[lo, hi]`` (clamped)."""

    def __init__(self, n_bins: int = 2048, lo: float = 0.01, hi: float = 1e6) -> None:
        if n_bins < 2 or not 0.0 < lo < hi:
            raise ValueError(f"bad histogram: n_bins={n_bins} lo={lo} hi={hi}")
        self.n_bins, self.lo, self.hi = int(n_bins), float(lo), float(hi)
        self._log_lo = math.log(lo)
        self._scale = n_bins / (math.log(hi) - self._log_lo)
        self.counts = np.zeros(self.n_bins, dtype=np.int64)
        self.total = 0

    def _index(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            i = np.floor((np.log(np.maximum(x, 1e-300)) - self._log_lo) * self._scale)
        return np.clip(i, 0, self.n_bins - 1).astype(np.int64)

    def add(self, x: float) -> None:
        """Add one value (NaN is ignored)."""
        if math.isnan(x):
            return
        i = math.floor((math.log(max(x, 1e-300)) - self._log_lo) * self._scale)
        self.counts[min(max(i, 0), self.n_bins - 1)] += 1
        self.total += 1

    def add_many(self, x: np.ndarray) -> None:
        """Add values (NaN values are ignored)."""
        x = np.asarray(x, dtype=float)
        x = x[~np.isnan(x)]
        if x.size:
            self.counts += np.bincount(self._index(x), minlength=self.n_bins)
            self.total += int(x.size)

    def upper_edge(self, i: int) -> float:
        """Upper edge of bin ``i``."""
        return math.exp(self._log_lo + (i + 1) / self._scale)

    def quantile(self, p: float) -> float:
        """Upper edge of the bin that holds the ``p``-quantile (NaN when empty)."""
        if self.total == 0:
            return math.nan
        rank = max(1, math.ceil(p * self.total))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        return self.upper_edge(min(i, self.n_bins - 1))

    def to_state(self) -> dict[str, Any]:
        nz = np.flatnonzero(self.counts)
        return {
            "n_bins": self.n_bins,
            "lo": self.lo,
            "hi": self.hi,
            "bins": nz.tolist(),
            "counts": self.counts[nz].tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LogHistogram:
        h = cls(state["n_bins"], state["lo"], state["hi"])
        h.counts[np.asarray(state["bins"], dtype=np.int64)] = state["counts"]
        h.total = int(h.counts.sum())
        return h


class TailExceedance:
    """Exceedance of a predictable stable ``p``-quantile, judged by a ``BadEventEProcess``.

    ``observe(..., judged=False)`` feeds the stable reference without judging (warm-up). Before
    ``min_reference`` stable values exist no threshold is set and nothing is judged.
    Refresh periods are ``floor((t - t_first) / refresh_s)``, ``t_first`` the first time seen.
    """

    def __init__(
        self,
        p: float = 0.99,
        refresh_s: float = 60.0,
        rho0: float = 1.0,
        sketch_size: int = 2048,
        grid: Sequence[float] = DEFAULT_RHO_GRID,
        min_reference: int | None = None,
        lo_ms: float = 0.01,
        hi_ms: float = 1e6,
    ) -> None:
        if not 0.0 < p < 1.0 or not refresh_s > 0.0:
            raise ValueError(f"need 0 < p < 1 and refresh_s > 0, got p={p!r} {refresh_s!r}")
        self.p = float(p)
        self.refresh_s = float(refresh_s)
        self.min_reference = (
            math.ceil(10.0 / (1.0 - p)) if min_reference is None else int(min_reference)
        )
        self.hist = LogHistogram(sketch_size, lo_ms, hi_ms)
        self.bad = BadEventEProcess(rho0=rho0, grid=grid)
        self.threshold: float | None = None
        self._origin: float | None = None
        self._period: int | None = None
        self.n_judged_canary = 0
        self.n_judged_baseline = 0

    @property
    def log_e(self) -> float:
        """``log E_n`` of the exceedance e-process."""
        return self.bad.log_e

    @property
    def max_log_e(self) -> float:
        """Running maximum of ``log E_n``."""
        return self.bad.max_log_e

    def _enter(self, period: int) -> None:
        if period != self._period:
            self._period = period
            ok = self.hist.total >= self.min_reference
            self.threshold = self.hist.quantile(self.p) if ok else None

    def _period_of(self, t: np.ndarray) -> np.ndarray:
        if self._origin is None:
            self._origin = float(t[0])
        return np.floor((t - self._origin) / self.refresh_s).astype(np.int64)

    def observe(
        self, t: float, is_canary: bool, latency_ms: float, w: float, judged: bool = True
    ) -> None:
        """Add one request in arrival order (scalar path, O(1) plus O(J) on an exceedance)."""
        if self._origin is None:
            self._origin = float(t)
        self._enter(math.floor((t - self._origin) / self.refresh_s))
        if judged and self.threshold is not None:
            if is_canary:
                self.n_judged_canary += 1
            else:
                self.n_judged_baseline += 1
            if latency_ms > self.threshold:
                self.bad.update(is_canary, w)
        if not is_canary:
            self.hist.add(latency_ms)

    def observe_many(
        self,
        t: np.ndarray,
        is_canary: np.ndarray,
        latency_ms: np.ndarray,
        w: np.ndarray,
        judged: np.ndarray | None = None,
    ) -> None:
        """Add requests in arrival order (vectorised per refresh period)."""
        t = np.asarray(t, dtype=float)
        if t.size == 0:
            return
        c = np.asarray(is_canary, dtype=bool)
        x = np.asarray(latency_ms, dtype=float)
        ww = np.asarray(w, dtype=float)
        j = np.ones(t.size, dtype=bool) if judged is None else np.asarray(judged, dtype=bool)
        per = self._period_of(t)
        cuts = np.flatnonzero(np.diff(per)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, t.size], strict=True):
            self._enter(int(per[lo]))
            seg = slice(int(lo), int(hi))
            if self.threshold is not None:
                exc = j[seg] & (x[seg] > self.threshold)
                cj = c[seg] & j[seg]
                self.n_judged_canary += int(cj.sum())
                self.n_judged_baseline += int((j[seg] & ~c[seg]).sum())
                if exc.any():
                    self.bad.update_many(c[seg][exc], ww[seg][exc])
            self.hist.add_many(x[seg][~c[seg]])

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (sparse histogram, exceedance e-process, current period)."""
        return {
            "p": self.p,
            "refresh_s": self.refresh_s,
            "min_reference": self.min_reference,
            "hist": self.hist.to_state(),
            "bad": self.bad.to_state(),
            "threshold": self.threshold,
            "origin": self._origin,
            "period": self._period,
            "n_judged_canary": self.n_judged_canary,
            "n_judged_baseline": self.n_judged_baseline,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TailExceedance:
        h = state["hist"]
        b = state["bad"]
        p = cls(
            p=state["p"],
            refresh_s=state["refresh_s"],
            rho0=b["rho0"],
            sketch_size=h["n_bins"],
            grid=b["grid"],
            min_reference=state["min_reference"],
            lo_ms=h["lo"],
            hi_ms=h["hi"],
        )
        p.hist = LogHistogram.from_state(h)
        p.bad = BadEventEProcess.from_state(b)
        p.threshold = state["threshold"]
        p._origin = state["origin"]
        p._period = state["period"]
        p.n_judged_canary = int(state["n_judged_canary"])
        p.n_judged_baseline = int(state["n_judged_baseline"])
        return p
