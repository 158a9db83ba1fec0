"""Built-in judges, one per file (see ``rayrollout.analysis.registry`` for their kinds)."""

from __future__ import annotations

from rayrollout.analysis.judges.accuracy import AccuracyJudge
from rayrollout.analysis.judges.disagreement import DisagreementJudge
from rayrollout.analysis.judges.drift import DriftJudge
from rayrollout.analysis.judges.errors import ErrorRateJudge
from rayrollout.analysis.judges.fake import FakeJudge
from rayrollout.analysis.judges.latency import LatencyJudge
from rayrollout.analysis.judges.latency_tail import LatencyTailJudge
from rayrollout.analysis.judges.promql import PromQLCompareJudge, PromQLJudge, PromQLThresholdJudge
from rayrollout.analysis.judges.threshold import ThresholdErrorJudge, ThresholdLatencyJudge

__all__ = [
    "AccuracyJudge",
    "DisagreementJudge",
    "DriftJudge",
    "ErrorRateJudge",
    "FakeJudge",
    "LatencyJudge",
    "LatencyTailJudge",
    "PromQLCompareJudge",
    "PromQLJudge",
    "PromQLThresholdJudge",
    "ThresholdErrorJudge",
    "ThresholdLatencyJudge",
]
