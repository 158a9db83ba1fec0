"""The explicit registry of judge kinds: config name -> class. No silent default.

``make_judge(kind, params)`` builds a judge from a config's params dict and
``restore_judge(state)`` rebuilds one from ``to_state()`` (restarted controller). An unknown
kind or an unknown/invalid parameter raises ``ValueError`` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rayrollout.analysis.base import Judge
from rayrollout.analysis.judges.accuracy import AccuracyJudge
from rayrollout.analysis.judges.disagreement import DisagreementJudge
from rayrollout.analysis.judges.drift import DriftJudge
from rayrollout.analysis.judges.errors import ErrorRateJudge
from rayrollout.analysis.judges.latency import LatencyJudge
from rayrollout.analysis.judges.latency_tail import LatencyTailJudge
from rayrollout.analysis.judges.threshold import ThresholdErrorJudge, ThresholdLatencyJudge

JUDGE_KINDS: Mapping[str, Any] = {
    "errors": ErrorRateJudge,
    "latency": LatencyJudge,
    "latency_tail": LatencyTailJudge,
    "drift": DriftJudge,
    "disagreement": DisagreementJudge,
    "accuracy": AccuracyJudge,
    "threshold_errors": ThresholdErrorJudge,
    "threshold_latency": ThresholdLatencyJudge,
}

# Kinds that are anytime-valid tests and so take a share of the alpha budget.
SEQUENTIAL_KINDS = frozenset(
    {"errors", "latency", "latency_tail", "drift", "disagreement", "accuracy"}
)


def _cls(kind: str) -> Any:
    try:
        return JUDGE_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown judge kind {kind!r}; known: {sorted(JUDGE_KINDS)}") from None


def make_judge(kind: str, params: Mapping[str, Any] | None = None) -> Judge:
    """Build a judge of ``kind`` from ``params`` (keyword arguments of its class)."""
    cls = _cls(kind)
    try:
        judge: Judge = cls(**dict(params or {}))
    except TypeError as e:  # an unknown or missing parameter
        raise ValueError(f"bad params for judge kind {kind!r}: {e}") from e
    return judge


def restore_judge(state: Mapping[str, Any]) -> Judge:
    """Rebuild a judge from its ``to_state()``; it continues exactly where it was."""
    judge: Judge = _cls(str(state.get("kind"))).from_state(dict(state))
    return judge
