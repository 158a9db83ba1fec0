"""Plain SLO guards over a sliding window of recent candidate requests (not sequential tests).

These are the hard guards users know from Argo Rollouts / Flagger: the window's value against
a fixed budget. They have **no false-rollback bound** (``alpha = 0``): a noisy window can FAIL a
candidate identical to stable, which is why they are meant as floors far from normal values.
They do not latch: each ``result(now)`` judges the window ``(now - window_s, now]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis.base import LabelledEvent
from rayrollout.analysis.judges._common import capture_params, column_problem
from rayrollout.analysis.result import CheckResult, Verdict
from rayrollout.dataplane.events import EventBatch, Outcome, ShadowEvent


class Window:
    """A bounded ring of ``(t, value)`` pairs (the newest ``capacity`` are kept)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.t = np.zeros(0)
        self.v = np.zeros(0)

    def extend(self, t: np.ndarray, v: np.ndarray, horizon: float) -> None:
        """Append, dropping values older than ``horizon`` seconds before the newest, and cap."""
        self.t = np.concatenate([self.t, t])[-self.capacity :]
        self.v = np.concatenate([self.v, v])[-self.capacity :]
        if self.t.size:
            keep = self.t > self.t.max() - horizon
            self.t, self.v = self.t[keep], self.v[keep]

    def values(self, now: float, window_s: float) -> np.ndarray:
        out: np.ndarray = self.v[(self.t > now - window_s) & (self.t <= now)]
        return out


class _ThresholdJudge:
    kind = ""
    statistic = ""

    def __init__(
        self, name: str, budget: float, window_s: float, min_requests: int, capacity: int
    ) -> None:
        if not window_s > 0.0 or not min_requests >= 1:
            raise ValueError(f"{name}: need window_s > 0 and min_requests >= 1")
        self.name = name
        self.alpha = 0.0
        self.budget = float(budget)
        self.window_s = float(window_s)
        self.min_requests = int(min_requests)
        self.win = Window(capacity)
        self.pair: tuple[str, str] | None = None
        self.unreadable = 0
        self.problem = ""
        self.params: dict[str, Any] = {}

    def observe(
        self,
        events: EventBatch,
        baseline: str,
        candidate: str,
        shadow: Sequence[ShadowEvent] = (),
        labelled: Sequence[LabelledEvent] = (),
    ) -> None:
        """Keep the candidate's served requests (any routing) of the recent window."""
        self.pair = (baseline, candidate)
        if not len(events):
            return
        problem = column_problem(events)
        if problem:
            self.unreadable += len(events)
            self.problem = problem
            return
        m = (events.version == candidate) & (events.outcome != Outcome.REJECTED)
        t, v = self._values(events, m)
        self.win.extend(t, v, self.window_s * 2.0)

    def _values(self, events: EventBatch, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _value(self, v: np.ndarray) -> float:
        raise NotImplementedError

    def result(self, now: float) -> CheckResult:
        """FAIL when the window's value exceeds the budget (given ``min_requests``)."""
        v = self.win.values(now, self.window_s)
        nan = int(np.isnan(v).sum())
        good = v[~np.isnan(v)]
        value = self._value(good) if good.size else math.nan
        counts = {"window_requests": float(v.size), "unreadable": float(nan + self.unreadable)}

        def make(verdict: Verdict, reason: str) -> CheckResult:
            return CheckResult(
                check=self.name,
                verdict=verdict,
                statistic=self.statistic,
                value=None if math.isnan(value) else value,
                counts=counts,
                reason=reason,
            )

        head = (
            f"{self.statistic} {value:.4g} vs budget {self.budget:g} over the last "
            f"{self.window_s:g} s ({good.size} requests; no false-rollback bound)"
        )
        if good.size >= self.min_requests and value > self.budget:
            return make(Verdict.FAIL, head)
        if self.unreadable or (nan and nan > 0.05 * v.size):
            return make(Verdict.ERROR, f"metric unreadable: {self.problem or 'NaN values'}")
        if good.size < self.min_requests:
            return make(
                Verdict.INCONCLUSIVE,
                f"not enough data: {good.size} of "
                f"{self.min_requests} candidate requests in the window",
            )
        return make(Verdict.PASS, head)

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (only the window's values are kept)."""
        return {
            "kind": self.kind,
            "params": dict(self.params),
            "t": self.win.t.tolist(),
            "v": [None if math.isnan(x) else x for x in self.win.v.tolist()],
            "unreadable": self.unreadable,
            "problem": self.problem,
        }

    def _load(self, state: dict[str, Any]) -> None:
        self.win.t = np.asarray(state["t"], dtype=float)
        self.win.v = np.asarray([math.nan if x is None else x for x in state["v"]], dtype=float)
        self.unreadable = int(state["unreadable"])
        self.problem = str(state["problem"])


class ThresholdErrorJudge(_ThresholdJudge):
    """Error budget: FAIL when the candidate's ERROR+TIMEOUT rate in the window > budget."""

    kind = "threshold_errors"
    statistic = "error_rate"

    def __init__(
        self,
        name: str = "threshold_errors",
        max_error_rate: float = 0.01,
        window_s: float = 60.0,
        min_requests: int = 20,
        capacity: int = 100_000,
    ) -> None:
        params = capture_params(locals())
        super().__init__(name, max_error_rate, window_s, min_requests, capacity)
        self.params = params

    def _values(self, events: EventBatch, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        o = events.outcome[m]
        bad = (o == Outcome.ERROR) | (o == Outcome.TIMEOUT)
        return np.asarray(events.t[m], dtype=float), bad.astype(float)

    def _value(self, v: np.ndarray) -> float:
        return float(v.mean())

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ThresholdErrorJudge:
        j = cls(**state["params"])
        j._load(state)
        return j


class ThresholdLatencyJudge(_ThresholdJudge):
    """Latency budget: FAIL when the candidate's window ``quantile`` latency > ``max_ms``."""

    kind = "threshold_latency"
    statistic = "latency_quantile_ms"

    def __init__(
        self,
        name: str = "threshold_latency",
        max_ms: float = 500.0,
        quantile: float = 0.99,
        window_s: float = 60.0,
        min_requests: int = 20,
        capacity: int = 100_000,
    ) -> None:
        params = capture_params(locals())
        super().__init__(name, max_ms, window_s, min_requests, capacity)
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"{name}: quantile must lie in (0, 1], got {quantile!r}")
        self.quantile = float(quantile)
        self.params = params

    def _values(self, events: EventBatch, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ok = m & (events.outcome == Outcome.OK)
        return np.asarray(events.t[ok], dtype=float), np.asarray(events.latency_ms[ok], dtype=float)

    def _value(self, v: np.ndarray) -> float:
        return float(np.quantile(v, self.quantile))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ThresholdLatencyJudge:
        j = cls(**state["params"])
        j._load(state)
        return j
