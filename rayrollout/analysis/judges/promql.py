"""Checks on numbers read from Prometheus: ``promql_threshold`` (a guard) and ``promql_compare``
(a sequential check, test A on per-interval counts of bad events).

The judges never read Prometheus themselves (the analysis engine does no I/O): each says what
to read (``url``, ``queries(model, stable, candidate)``, every ``interval_s``), the
controller's shell reads it off its lock (``rayrollout.sources``) and the core hands the
readings to ``observe_readings`` with the tick's inputs, which the store records, so a replay
judges the same readings without Prometheus. A reading is plain JSON: ``{"t", "values":
{role: number}}``, or ``{"t", "error": kind, "role", "detail"}`` when a query got no number.

A reading that failed is never evidence against the candidate: the check reports ERROR
(Prometheus unavailable, a query error, an unexpected answer, more than one series) or
INCONCLUSIVE (an empty result, NaN), and its reason names which (``ERROR_VERDICTS``). Neither
rolls a candidate back; both hold the step.

Query templates: ``{{candidate}}``, ``{{stable}}``, ``{{model}}`` and ``{{version}}`` (the
version whose series is read: the candidate, and for a check that reads both, the stable).
Values are substituted escaped for a PromQL string (``"`` and ``\\``).

Which queries ``promql_compare`` takes, and why: docs/sources.md and ``PromQLCompareJudge``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from rayrollout._compat import Self
from rayrollout.analysis._bad_event import DEFAULT_RHO_GRID
from rayrollout.analysis._mix import log_mean_exp
from rayrollout.analysis.base import LabelledEvent
from rayrollout.analysis.judges._common import capture_params
from rayrollout.analysis.result import CheckResult, Verdict
from rayrollout.dataplane.events import EventBatch, ShadowEvent

TEMPLATE_VARS = ("candidate", "stable", "model", "version")
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
MAX_QUERY = 4000  # characters of a query template

DEFAULT_URL = "http://localhost:9090"
# The candidate's share of failed requests over the last minute, from rayrollout's own
# request counters (zero before its first failure: the error series does not exist yet).
ERROR_RATIO_QUERY = (
    '(sum(rate(ray_rayrollout_requests_total{model="{{model}}",version="{{version}}",'
    'outcome=~"error|timeout"}[1m])) or vector(0)) / '
    'sum(rate(ray_rayrollout_requests_total{model="{{model}}",version="{{version}}",'
    'outcome!="rejected"}[1m]))'
)
DEFAULT_MAX_ERROR_RATIO = 0.05  # the default query's bound when no bound is given
# Failed requests of one version so far: a cumulative counter (what promql_compare needs).
BAD_COUNT_QUERY = (
    'sum(ray_rayrollout_requests_total{model="{{model}}",version="{{version}}",'
    'outcome=~"error|timeout"}) or vector(0)'
)

# What a failed reading makes of the check (the kinds of ``rayrollout.sources.base``, and
# ``bad_reading`` for a recorded reading that is not one). Never FAIL.
ERROR_VERDICTS: Mapping[str, Verdict] = {
    "unavailable": Verdict.ERROR,
    "query_error": Verdict.ERROR,
    "bad_response": Verdict.ERROR,
    "many_series": Verdict.ERROR,
    "bad_reading": Verdict.ERROR,
    "empty": Verdict.INCONCLUSIVE,
    "nan": Verdict.INCONCLUSIVE,
}
ERROR_WORDS: Mapping[str, str] = {
    "unavailable": "Prometheus unavailable",
    "query_error": "query error",
    "bad_response": "unexpected answer from Prometheus",
    "many_series": "more than one series",
    "bad_reading": "unreadable reading",
    "empty": "empty result (no data yet?)",
    "nan": "no number (NaN)",
}
# Functions whose values are not whole counts of events: a promql_compare query using one
# does not qualify (rates, averages, quantiles, extrapolated increases).
_NOT_COUNTS = re.compile(
    r"\b(rate|irate|increase|delta|idelta|deriv|predict_linear|avg|avg_over_time|"
    r"quantile|quantile_over_time|histogram_quantile|stddev|stdvar|stddev_over_time|"
    r"stdvar_over_time|scalar)\s*\(",
)


def template_vars(query: str) -> set[str]:
    """The template variables ``query`` uses."""
    return set(_VAR.findall(query))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def render(query: str, values: Mapping[str, str]) -> str:
    """``query`` with each ``{{var}}`` replaced by ``values[var]``, escaped for a PromQL
    string; ``KeyError`` for a variable not in ``values``."""
    return _VAR.sub(lambda m: _escape(values[m.group(1)]), query)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def parse_reading(r: Any) -> tuple[float | None, dict[str, float], str, str]:
    """``(t, values, error kind, detail)`` of a recorded reading; an ill-formed one is a
    ``bad_reading`` (with ``t`` None when even its time is unreadable)."""
    if not isinstance(r, Mapping) or not _finite(r.get("t")):
        return None, {}, "bad_reading", f"not a reading: {str(r)[:120]}"
    t = float(r["t"])
    if "error" in r:
        kind = str(r["error"])
        detail = str(r.get("detail", ""))[:300]
        if kind not in ERROR_VERDICTS:
            return t, {}, "bad_reading", f"unknown error kind {kind[:40]!r}: {detail}"
        return t, {}, kind, detail
    values = r.get("values")
    if not isinstance(values, Mapping) or not all(_finite(v) for v in values.values()):
        return t, {}, "bad_reading", f"reading without numbers: {str(values)[:120]}"
    return t, {str(k): float(v) for k, v in values.items()}, "", ""


class PromQLJudge:
    """What both PromQL checks share: the pair, the queries, the last reading, staleness.

    ``observe`` only binds the pair (router events are not this check's numbers);
    ``observe_readings(readings, w, now)`` is called by the core every tick of an active
    phase, with this check's new readings (often none) and the candidate's routing share of
    the pair in force since the last tick."""

    kind: ClassVar[str] = ""

    def __init__(self, name: str, url: str, query: str, interval_s: float,
                 timeout_s: float) -> None:
        if not query.strip() or len(query) > MAX_QUERY:
            raise ValueError(f"{name}: query must have 1 to {MAX_QUERY} characters")
        unknown = template_vars(query) - set(TEMPLATE_VARS)
        if unknown:
            raise ValueError(f"{name}: query uses unknown template variables "
                             f"{sorted(unknown)}; known: {list(TEMPLATE_VARS)}")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{name}: url must be http:// or https://, got {url[:100]!r}")
        if not 0.0 < interval_s <= 3600.0 or not 0.0 < timeout_s <= 300.0:
            raise ValueError(f"{name}: need 0 < interval_s <= 3600 and 0 < timeout_s <= 300")
        self.name = name
        self.roles: tuple[str, ...] = ("candidate",)  # what ``queries`` reads
        self.url = url
        self.query = query
        self.interval_s = float(interval_s)
        self.timeout_s = float(timeout_s)
        self.alpha = 0.0
        self.params: dict[str, Any] = {}
        self.pair: tuple[str, str] | None = None
        self.since: float | None = None  # the first tick this check was asked to read
        self.last: dict[str, Any] | None = None  # the newest reading: t, values, error, detail
        self.c: dict[str, float] = {"readings": 0, "errors": 0}

    # ---- what to read -------------------------------------------------------------------
    def queries(self, model: str, stable: str, candidate: str) -> dict[str, str]:
        """Role -> the PromQL to evaluate for this pair (the shell reads them)."""
        base = {"candidate": candidate, "stable": stable, "model": model}
        return {role: render(self.query, {**base, "version": base[role]})
                for role in self.roles}

    @property
    def stale_s(self) -> float:
        """With no reading for this long, the check is ERROR (reads hang or never start)."""
        return 3.0 * self.interval_s + self.timeout_s

    # ---- the Judge protocol -------------------------------------------------------------
    def observe(self, events: EventBatch, baseline: str, candidate: str,
                shadow: Sequence[ShadowEvent] = (),
                labelled: Sequence[LabelledEvent] = ()) -> None:
        if self.pair is None:
            self.pair = (baseline, candidate)
        elif self.pair != (baseline, candidate):
            raise ValueError(f"{self.name}: judge is bound to {self.pair}, got "
                             f"{(baseline, candidate)}")

    def observe_readings(self, readings: Sequence[Any], w: float, now: float) -> None:
        """Take this check's new readings, oldest first (one older than the last is ignored)."""
        if self.since is None:
            self.since = float(now)
        for r in readings:
            t, values, kind, detail = parse_reading(r)
            if t is None:
                t = self.last["t"] if self.last is not None else float(now)
            elif self.last is not None and t <= self.last["t"]:
                continue
            missing = [role for role in self.roles if role not in values]
            if not kind and missing:
                kind, detail = "bad_reading", f"reading lacks {missing}"
            self.c["readings"] += 1
            self.last = {"t": t, "values": values, "error": kind, "detail": detail}
            if kind:
                self.c["errors"] += 1
            self._take(t, values, kind, w)

    def _take(self, t: float, values: dict[str, float], kind: str, w: float) -> None:
        raise NotImplementedError

    def _no_reading(self, now: float) -> tuple[Verdict, str] | None:
        """ERROR / INCONCLUSIVE while the newest reading is missing, stale or failed."""
        where = f"{self.url}, every {self.interval_s:g} s"
        if self.last is None:
            if self.since is not None and now - self.since > self.stale_s:
                return Verdict.ERROR, (f"ERROR: no reading from {where} in "
                                       f"{now - self.since:.0f} s")
            return Verdict.INCONCLUSIVE, f"waiting for the first reading from {where}"
        age = now - self.last["t"]
        if age > self.stale_s:
            return Verdict.ERROR, (f"ERROR: no reading from {where} for {age:.0f} s (the last "
                                   f"at t={self.last['t']:.3f})")
        kind = self.last["error"]
        if kind:
            v = ERROR_VERDICTS[kind]
            return v, (f"{v.name}: {ERROR_WORDS[kind]} [{kind}] at t={self.last['t']:.3f}: "
                       f"{self.last['detail']}")
        return None

    # ---- state --------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.params), "pair":
                None if self.pair is None else list(self.pair), "since": self.since,
                "last": self.last, "counts": dict(self.c), "stats": self._stats_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        if state.get("kind") != cls.kind:
            raise ValueError(f"state of kind {state.get('kind')!r} given to {cls.kind!r}")
        j = cls(**state["params"])
        pair = state["pair"]
        j.pair = None if pair is None else (pair[0], pair[1])
        j.since = state["since"]
        j.last = state["last"]
        j.c = {k: float(v) for k, v in state["counts"].items()}
        j._load_stats(state["stats"])
        return j

    def _stats_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_stats(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


class PromQLThresholdJudge(PromQLJudge):
    """A guard: the candidate's value must lie within ``[min_value, max_value]``.

    As Argo Rollouts' ``successCondition`` or Flagger's ``thresholdRange``: FAIL once the last
    ``failures`` readings in a row were out of range; PASS while the newest is within it. With
    no query, the candidate's error ratio over the last minute from rayrollout's own request
    counters, at most ``max_value`` (0.05 when no bound is given). With ``stable_too`` (the
    query must use ``{{version}}``) the same query is read for the stable: a reading where
    both are out of range is a shared cause (an upstream, the load), reported INCONCLUSIVE and
    never counted against the candidate. No false-rollback bound (``alpha = 0``); it does
    not latch: each result judges the newest reading.
    """

    kind = "promql_threshold"

    def __init__(
        self,
        name: str = "promql_threshold",
        url: str = DEFAULT_URL,
        query: str = ERROR_RATIO_QUERY,
        min_value: float | None = None,
        max_value: float | None = None,
        interval_s: float = 30.0,
        timeout_s: float = 5.0,
        failures: int = 1,
        stable_too: bool = False,
    ) -> None:
        params = capture_params(locals())
        super().__init__(name, url, query, interval_s, timeout_s)
        if min_value is None and max_value is None:
            if query != ERROR_RATIO_QUERY:
                raise ValueError(f"{name}: a promql_threshold with its own query needs "
                                 "min_value or max_value")
            max_value = DEFAULT_MAX_ERROR_RATIO
        if min_value is not None and max_value is not None and min_value > max_value:
            raise ValueError(f"{name}: min_value={min_value:g} > max_value={max_value:g}")
        if not failures >= 1:
            raise ValueError(f"{name}: failures must be >= 1, got {failures!r}")
        if stable_too and "version" not in template_vars(query):
            raise ValueError(f"{name}: stable_too reads the query for the stable too, so it "
                             "must select by {{version}}")
        self.min_value = min_value
        self.max_value = max_value
        self.failures = int(failures)
        self.stable_too = bool(stable_too)
        self.roles = ("candidate", "stable") if stable_too else ("candidate",)
        self.streak = 0  # readings in a row with the candidate (alone) out of range
        self.shared = False  # the newest reading had both out of range
        self.c.update(out_of_range=0)
        self.params = params

    def _out(self, x: float) -> bool:
        return ((self.min_value is not None and x < self.min_value)
                or (self.max_value is not None and x > self.max_value))

    def _range(self) -> str:
        lo = "-inf" if self.min_value is None else f"{self.min_value:g}"
        hi = "inf" if self.max_value is None else f"{self.max_value:g}"
        return f"[{lo}, {hi}]"

    def _take(self, t: float, values: dict[str, float], kind: str, w: float) -> None:
        if kind:
            return  # a failed reading neither extends nor breaks a run of bad ones
        out = self._out(values["candidate"])
        self.shared = out and self.stable_too and self._out(values["stable"])
        if out and not self.shared:
            self.streak += 1
            self.c["out_of_range"] += 1
        else:
            self.streak = 0

    def result(self, now: float) -> CheckResult:
        value = None
        if self.last is not None and not self.last["error"]:
            value = self.last["values"]["candidate"]

        def make(verdict: Verdict, reason: str) -> CheckResult:
            return CheckResult(check=self.name, verdict=verdict, statistic="promql_value",
                               value=value, counts={**self.c, "streak": float(self.streak)},
                               reason=reason)

        problem = self._no_reading(now)
        if problem is not None:
            return make(*problem)
        assert value is not None and self.last is not None
        head = (f"candidate value {value:.6g} vs range {self._range()} at "
                f"t={self.last['t']:.3f} (no false-rollback bound)")
        if not self._out(value):
            return make(Verdict.PASS, head)
        if self.shared:
            stable = self.last["values"]["stable"]
            return make(Verdict.INCONCLUSIVE, f"{head}; the stable is out of range too "
                        f"({stable:.6g}): a shared cause, not held against the candidate")
        if self.streak >= self.failures:
            return make(Verdict.FAIL, f"{head}: out of range in {self.streak} readings in "
                        "a row")
        return make(Verdict.INCONCLUSIVE, f"{head}: out of range in {self.streak} of "
                    f"{self.failures} readings in a row needed to fail")

    def _stats_state(self) -> dict[str, Any]:
        return {"streak": self.streak, "shared": self.shared}

    def _load_stats(self, state: dict[str, Any]) -> None:
        self.streak = int(state["streak"])
        self.shared = bool(state["shared"])


class PromQLCompareJudge(PromQLJudge):
    """Is the candidate's failure rate more than ``rho0`` times the stable's? Test A on the
    per-interval counts of bad events that a cumulative counter query gives for each version.

    The query must select one version by ``{{version}}`` and give a **cumulative count of bad
    events** (errors, timeouts, wrong answers) as a whole number that only grows: the default
    sums rayrollout's own ``ray_rayrollout_requests_total`` error and timeout series. Between
    two readings each version's increase is its count of bad events in that interval. Within
    an interval in which the pair's routing weight ``w`` did not change, given that ``n`` bad
    events happened, each came from the candidate independently with probability
    ``theta(rho) = w rho / (w rho + 1 - w)`` when the candidate's rate is ``rho`` times the
    stable's (any common time-varying rate). So the interval's likelihood ratio of
    ``rho0 x g`` against ``rho0`` has expectation at most 1 under ``rho <= rho0``, and the
    product over intervals, averaged over the grid, is a test supermartingale read at interval
    ends: ``P(ever FAIL) <= alpha`` (Ville), as the ``errors`` check, but on counts.

    An interval counts only if its first reading came ``settle_s`` after the pair's weight
    last changed (as the core saw it; scrapes and metric export lag behind the routing
    table), after ``warmup_s`` from the first reading, with ``0 < w < 1``. A counter that went down
    (a restarted exporter) skips its interval. A value that is not a whole non-negative number
    means the query is not a count: the check is INCONCLUSIVE from then on, never PASS or
    FAIL. Session mode is refused: sticky routing makes one key's requests fail together.
    """

    kind = "promql_compare"

    def __init__(
        self,
        name: str = "promql_compare",
        url: str = DEFAULT_URL,
        query: str = BAD_COUNT_QUERY,
        alpha: float = 0.01,
        warmup_s: float = 0.0,
        interval_s: float = 30.0,
        timeout_s: float = 5.0,
        rho0: float = 1.0,
        grid: Sequence[float] = DEFAULT_RHO_GRID,
        min_intervals: int = 10,
        settle_s: float = 30.0,
        unit_mode: str = "request",
    ) -> None:
        params = capture_params(locals())
        super().__init__(name, url, query, interval_s, timeout_s)
        self.roles = ("candidate", "stable")
        used = template_vars(query)
        if "version" not in used or used & {"candidate", "stable"}:
            raise ValueError(f"{name}: a promql_compare query selects the version it counts "
                             "by {{version}} (read once for the candidate, once for the "
                             "stable) and uses neither {{candidate}} nor {{stable}}")
        bad = _NOT_COUNTS.search(query)
        if bad:
            raise ValueError(f"{name}: {bad.group(1)}(...) does not give a count of events: a "
                             "promql_compare query must be a cumulative counter of bad "
                             "events (see docs/sources.md)")
        if unit_mode != "request":
            raise ValueError(f"{name}: promql_compare counts requests, not sessions: with "
                             "unit_mode={unit_mode!r} (sticky routing) one key's requests "
                             "fail together and counts are no valid test")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"{name}: alpha must lie in (0, 1), got {alpha!r}")
        if not warmup_s >= 0.0 or not settle_s >= 0.0:
            raise ValueError(f"{name}: warmup_s and settle_s must be >= 0")
        if not rho0 > 0.0 or not math.isfinite(rho0):
            raise ValueError(f"{name}: rho0 must be a positive number, got {rho0!r}")
        gs = [float(g) for g in grid]
        if not gs or any(not g > 1.0 or not math.isfinite(g) for g in gs):
            raise ValueError(f"{name}: grid must be multipliers > 1, got {list(grid)!r}")
        if not min_intervals >= 1:
            raise ValueError(f"{name}: min_intervals must be >= 1, got {min_intervals!r}")
        self.alpha = float(alpha)
        self.warmup_s = float(warmup_s)
        self.rho0 = float(rho0)
        self.grid = gs
        self.min_intervals = int(min_intervals)
        self.settle_s = float(settle_s)
        self.s = [0.0] * len(gs)  # log likelihood ratio per grid point
        self.log_e = 0.0
        self.peak = 0.0  # max of log E at interval ends
        self.failed_at: float | None = None
        self.prev: dict[str, float] | None = None  # the last count reading: t, c, b, w
        self.w_cur: float | None = None  # the pair's candidate share in force, and since when
        self.w_since: float | None = None
        self.start_t: float | None = None
        self.problem = ""  # why the query does not qualify (latched)
        self.weighted = [0.0, 0.0]  # sum of n_k w_k and n_k (1 - w_k) over used intervals
        self.c.update(intervals=0, bad_candidate=0, bad_baseline=0, settling=0, resets=0,
                      warmup=0, uninformative=0)
        self.params = params

    @property
    def log_threshold(self) -> float:
        return math.log(1.0 / self.alpha)

    def _take(self, t: float, values: dict[str, float], kind: str, w: float) -> None:
        if kind or self.problem:
            return
        c, b = values["candidate"], values["stable"]
        for role, x in (("candidate", c), ("stable", b)):
            if x < 0 or abs(x - round(x)) > 1e-6:
                self.problem = (f"the {role}'s value {x:.6g} at t={t:.3f} is not a whole "
                                "count: the query must give a cumulative counter of events")
                return
        if self.start_t is None:
            self.start_t = t
        prev, self.prev = self.prev, {"t": t, "c": c, "b": b}
        if prev is None:
            return
        assert self.w_since is not None
        dc, db = round(c - prev["c"]), round(b - prev["b"])
        if dc < 0 or db < 0:
            self.c["resets"] += 1
        elif prev["t"] < self.start_t + self.warmup_s:
            self.c["warmup"] += 1
        elif prev["t"] < self.w_since + self.settle_s:
            self.c["settling"] += 1
        elif not 0.0 < w < 1.0:
            self.c["uninformative"] += 1
        else:
            self._update(dc, db, w, t)

    def observe_readings(self, readings: Sequence[Any], w: float, now: float) -> None:
        """As ``PromQLJudge.observe_readings``; a weight unlike the last tick's starts a new
        settling period at ``now`` (no earlier than the change took force: conservative)."""
        if self.w_cur is None or w != self.w_cur:
            self.w_cur, self.w_since = float(w), float(now)
        super().observe_readings(readings, self.w_cur, now)

    def _update(self, dc: int, db: int, w: float, t: float) -> None:
        v = 1.0 - w
        base = math.log(w * self.rho0 + v)
        for j, g in enumerate(self.grid):
            step = base - math.log(w * self.rho0 * g + v)
            self.s[j] += dc * (math.log(g) + step) + db * step
        self.log_e = log_mean_exp(self.s)
        self.peak = max(self.peak, self.log_e)
        self.c["intervals"] += 1
        self.c["bad_candidate"] += dc
        self.c["bad_baseline"] += db
        self.weighted[0] += (dc + db) * w
        self.weighted[1] += (dc + db) * v
        if self.failed_at is None and self.peak >= self.log_threshold:
            self.failed_at = t

    def _ratio(self) -> float | None:
        bc, bb = self.c["bad_candidate"], self.c["bad_baseline"]
        if bb <= 0 or self.weighted[0] <= 0:
            return None
        return (bc / self.weighted[0]) / (bb / self.weighted[1])

    def result(self, now: float) -> CheckResult:
        ratio = self._ratio()
        ln10 = math.log(10.0)

        def make(verdict: Verdict, reason: str) -> CheckResult:
            return CheckResult(check=self.name, verdict=verdict, statistic="failure_rate_ratio",
                               value=ratio, log_e=self.log_e, threshold=1.0 / self.alpha,
                               counts=dict(self.c), reason=reason)

        shown = "n/a" if ratio is None else f"{ratio:.2f}x"
        c = self.c
        detail = (f"candidate failure rate {shown} stable's ({c['bad_candidate']:.0f} vs "
                  f"{c['bad_baseline']:.0f} bad events over {c['intervals']:.0f} intervals; "
                  f"H0 ratio <= {self.rho0:g})")
        evid = (f"log10 E = {self.log_e / ln10:.2f} (max {self.peak / ln10:.2f}; threshold "
                f"{self.log_threshold / ln10:.2f}, false-rollback bound {self.alpha:g})")
        if self.failed_at is not None:
            return make(Verdict.FAIL, f"{detail}; evidence crossed the threshold at "
                        f"t={self.failed_at:.3f}: {evid}")
        if self.problem:
            return make(Verdict.INCONCLUSIVE, f"INCONCLUSIVE: query does not qualify for "
                        f"promql_compare: {self.problem}; {evid}")
        problem = self._no_reading(now)
        if problem is not None:
            return make(problem[0], f"{problem[1]}; {evid}")
        if c["intervals"] < self.min_intervals:
            skipped = ", ".join(f"{c[k]:.0f} {k}" for k in
                                ("settling", "resets", "warmup", "uninformative") if c[k])
            return make(Verdict.INCONCLUSIVE, f"not enough data: {c['intervals']:.0f} of "
                        f"{self.min_intervals} usable intervals"
                        f"{f' (skipped: {skipped})' if skipped else ''}; {evid}")
        return make(Verdict.PASS, f"{detail}; {evid}")

    def _stats_state(self) -> dict[str, Any]:
        return {"s": list(self.s), "log_e": self.log_e, "peak": self.peak,
                "failed_at": self.failed_at, "prev": self.prev, "w_cur": self.w_cur,
                "w_since": self.w_since,
                "start_t": self.start_t, "problem": self.problem,
                "weighted": list(self.weighted)}

    def _load_stats(self, state: dict[str, Any]) -> None:
        self.s = [float(x) for x in state["s"]]
        self.log_e = float(state["log_e"])
        self.peak = float(state["peak"])
        self.failed_at = state["failed_at"]
        self.prev = state["prev"]
        self.w_cur = state["w_cur"]
        self.w_since = state["w_since"]
        self.start_t = state["start_t"]
        self.problem = str(state["problem"])
        self.weighted = [float(x) for x in state["weighted"]]
