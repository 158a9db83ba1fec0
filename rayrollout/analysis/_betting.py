"""Betting e-processes for bounded observations (STATISTICS.md sections 1.2 and 1.4).

``E_n = mean_j prod_i (1 + lambda_j z_i)`` with constant bets ``lambda_j >= 0``. When
``E[z_i | past] <= 0`` under the null and every factor stays positive, each product is a test
supermartingale, hence so is the mixture: ``P(sup_n E_n >= 1/alpha) <= alpha`` (Ville).
No distributional assumption beyond boundedness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._mix import CHUNK, as_float_list, log_mean_exp, log_mean_exp_rows

DEFAULT_LAMBDAS: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5)


class _BetMixture:
    """Mixture of constant bets on ``z`` with ``1 + lambda * z > 0`` required for every z."""

    def __init__(self, lambdas: Sequence[float]) -> None:
        lam = tuple(float(x) for x in lambdas)
        if not lam or any(not (x >= 0.0 and math.isfinite(x)) for x in lam):
            raise ValueError(f"bets must be non-negative finite numbers, got {lam!r}")
        self.lambdas = lam
        self._lam_arr = np.asarray(lam)
        self._s = [0.0] * len(lam)
        self._log_e = 0.0
        self._max_log_e = 0.0
        self.n = 0
        self.sum_z = 0.0

    @property
    def log_e(self) -> float:
        """``log E_n`` now (0.0 before any observation)."""
        return self._log_e

    @property
    def max_log_e(self) -> float:
        """Running maximum of ``log E_n`` (the quantity controlled by Ville's inequality)."""
        return self._max_log_e

    @property
    def mean_z(self) -> float:
        """Average observation so far (NaN before any)."""
        return self.sum_z / self.n if self.n else math.nan

    def _bet(self, z: float) -> float:
        if math.isnan(z):
            raise ValueError("observation is NaN")
        s = self._s
        for j, lam in enumerate(self.lambdas):
            f = 1.0 + lam * z
            if f <= 0.0:
                raise ValueError(f"bet {lam} on observation {z} is not positive")
            s[j] += math.log(f)
        self.n += 1
        self.sum_z += z
        self._log_e = log_mean_exp(s)
        if self._log_e > self._max_log_e:
            self._max_log_e = self._log_e
        return self._log_e

    def _bet_many(self, z: np.ndarray) -> float:
        z = np.asarray(z, dtype=float).ravel()
        if np.isnan(z).any():
            raise ValueError("observation is NaN")
        for lo in range(0, z.size, CHUNK):
            zc = z[lo : lo + CHUNK]
            f = 1.0 + zc[:, None] * self._lam_arr
            if (f <= 0.0).any():
                raise ValueError("a bet on an observation is not positive")
            path = np.asarray(self._s) + np.cumsum(np.log(f), axis=0)
            lme = log_mean_exp_rows(path)
            self._s = as_float_list(path[-1])
            self._log_e = float(lme[-1])
            self._max_log_e = max(self._max_log_e, float(lme.max()))
        self.n += z.size
        self.sum_z += float(z.sum())
        return self._log_e

    def _state(self) -> dict[str, Any]:
        return {
            "lambdas": list(self.lambdas),
            "s": list(self._s),
            "log_e": self._log_e,
            "max_log_e": self._max_log_e,
            "n": self.n,
            "sum_z": self.sum_z,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self._s = as_float_list(state["s"])
        self._log_e = float(state["log_e"])
        self._max_log_e = float(state["max_log_e"])
        self.n = int(state["n"])
        self.sum_z = float(state["sum_z"])


class SignBetEProcess(_BetMixture):
    """Betting on ``z in [-1, 1]`` with ``E[z | past] <= 0`` under H0; bets in [0, 1).

    Used by test B (``z`` = block-averaged signs) and paired score differences.
    """

    def __init__(self, lambdas: Sequence[float] = DEFAULT_LAMBDAS) -> None:
        super().__init__(lambdas)
        if any(lam >= 1.0 for lam in self.lambdas):
            raise ValueError(f"bets must be < 1 for z in [-1, 1], got {self.lambdas!r}")

    def update(self, z: float) -> float:
        """Add one observation in [-1, 1]; return ``log E_n``. O(J)."""
        if not -1.0 <= z <= 1.0:
            raise ValueError(f"z must lie in [-1, 1], got {z!r}")
        return self._bet(z)

    def update_many(self, z: np.ndarray) -> float:
        """Add observations in order; same result as a loop of ``update`` (to rounding)."""
        za = np.asarray(z, dtype=float)
        if za.size and (za.min() < -1.0 or za.max() > 1.0):
            raise ValueError("z must lie in [-1, 1]")
        return self._bet_many(za)

    def to_state(self) -> dict[str, Any]:
        """JSON-able state; ``from_state(to_state())`` continues identically."""
        return self._state()

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SignBetEProcess:
        p = cls(lambdas=state["lambdas"])
        p._load(state)
        return p


def default_mean_bets(d0: float, n: int = 8) -> tuple[float, ...]:
    """Geometric bets ``0.9/d0 * 2**-k`` (k < n): from near-maximal down to cautious."""
    return tuple(0.9 / d0 * 2.0 ** (-k) for k in range(n))


class BettingMeanEProcess(_BetMixture):
    """Waudby-Smith & Ramdas betting for ``H0: E[D | past] <= d0`` with ``D in [0, 1]``.

    Factor ``1 + lambda (D - d0)`` with ``lambda in [0, 1/d0)`` stays positive. Used for shadow
    disagreement. ``lambdas=None`` picks ``default_mean_bets(d0)``.
    """

    def __init__(self, d0: float, lambdas: Sequence[float] | None = None) -> None:
        if not 0.0 < d0 < 1.0:
            raise ValueError(f"d0 must lie in (0, 1), got {d0!r}")
        super().__init__(default_mean_bets(d0) if lambdas is None else lambdas)
        if any(lam >= 1.0 / d0 for lam in self.lambdas):
            raise ValueError(f"bets must be < 1/d0 = {1.0 / d0:g}, got {self.lambdas!r}")
        self.d0 = float(d0)

    @property
    def mean(self) -> float:
        """Average of the observations ``D`` (NaN before any)."""
        return self.mean_z + self.d0

    def update(self, d: float) -> float:
        """Add one observation in [0, 1]; return ``log E_n``. O(J)."""
        if not 0.0 <= d <= 1.0:
            raise ValueError(f"D must lie in [0, 1], got {d!r}")
        return self._bet(d - self.d0)

    def update_many(self, d: np.ndarray) -> float:
        """Add observations in order; same result as a loop of ``update`` (to rounding)."""
        da = np.asarray(d, dtype=float)
        if da.size and (da.min() < 0.0 or da.max() > 1.0):
            raise ValueError("D must lie in [0, 1]")
        return self._bet_many(da - self.d0)

    def to_state(self) -> dict[str, Any]:
        """JSON-able state; ``from_state(to_state())`` continues identically."""
        return {**self._state(), "d0": self.d0}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BettingMeanEProcess:
        p = cls(d0=state["d0"], lambdas=state["lambdas"])
        p._load(state)
        return p
