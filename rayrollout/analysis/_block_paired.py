"""Test B: block-paired comparisons of contemporaneous canary and stable values (section 1.2).

For the i-th canary observation ``X_i`` the block ``S_i`` is the stable observations that
arrive after it and before the next canary observation. A block is finalised when the next
canary arrives; an empty block is skipped. ``Z_i = mean_{j in S_i} score(X_i, Y_j)`` lies in
[-1, 1] and feeds a ``SignBetEProcess``.

Validity: arms are chosen at random independently of outcomes, so under H0 ("canary is not
worse than stable at the same time") ``E[Z_i | past] <= 0`` and the mixture of bets is a test
supermartingale: ``P(sup_n E_n >= 1/alpha) <= alpha``. No distributional assumption; robust to
load changes because comparisons are contemporaneous. State is O(J) plus one open block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._betting import DEFAULT_LAMBDAS, SignBetEProcess


class _BlockPaired:
    """Shared streaming and vectorised block logic; subclasses define the score."""

    def __init__(self, lambdas: Sequence[float]) -> None:
        self.bet = SignBetEProcess(lambdas)
        self._open = False  # a canary observation is waiting for its block to close
        self._x = 0.0
        self._acc = 0.0
        self._cnt = 0

    def _score(self, x: float, y: float) -> float:
        raise NotImplementedError

    def _score_v(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def log_e(self) -> float:
        """``log E_n`` over finalised blocks."""
        return self.bet.log_e

    @property
    def max_log_e(self) -> float:
        """Running maximum of ``log E_n``."""
        return self.bet.max_log_e

    @property
    def n(self) -> int:
        """Finalised (non-empty) blocks."""
        return self.bet.n

    def observe(self, is_canary: bool, value: float) -> None:
        """Add one observation in arrival order. O(1) for stable, O(J) when a block closes."""
        if math.isnan(value):
            raise ValueError("observation is NaN")
        if is_canary:
            if self._open and self._cnt > 0:
                self.bet.update(self._acc / self._cnt)
            self._open, self._x, self._acc, self._cnt = True, float(value), 0.0, 0
        elif self._open:
            self._acc += self._score(self._x, value)
            self._cnt += 1

    def observe_many(self, is_canary: np.ndarray, values: np.ndarray) -> None:
        """Vectorised ``observe`` over arrays in arrival order (same result as a loop)."""
        c = np.asarray(is_canary, dtype=bool)
        v = np.asarray(values, dtype=float)
        if c.shape != v.shape:
            raise ValueError(f"shape mismatch: {c.shape} vs {v.shape}")
        if v.size == 0:
            return
        if np.isnan(v).any():
            raise ValueError("observation is NaN")
        grp = np.cumsum(c)  # 0: before the first canary of the batch (the open block)
        k = int(grp[-1])
        anchors = np.empty(k + 1)
        anchors[0] = self._x if self._open else math.nan
        anchors[1:] = v[c]
        sel = ~c & ((grp > 0) | self._open)
        g = grp[sel]
        scores = self._score_v(anchors[g], v[sel])
        acc = np.bincount(g, weights=scores, minlength=k + 1)
        cnt = np.bincount(g, minlength=k + 1)
        acc[0] += self._acc
        cnt[0] += self._cnt
        if k == 0:
            self._acc, self._cnt = float(acc[0]), int(cnt[0])
            return
        first = 0 if self._open else 1
        fa, fc = acc[first:k], cnt[first:k]
        nz = fc > 0
        if nz.any():
            self.bet.update_many(fa[nz] / fc[nz])
        self._open, self._x, self._acc, self._cnt = (
            True,
            float(anchors[k]),
            float(acc[k]),
            int(cnt[k]),
        )

    def _state(self) -> dict[str, Any]:
        return {
            "bet": self.bet.to_state(),
            "open": self._open,
            "x": self._x,
            "acc": self._acc,
            "cnt": self._cnt,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.bet = SignBetEProcess.from_state(state["bet"])
        self._open = bool(state["open"])
        self._x = float(state["x"])
        self._acc = float(state["acc"])
        self._cnt = int(state["cnt"])


class BlockPairedLatency(_BlockPaired):
    """Test B on latency: ``score = sign(X - (1 + tau) Y - delta_ms)``.

    H0: contemporaneous canary latency is not stochastically larger than ``(1 + tau)`` times
    stable latency plus ``delta_ms`` (``CLES = P(X > (1+tau) Y + delta) <= 1/2``).
    """

    def __init__(
        self, tau: float = 0.0, delta_ms: float = 0.0, lambdas: Sequence[float] = DEFAULT_LAMBDAS
    ) -> None:
        if not tau >= 0.0 or not delta_ms >= 0.0:
            raise ValueError(f"tolerances must be >= 0, got tau={tau!r} delta_ms={delta_ms!r}")
        super().__init__(lambdas)
        self.tau = float(tau)
        self.delta_ms = float(delta_ms)
        self._m = 1.0 + self.tau

    def _score(self, x: float, y: float) -> float:
        d = x - self._m * y - self.delta_ms
        return 1.0 if d > 0.0 else (-1.0 if d < 0.0 else 0.0)

    def _score_v(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.sign(x - self._m * y - self.delta_ms)
        return out

    @property
    def cles(self) -> float:
        """Estimated ``P(X > (1+tau) Y + delta) + P(tie)/2`` over finalised blocks (NaN if none)."""
        return (self.bet.mean_z + 1.0) / 2.0

    def to_state(self) -> dict[str, Any]:
        """JSON-able state, including the open block."""
        return {**self._state(), "tau": self.tau, "delta_ms": self.delta_ms}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BlockPairedLatency:
        p = cls(tau=state["tau"], delta_ms=state["delta_ms"], lambdas=state["bet"]["lambdas"])
        p._load(state)
        return p


class BlockPairedDifference(_BlockPaired):
    """Block-paired betting on ``(X - Y - delta) / (1 + delta)`` for values in [0, 1].

    H0: the canary's contemporaneous mean is at most the stable mean plus ``delta``. Used on
    Brier scores (accuracy/calibration), where larger is worse.
    """

    def __init__(self, delta: float = 0.0, lambdas: Sequence[float] = DEFAULT_LAMBDAS) -> None:
        if not 0.0 <= delta < 1.0:
            raise ValueError(f"delta must lie in [0, 1), got {delta!r}")
        super().__init__(lambdas)
        self.delta = float(delta)

    def _check(self, x: float) -> None:
        if not 0.0 <= x <= 1.0:
            raise ValueError(f"value must lie in [0, 1], got {x!r}")

    def observe(self, is_canary: bool, value: float) -> None:
        self._check(value)
        super().observe(is_canary, value)

    def observe_many(self, is_canary: np.ndarray, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=float)
        if v.size and not ((v >= 0.0) & (v <= 1.0)).all():
            raise ValueError("values must lie in [0, 1]")
        super().observe_many(is_canary, v)

    def _score(self, x: float, y: float) -> float:
        return (x - y - self.delta) / (1.0 + self.delta)

    def _score_v(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out: np.ndarray = (x - y - self.delta) / (1.0 + self.delta)
        return out

    @property
    def mean_difference(self) -> float:
        """Average block difference ``X - mean(Y)`` (NaN before any block)."""
        return self.bet.mean_z * (1.0 + self.delta) + self.delta

    def to_state(self) -> dict[str, Any]:
        """JSON-able state, including the open block."""
        return {**self._state(), "delta": self.delta}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BlockPairedDifference:
        p = cls(delta=state["delta"], lambdas=state["bet"]["lambdas"])
        p._load(state)
        return p
