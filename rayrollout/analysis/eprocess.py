"""The low-level anytime-valid e-processes: pure Python + numpy, O(J) state each.

Every process here exposes ``log_e`` (natural log of the e-value now), ``max_log_e`` (its
running maximum) and ``to_state()`` / ``from_state()`` with JSON-able dicts. Under its null
hypothesis each one is a test supermartingale (or a mixture of them), so for any ``alpha``
the probability that ``log_e`` *ever* reaches ``log(1/alpha)`` is at most ``alpha`` (Ville's
inequality), however often it is looked at. The formulas follow STATISTICS.md section 1.

* ``BadEventEProcess`` — test A: bad events (errors, timeouts, wrong labels, exceedances).
* ``SignBetEProcess`` — mixture of constant bets on ``z in [-1, 1]``.
* ``ArmBetLatency`` — test B': bets on the randomised arm against each latency's rank at its
  moment (valid under any latency level both arms share); ``ArmBetDifference`` on scores in
  [0, 1]; ``ArmBetEProcess`` the bets themselves.
* ``BlockPairedLatency`` — test B on latency; ``BlockPairedDifference`` on scores in [0, 1]
  (valid only while the shared level holds still within a block, events in arrival order).
* ``TailExceedance`` — test C: exceedances of a predictable stable quantile, into test A.
* ``BinnedDriftEProcess`` / ``BinnedToleranceEProcess`` — test D on prediction bins.
* ``BettingMeanEProcess`` — shadow disagreement, ``H0: E[D] <= d0``.
* ``beta_mixture_log_e`` / ``rho_confidence_sequence`` — constant-weight closed forms.
"""

from __future__ import annotations

from rayrollout.analysis._arm_bet import ArmBetDifference, ArmBetEProcess, ArmBetLatency
from rayrollout.analysis._bad_event import DEFAULT_RHO_GRID, BadEventEProcess, theta
from rayrollout.analysis._betting import (
    DEFAULT_LAMBDAS,
    BettingMeanEProcess,
    SignBetEProcess,
    default_mean_bets,
)
from rayrollout.analysis._block_paired import BlockPairedDifference, BlockPairedLatency
from rayrollout.analysis._drift import BinnedDriftEProcess, BinnedToleranceEProcess
from rayrollout.analysis._mixture import (
    DEFAULT_KAPPA,
    beta_mixture_log_e,
    beta_mixture_two_sided_log_e,
    rho_confidence_sequence,
)
from rayrollout.analysis._tail import LogHistogram, TailExceedance

__all__ = [
    "DEFAULT_KAPPA",
    "DEFAULT_LAMBDAS",
    "DEFAULT_RHO_GRID",
    "ArmBetDifference",
    "ArmBetEProcess",
    "ArmBetLatency",
    "BadEventEProcess",
    "BettingMeanEProcess",
    "BinnedDriftEProcess",
    "BinnedToleranceEProcess",
    "BlockPairedDifference",
    "BlockPairedLatency",
    "LogHistogram",
    "SignBetEProcess",
    "TailExceedance",
    "beta_mixture_log_e",
    "beta_mixture_two_sided_log_e",
    "default_mean_bets",
    "rho_confidence_sequence",
    "theta",
]
