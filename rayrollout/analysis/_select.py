"""Event selection shared by the judges: the version pair, routing weights, sessions.

The sequential tests need, for each request, the probability ``w`` that it went to the
candidate *given* that it went to the candidate or the baseline: ``w_c / (w_c + w_b)``, with
the weights of the routing table in force (learned per epoch from the events, which carry
their own version's weight). When one of the two weights of an epoch has not been seen yet,
the two-version table ``w_other = 1 - w_own`` is assumed.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class EpochWeights:
    """Routing weights per (epoch, version), learned from events; bounded to ``max_epochs``."""

    def __init__(self, max_epochs: int = 4096) -> None:
        self.table: dict[int, dict[str, float]] = {}
        self.max_epochs = max_epochs

    def learn(
        self,
        epoch: np.ndarray,
        is_canary: np.ndarray,
        weight: np.ndarray,
        baseline: str,
        candidate: str,
    ) -> None:
        """Record the weight of the pair's versions per epoch seen (the last event wins)."""
        for e in np.unique(epoch):
            m = epoch == e
            for arm, version in ((is_canary, candidate), (~is_canary, baseline)):
                idx = np.flatnonzero(m & arm)
                if idx.size:
                    w = float(weight[idx[-1]])
                    if 0.0 <= w <= 1.0:
                        self.table.setdefault(int(e), {})[version] = w
        while len(self.table) > self.max_epochs:
            del self.table[min(self.table)]

    def pair_w(
        self,
        epoch: np.ndarray,
        is_canary: np.ndarray,
        own: np.ndarray,
        baseline: str,
        candidate: str,
    ) -> np.ndarray:
        """``P(candidate | candidate or baseline)`` for each event (NaN where ``own`` is NaN)."""
        wc = np.where(is_canary, own, 1.0 - own)
        wb = np.where(is_canary, 1.0 - own, own)
        for e in np.unique(epoch):
            known = self.table.get(int(e), {})
            m = epoch == e
            if candidate in known:
                wc[m & ~is_canary] = known[candidate]
            if baseline in known:
                wb[m & is_canary] = known[baseline]
        tot = wc + wb
        out: np.ndarray = np.divide(wc, tot, out=np.zeros_like(tot), where=tot > 0)
        return out

    def to_state(self) -> dict[str, Any]:
        return {str(e): dict(v) for e, v in self.table.items()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EpochWeights:
        ew = cls()
        ew.table = {int(e): {str(k): float(x) for k, x in v.items()} for e, v in state.items()}
        return ew


class UnitTracker:
    """Session bookkeeping: which units were seen (first request) or already counted as bad.

    Memory grows with the number of distinct units (documented cost of session mode).
    """

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def first_mask(self, unit: np.ndarray) -> np.ndarray:
        """True for an empty unit ("" = its own unit) or the first time a unit appears."""
        out = np.ones(unit.size, dtype=bool)
        for i in np.flatnonzero(unit != ""):
            u = str(unit[i])
            if u in self.seen:
                out[i] = False
            else:
                self.seen.add(u)
        return out

    def to_state(self) -> list[str]:
        return sorted(self.seen)

    @classmethod
    def from_state(cls, state: list[str]) -> UnitTracker:
        ut = cls()
        ut.seen = set(state)
        return ut
