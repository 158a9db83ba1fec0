"""Test B' (arm bets): comparisons that rest only on the router's randomisation.

Each request goes to the candidate with a recorded probability ``w`` (the pair's share), drawn
independently of everything else. So given the past, the request's arm ``A`` is a fair coin of
bias ``w`` *whatever the latency level at that moment*. For a score ``g`` in [-1, 1] that is
increasing in the observed value and fixed before the request (predictable),

    E[(A - w) g(M) | past] = w (1 - w) (E[g(M) | canary, now] - E[g(M) | stable, now])

where ``M`` is the value (the candidate's divided by ``1 + tau`` after subtracting ``delta``).
Under H0 ("at every moment the candidate's value is not stochastically larger than
``(1 + tau)`` x the stable's + ``delta``") the bracket is <= 0, so with
``z = (A - w) g(M) / max(w, 1 - w)`` in [-1, 1] each constant bet ``prod (1 + lambda z)`` is a
test supermartingale and so is their mixture: ``P(sup E_n >= 1/alpha) <= alpha`` (Ville).

What this needs, and what it does not:

* the arm drawn at random with the recorded ``w`` (pins and sticky keys excluded or the session
  as the unit), and the same clock and pipeline for both arms;
* no pairing across time and no particular order: a latency level shared by both arms may jump
  and decay (load spikes), and events may come in any order that does not depend on the arm;
* no distributional assumption; heavy tails are fine.

``g`` is the centred mid-rank of ``M`` among a reference of the last ``window`` values (both
arms) seen *before* the batch, so it is predictable and tracks the current level; for scores
already in [0, 1] (Brier) ``g`` is linear. Cost: one ``searchsorted`` and O(J) bets per request,
vectorised per batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._betting import DEFAULT_LAMBDAS, _BetMixture
from rayrollout.analysis._mix import as_float_list

DEFAULT_WINDOW = 200


class ArmBetEProcess(_BetMixture):
    """Bets on ``z = (A - w) g / max(w, 1 - w)`` with a predictable ``g`` in [-1, 1].

    ``effect`` estimates ``E[g | canary] - E[g | stable]`` (in [-2, 2]) from the observations:
    ``sum (A - w) g / sum w (1 - w)``."""

    def __init__(self, lambdas: Sequence[float] = DEFAULT_LAMBDAS) -> None:
        super().__init__(lambdas)
        if any(lam >= 1.0 for lam in self.lambdas):
            raise ValueError(f"bets must be < 1 for z in [-1, 1], got {self.lambdas!r}")
        self.sum_ag = 0.0
        self.sum_var = 0.0

    @property
    def effect(self) -> float:
        return self.sum_ag / self.sum_var if self.sum_var > 0.0 else math.nan

    def update_many(self, is_canary: np.ndarray, w: np.ndarray, g: np.ndarray) -> float:
        """Bet on each request in turn; ``w`` in [0, 1], ``g`` in [-1, 1]. Returns log E.

        A request whose arm was certain (``w`` 0 or 1: a table without one of the pair) says
        nothing about the arms and is skipped."""
        wa = np.asarray(w, dtype=float)
        if wa.size and not ((wa >= 0.0) & (wa <= 1.0)).all():
            raise ValueError("w must lie in [0, 1]")
        keep = (wa > 0.0) & (wa < 1.0)
        a = np.asarray(is_canary, dtype=float)[keep]
        ga = np.asarray(g, dtype=float)[keep]
        wa = wa[keep]
        if a.size == 0:
            return self._log_e
        if np.abs(ga).max() > 1.0 + 1e-12:
            raise ValueError("g must lie in [-1, 1]")
        d = (a - wa) * ga
        self.sum_ag += float(d.sum())
        self.sum_var += float((wa * (1.0 - wa)).sum())
        return self._bet_many(np.clip(d / np.maximum(wa, 1.0 - wa), -1.0, 1.0))

    def to_state(self) -> dict[str, Any]:
        return {**self._state(), "sum_ag": self.sum_ag, "sum_var": self.sum_var}

    def load(self, state: dict[str, Any]) -> None:
        self._load(state)
        self.sum_ag = float(state["sum_ag"])
        self.sum_var = float(state["sum_var"])


def midrank_scores(reference: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Centred mid-rank of each ``m`` in a sorted ``reference``: in [-1, 1], 0 when empty."""
    k = reference.size
    if k == 0:
        return np.zeros(m.shape)
    lo = np.searchsorted(reference, m, side="left")
    hi = np.searchsorted(reference, m, side="right")
    out: np.ndarray = (lo + hi) / k - 1.0
    return out


