"""Argo Rollouts / Flagger style threshold checks.

Every ``interval_s`` (after ``initialDelay`` = the scenario's warm-up exclusion) the last
interval's canary error rate and p99 latency are checked:

* absolute (Flagger built-ins): error rate > 1% (success rate < 99%), p99 > 500 ms;
* relative: canary > ``ratio`` x stable in the same window (error rate, p99).

Argo: per metric, the analysis fails as soon as that metric's failed measurements exceed
``failureLimit``. Flagger: one failed-checks counter for the canary (a check fails if any
metric fails); the rollback is issued on the next tick after it reaches ``threshold``.
A window without canary requests yields no value: Flagger halts advancement ("no values
found") without counting a failure; Argo's measurement is inconclusive, not failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.detection.aggregates import arm_window_stats
from benchmarks.detection.methods.base import Outcome, outcome_at
from benchmarks.detection.scenario import Scenario
from benchmarks.detection.simulator import Run

MAX_ERROR_RATE = 0.01
MAX_P99_MS = 500.0


@dataclass
class ThresholdCheck:
    tool: str = "argo"  # "argo" (failureLimit) or "flagger" (threshold)
    limit: int = 0  # Argo failureLimit, or Flagger threshold
    mode: str = "abs"  # "abs" or "rel"
    interval_s: float = 60.0
    ratio: float = 1.2

    @property
    def name(self) -> str:
        knob = f"fl{self.limit}" if self.tool == "argo" else f"t{self.limit}"
        return f"{self.tool}-{self.mode}-{knob}-{int(self.interval_s // 60)}m"

    def config(self) -> dict[str, Any]:
        return {"family": "threshold", "tool": self.tool, "limit": self.limit,
                "mode": self.mode, "interval_s": self.interval_s,
                "ratio": self.ratio if self.mode == "rel" else None,
                "max_error_rate": MAX_ERROR_RATE, "max_p99_ms": MAX_P99_MS}

    def failures(self, run: Run, start_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per window: (has canary data, error check failed, p99 check failed)."""
        n_win = int((run.horizon_s - start_s) // self.interval_s)
        can, st = arm_window_stats(run, start_s, self.interval_s, max(n_win, 0))
        has = can.n > 0
        with np.errstate(invalid="ignore"):
            if self.mode == "abs":
                f_err = can.err_rate > MAX_ERROR_RATE
                f_lat = can.p99 > MAX_P99_MS
            else:
                f_err = can.err_rate > self.ratio * st.err_rate
                f_lat = can.p99 > self.ratio * st.p99
        return has, f_err & has, f_lat & has

    def judge(self, run: Run, sc: Scenario, rng: np.random.Generator) -> Outcome:
        start = sc.warmup_s
        has, f_err, f_lat = self.failures(run, start)
        ends = start + self.interval_s * (np.arange(has.size) + 1)
        if self.tool == "argo":
            firsts = [(self._first(f), name) for name, f in (("error_rate", f_err), ("p99", f_lat))]
            hits = [(k, name) for k, name in firsts if k is not None]
            if hits:
                k, name = min(hits)
                return outcome_at(run, float(ends[k]), f"{name} failed > failureLimit {self.limit}")
            return outcome_at(run, None)
        failed = f_err | f_lat
        cum = np.cumsum(failed)
        hit = np.flatnonzero(cum >= max(self.limit, 1))
        if hit.size:
            t = float(ends[hit[0]]) + self.interval_s  # rollback on the next tick
            if t <= run.horizon_s:
                return outcome_at(run, t, f"{cum[hit[0]]} failed checks")
        return outcome_at(run, None)

    def _first(self, f: np.ndarray) -> int | None:
        hit = np.flatnonzero(np.cumsum(f) > self.limit)
        return int(hit[0]) if hit.size else None
