"""The pure analysis core: anytime-valid e-processes and the judges built on them.

No Ray, no clock, no own randomness: time comes with the events and ``result(now)``.
Assumptions the sequential judges rely on (STATISTICS.md section 1): each request is routed to
the candidate at random with a recorded weight, independently of its content and outcome
(sticky routing: use ``unit_mode="session"``); both arms are recorded by the same pipeline and
clock; warm-up is excluded with ``warmup_s``. Under these, a judge with alpha share ``a``
falsely FAILs a candidate that is not worse with probability at most ``a`` over the whole
rollout, however often it is looked at; ``budget.split_alpha`` splits one alpha over checks.
"""

from __future__ import annotations

from rayrollout.analysis.base import Judge, LabelledEvent
from rayrollout.analysis.budget import AlphaBudget, split_alpha
from rayrollout.analysis.eprocess import (
    ArmBetDifference,
    ArmBetEProcess,
    ArmBetLatency,
    BadEventEProcess,
    BettingMeanEProcess,
    BinnedDriftEProcess,
    BinnedToleranceEProcess,
    BlockPairedDifference,
    BlockPairedLatency,
    SignBetEProcess,
    TailExceedance,
    beta_mixture_log_e,
    rho_confidence_sequence,
)
from rayrollout.analysis.judges import (
    AccuracyJudge,
    DisagreementJudge,
    DriftJudge,
    ErrorRateJudge,
    FakeJudge,
    LatencyJudge,
    LatencyTailJudge,
    ThresholdErrorJudge,
    ThresholdLatencyJudge,
)
from rayrollout.analysis.registry import JUDGE_KINDS, make_judge, restore_judge
from rayrollout.analysis.result import CheckResult, Verdict, worst

__all__ = [
    "JUDGE_KINDS",
    "AccuracyJudge",
    "AlphaBudget",
    "ArmBetDifference",
    "ArmBetEProcess",
    "ArmBetLatency",
    "BadEventEProcess",
    "BettingMeanEProcess",
    "BinnedDriftEProcess",
    "BinnedToleranceEProcess",
    "BlockPairedDifference",
    "BlockPairedLatency",
    "CheckResult",
    "DisagreementJudge",
    "DriftJudge",
    "ErrorRateJudge",
    "FakeJudge",
    "Judge",
    "LabelledEvent",
    "LatencyJudge",
    "LatencyTailJudge",
    "SignBetEProcess",
    "TailExceedance",
    "ThresholdErrorJudge",
    "ThresholdLatencyJudge",
    "Verdict",
    "beta_mixture_log_e",
    "make_judge",
    "restore_judge",
    "rho_confidence_sequence",
    "split_alpha",
    "worst",
]
