"""Kayenta-style canary analysis: NetflixACAJudge on per-minute series, growing window.

Per minute: canary error rate, p50 and p99 latency, against an equal-size random sample of
stable requests (the "baseline"). A judgment every ``interval_min`` minutes over all minutes
since ``begin_after`` (Kayenta ``beginAfterMins``; the scenario's warm-up exclusion), groups
errors 50 / latency 50, thresholds pass 95 / marginal 75. The canary is rolled back at an
intermediate judgment scoring ``<= marginal`` or when the final judgment (at the horizon)
scores ``< pass``. Metric direction "increase" (a canary that is faster or has fewer errors
is not a regression).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.detection.aggregates import sampled_baseline_stats
from benchmarks.detection.methods.base import Outcome, outcome_at
from benchmarks.detection.methods.kayenta_classifier import (
    Label,
    classify,
    weighted_sum_score,
)
from benchmarks.detection.scenario import Scenario
from benchmarks.detection.simulator import Run

GROUPS = {"error_rate": "errors", "p50": "latency", "p99": "latency"}


@dataclass
class KayentaJudge:
    interval_min: int = 10
    direction: str = "increase"
    allowed_increase: float = 1.0
    pass_threshold: float = 95.0
    marginal_threshold: float = 75.0
    weights: tuple[tuple[str, float], ...] = (("errors", 50.0), ("latency", 50.0))
    outliers: bool = False

    @property
    def name(self) -> str:
        return f"kayenta-{self.interval_min}m"

    def config(self) -> dict[str, Any]:
        return {"family": "kayenta", "interval_min": self.interval_min,
                "direction": self.direction, "allowed_increase": self.allowed_increase,
                "pass": self.pass_threshold, "marginal": self.marginal_threshold,
                "weights": dict(self.weights), "confidence": 0.98, "tolerance": 0.25,
                "outlier_removal": self.outliers}

    def judge(self, run: Run, sc: Scenario, rng: np.random.Generator) -> Outcome:
        start_min = math.ceil(sc.warmup_s / 60.0)
        n_min = int(run.horizon_s // 60) - start_min
        if n_min <= 0:
            return outcome_at(run, None)
        can, base = sampled_baseline_stats(run, rng, start_min * 60.0, 60.0, n_min)
        return self.judge_series(run, start_min, n_min, can, base)

    def judge_series(self, run: Run, start_min: int, n_min: int, can: Any, base: Any) -> Outcome:
        ends = [*range(self.interval_min, n_min, self.interval_min), n_min]
        scores = []
        for k, end in enumerate(ends):
            labels = {m: (GROUPS[m], self._label(run, can, base, attr, end))
                      for m, attr in (("error_rate", "err_rate"), ("p50", "p50"), ("p99", "p99"))}
            score = weighted_sum_score(labels, dict(self.weights))
            scores.append(score)
            final = k == len(ends) - 1
            if (not final and score <= self.marginal_threshold) or (
                final and score < self.pass_threshold
            ):
                t = (start_min + end) * 60.0
                bad = [m for m, (_, lab) in labels.items() if lab in (Label.HIGH, Label.LOW)]
                return outcome_at(run, t, f"score {score:.0f} at {end} min ({','.join(bad)})",
                                  scores=scores)
        return outcome_at(run, None, scores=scores)

    def _label(self, run: Run, can: Any, base: Any, attr: str, end: int) -> Label:
        """Classification of one metric over minutes [0, end); shared (cached on the run) by
        the judges of every interval, which see the same baseline sample."""
        key = ("kayenta", attr, end, self.direction, self.allowed_increase, self.outliers)
        if key not in run.cache:
            run.cache[key] = classify(getattr(base, attr)[:end], getattr(can, attr)[:end],
                                      direction=self.direction,
                                      allowed_increase=self.allowed_increase,
                                      outliers=self.outliers).label
        return run.cache[key]