class _Windowed:
    """An arm-bet e-process with its reference: the last ``window`` values seen before each
    batch (both arms, the candidate's already shifted by the tolerance), oldest first."""

    def __init__(self, lambdas: Sequence[float], window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window!r}")
        self.window = int(window)
        self.bet = ArmBetEProcess(lambdas)
        self._ref: list[float] = []

    @property
    def log_e(self) -> float:
        return self.bet.log_e

    @property
    def max_log_e(self) -> float:
        return self.bet.max_log_e

    @property
    def n(self) -> int:
        """Requests bet on (each one a comparison against the moment's reference)."""
        return self.bet.n

    def _bet(self, c: np.ndarray, w: np.ndarray, g: np.ndarray, m: np.ndarray) -> None:
        """Bet on the batch, then let its values into the reference (after: predictable)."""
        self.bet.update_many(c, w, g)
        self._ref = [*self._ref, *as_float_list(m)][-self.window:]

    def _state(self) -> dict[str, Any]:
        return {"bet": self.bet.to_state(), "ref": list(self._ref), "window": self.window}

    def _load(self, state: dict[str, Any]) -> None:
        self.bet.load(state["bet"])
        self._ref = as_float_list(state["ref"])


class ArmBetLatency(_Windowed):
    """Test B' on latency: H0 "the candidate is not slower than ``(1 + tau)`` x the stable
    latency + ``delta_ms`` at the same moment". See the module docstring."""

    def __init__(self, tau: float = 0.0, delta_ms: float = 0.0,
                 lambdas: Sequence[float] = DEFAULT_LAMBDAS, window: int = DEFAULT_WINDOW
                 ) -> None:
        if not tau >= 0.0 or not delta_ms >= 0.0:
            raise ValueError(f"tolerances must be >= 0, got tau={tau!r} delta_ms={delta_ms!r}")
        super().__init__(lambdas, window)
        self.tau, self.delta_ms = float(tau), float(delta_ms)

    @property
    def cles(self) -> float:
        """Estimated ``P(candidate > (1+tau) stable + delta)`` (the rank effect halved, plus
        one half; NaN before any request)."""
        e = self.bet.effect
        return math.nan if math.isnan(e) else min(1.0, max(0.0, 0.5 + e / 2.0))

    def observe_many(self, is_canary: np.ndarray, w: np.ndarray, latency: np.ndarray) -> None:
        """One batch of requests (any order); ``w`` = P(candidate | pair) of each."""
        c = np.asarray(is_canary, dtype=bool)
        lat = np.asarray(latency, dtype=float)
        if lat.size == 0:
            return
        if np.isnan(lat).any():
            raise ValueError("observation is NaN")
        m = np.where(c, (lat - self.delta_ms) / (1.0 + self.tau), lat)
        self._bet(c, w, midrank_scores(np.sort(np.asarray(self._ref)), m), m)

    def to_state(self) -> dict[str, Any]:
        return {**self._state(), "tau": self.tau, "delta_ms": self.delta_ms}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ArmBetLatency:
        p = cls(tau=state["tau"], delta_ms=state["delta_ms"], lambdas=state["bet"]["lambdas"],
                window=state["window"])
        p._load(state)
        return p


class ArmBetDifference(_Windowed):
    """Test B' on scores in [0, 1] where larger is worse (Brier): H0 "the candidate's mean at
    each moment is at most the stable's + ``delta``". The null is about means, so ``g`` is
    affine in the value: ``g = (M - m) / (1 + delta)`` with ``M = s - delta`` for the candidate
    (``s`` for the stable) and ``m`` the mean of the last ``window`` values before the batch
    (predictable, so it takes out the level both arms share without touching validity)."""

    def __init__(self, delta: float = 0.0, lambdas: Sequence[float] = DEFAULT_LAMBDAS,
                 window: int = DEFAULT_WINDOW) -> None:
        if not 0.0 <= delta < 1.0:
            raise ValueError(f"delta must lie in [0, 1), got {delta!r}")
        super().__init__(lambdas, window)
        self.delta = float(delta)

    @property
    def mean_difference(self) -> float:
        """Estimated candidate minus stable mean (NaN before any observation)."""
        e = self.bet.effect
        return math.nan if math.isnan(e) else e * (1.0 + self.delta) + self.delta

    def observe_many(self, is_canary: np.ndarray, w: np.ndarray, scores: np.ndarray) -> None:
        c = np.asarray(is_canary, dtype=bool)
        s = np.asarray(scores, dtype=float)
        if s.size == 0:
            return
        if not ((s >= 0.0) & (s <= 1.0)).all():
            raise ValueError("values must lie in [0, 1]")
        m = np.where(c, s - self.delta, s)
        level = float(np.mean(self._ref)) if self._ref else 0.5
        g = np.clip((m - level) / (1.0 + self.delta), -1.0, 1.0)  # clip: rounding only
        self._bet(c, w, g, m)

    def to_state(self) -> dict[str, Any]:
        return {**self._state(), "delta": self.delta}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ArmBetDifference:
        p = cls(delta=state["delta"], lambdas=state["bet"]["lambdas"], window=state["window"])
        p._load(state)
        return p
