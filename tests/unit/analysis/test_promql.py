"""The PromQL checks as pure judges fed hand-made readings: the threshold guard, the counts
comparison (its false-rollback bound by simulation), failed readings that never FAIL, the
queries that do not qualify, templates, and the spec that holds them."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from rayrollout.analysis import Judge, Verdict, make_judge, restore_judge
from rayrollout.analysis.judges.promql import (
    BAD_COUNT_QUERY,
    ERROR_RATIO_QUERY,
    PromQLCompareJudge,
    PromQLThresholdJudge,
    render,
)
from rayrollout.dataplane.events import EventBatch
from rayrollout.spec import RolloutSpec


def ok(t: float, cand: float, stable: float | None = None) -> dict[str, Any]:
    values = {"candidate": cand} if stable is None else {"candidate": cand, "stable": stable}
    return {"t": t, "values": values}


def failed(t: float, kind: str, detail: str = "it broke") -> dict[str, Any]:
    return {"t": t, "error": kind, "role": "candidate", "detail": detail}


def guard(**kw: Any) -> PromQLThresholdJudge:
    j = PromQLThresholdJudge(**{"query": "q{v=\"{{version}}\"}", "interval_s": 10.0,
                                "timeout_s": 2.0, **kw})
    j.observe(EventBatch(), "v1", "v2")
    return j


def feed(j: Any, *readings: dict[str, Any], w: float = 0.5) -> None:
    for r in readings:
        j.observe_readings([r], w, r["t"])


def roundtrip(j: Any) -> Any:
    return restore_judge(json.loads(json.dumps(j.to_state())))


# -- templates ---------------------------------------------------------------------------------


def test_queries_fill_the_template_variables_escaped() -> None:
    j = guard(query='a{m="{{model}}",c="{{ candidate }}",s="{{stable}}",v="{{version}}"}',
              max_value=1.0, stable_too=True)
    assert j.queries("m", "v1", "v2") == {
        "candidate": 'a{m="m",c="v2",s="v1",v="v2"}',
        "stable": 'a{m="m",c="v2",s="v1",v="v1"}',
    }
    assert render('x{v="{{version}}"}', {"version": 'a"b\\'}) == 'x{v="a\\"b\\\\"}'
    with pytest.raises(ValueError, match=r"unknown template variables \['cand'\]"):
        guard(query="x{{cand}}", max_value=1.0)


def test_defaults_read_rayrollouts_own_request_counters() -> None:
    j = make_judge("promql_threshold", {"name": "g"})
    assert isinstance(j, Judge) and isinstance(j, PromQLThresholdJudge)
    assert j.max_value == 0.05 and j.query == ERROR_RATIO_QUERY
    q = j.queries("m", "v1", "v2")["candidate"]
    assert 'ray_rayrollout_requests_total{model="m",version="v2"' in q and "or vector(0)" in q
    c = make_judge("promql_compare", {"name": "c"})
    assert isinstance(c, PromQLCompareJudge)
    assert c.query == BAD_COUNT_QUERY and set(c.queries("m", "v1", "v2")) == {"candidate",
                                                                             "stable"}
    with pytest.raises(ValueError, match="its own query needs min_value or max_value"):
        guard()


# -- the threshold guard -------------------------------------------------------------------


def test_threshold_passes_in_range_and_fails_out_of_it() -> None:
    j = guard(min_value=0.5, max_value=2.0)
    assert j.result(0.0).verdict is Verdict.INCONCLUSIVE  # no reading yet
    feed(j, ok(1.0, 1.2))
    r = j.result(1.0)
    assert r.verdict is Verdict.PASS and r.value == 1.2 and "[0.5, 2]" in r.reason
    feed(j, ok(11.0, 2.5))
    r = j.result(11.0)
    assert r.verdict is Verdict.FAIL and r.value == 2.5 and "out of range" in r.reason
    feed(j, ok(21.0, 0.4))
    assert j.result(21.0).verdict is Verdict.FAIL  # below the minimum fails too
    feed(j, ok(31.0, 1.0))
    assert j.result(31.0).verdict is Verdict.PASS  # a guard judges the newest reading


def test_threshold_needs_failures_readings_in_a_row() -> None:
    j = guard(max_value=1.0, failures=3)
    feed(j, ok(1.0, 5.0), ok(2.0, 5.0))
    r = j.result(2.0)
    assert r.verdict is Verdict.INCONCLUSIVE and "2 of 3" in r.reason
    feed(j, failed(3.0, "unavailable"))  # a failed reading does not break the run...
    feed(j, ok(4.0, 5.0))
    assert j.result(4.0).verdict is Verdict.FAIL
    feed(j, ok(5.0, 0.5), ok(6.0, 5.0))  # ...a reading in range does
    assert j.result(6.0).verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(("kind", "verdict", "words"), [
    ("unavailable", Verdict.ERROR, "Prometheus unavailable"),
    ("query_error", Verdict.ERROR, "query error"),
    ("bad_response", Verdict.ERROR, "unexpected answer"),
    ("many_series", Verdict.ERROR, "more than one series"),
    ("empty", Verdict.INCONCLUSIVE, "empty result"),
    ("nan", Verdict.INCONCLUSIVE, "NaN"),
])
def test_a_failed_reading_is_error_or_inconclusive_never_fail(kind: str, verdict: Verdict,
                                                               words: str) -> None:
    for j in (guard(max_value=1.0), compare()):
        feed(j, ok(1.0, 50.0, 0.0) if j.kind == "promql_compare" else ok(1.0, 50.0))
        feed(j, failed(2.0, kind, "details from the source"))
        r = j.result(2.0)
        assert r.verdict is verdict, (j.kind, r.reason)
        assert r.reason.startswith(verdict.name) and words in r.reason
        assert f"[{kind}]" in r.reason and "details from the source" in r.reason


def test_no_reading_for_too_long_is_an_error() -> None:
    j = guard(max_value=1.0)  # interval 10 s, timeout 2 s: stale after 32 s
    j.observe_readings([], 0.5, 100.0)
    assert j.result(130.0).verdict is Verdict.INCONCLUSIVE
    r = j.result(133.0)
    assert r.verdict is Verdict.ERROR and "no reading" in r.reason
    feed(j, ok(140.0, 0.5))
    assert j.result(171.0).verdict is Verdict.PASS
    assert j.result(173.0).verdict is Verdict.ERROR


def test_malformed_readings_are_errors_and_old_ones_are_ignored() -> None:
    j = guard(max_value=1.0)
    feed(j, ok(5.0, 0.5))
    j.observe_readings([{"t": 6.0, "values": {"candidate": "x"}}], 0.5, 6.0)
    assert j.result(6.0).verdict is Verdict.ERROR and "bad_reading" in j.result(6.0).reason
    j.observe_readings([{"t": 7.0, "error": "weird"}], 0.5, 7.0)
    assert "unknown error kind" in j.result(7.0).reason
    j.observe_readings([ok(3.0, 99.0)], 0.5, 8.0)  # older than the newest: ignored
    assert j.result(8.0).verdict is Verdict.ERROR


def test_stable_too_holds_a_shared_breach_against_nobody() -> None:
    j = guard(max_value=1.0, stable_too=True)
    feed(j, ok(1.0, 3.0, 3.0))
    r = j.result(1.0)
    assert r.verdict is Verdict.INCONCLUSIVE and "shared cause" in r.reason
    feed(j, ok(2.0, 3.0, 0.2))
    assert j.result(2.0).verdict is Verdict.FAIL
    with pytest.raises(ValueError, match="stable_too"):
        guard(query="up", max_value=1.0, stable_too=True)


def test_threshold_state_round_trips() -> None:
    j = guard(max_value=1.0, failures=2)
    feed(j, ok(1.0, 3.0))
    back = roundtrip(j)
    assert back.result(1.0) == j.result(1.0)
    feed(back, ok(2.0, 3.0))
    assert back.result(2.0).verdict is Verdict.FAIL


# -- the counts comparison -----------------------------------------------------------------


def compare(**kw: Any) -> PromQLCompareJudge:
    j = PromQLCompareJudge(**{"alpha": 0.05, "interval_s": 10.0, "timeout_s": 2.0,
                              "settle_s": 0.0, "min_intervals": 5, **kw})
    j.observe(EventBatch(), "v1", "v2")
    return j


def run_counts(j: PromQLCompareJudge, rng: np.random.Generator, n: int, w: float,
               p_c: float, p_b: float, per_interval: int = 200) -> Verdict:
    """``n`` intervals of ``per_interval`` requests routed with candidate share ``w``; bad
    events at ``p_c`` / ``p_b``; readings are the cumulative counts. The worst verdict seen."""
    c = b = 0
    worst = Verdict.PASS
    for k in range(n + 1):
        t = 10.0 * k
        feed(j, ok(t, float(c), float(b)), w=w)
        worst = max(worst, j.result(t).verdict)
        if worst is Verdict.FAIL:
            break
        to_c = rng.binomial(per_interval, w)
        c += rng.binomial(to_c, p_c)
        b += rng.binomial(per_interval - to_c, p_b)
    return worst


def test_compare_never_passes_without_data_then_passes_a_healthy_candidate() -> None:
    j = compare()
    assert j.result(0.0).verdict is Verdict.INCONCLUSIVE
    verdict = run_counts(j, np.random.default_rng(1), 30, 0.3, 0.01, 0.01)
    r = j.result(300.0)
    assert verdict is not Verdict.FAIL and r.verdict is Verdict.PASS
    assert r.counts["intervals"] == 30 and r.threshold == 20.0 and r.log_e is not None
    assert r.value is not None and 0.3 < r.value < 3.0


def test_compare_fails_a_candidate_with_several_times_the_failures() -> None:
    j = compare()
    assert run_counts(j, np.random.default_rng(2), 200, 0.3, 0.05, 0.01) is Verdict.FAIL
    r = j.result(1e6)
    assert r.verdict is Verdict.FAIL and "crossed the threshold" in r.reason
    assert r.log_e is not None and r.log_e >= math.log(20.0)
    assert r.value is None or r.value > 2.0  # None: no stable failure yet


def test_compare_false_rollback_rate_stays_within_alpha() -> None:
    """A/A: same failure rate on both arms, weights that change between steps (settled)."""
    rng = np.random.default_rng(7)
    fails = 0
    runs = 300
    for _ in range(runs):
        j = compare(settle_s=0.0)
        v = run_counts(j, rng, 40, 0.1, 0.02, 0.02)
        if v is not Verdict.FAIL:
            v = run_counts_more(j, rng)
        fails += v is Verdict.FAIL
    assert fails / runs <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / runs)


def run_counts_more(j: PromQLCompareJudge, rng: np.random.Generator) -> Verdict:
    """40 more intervals at w=0.5 continuing the cumulative counts."""
    assert j.prev is not None
    c, b, t0 = j.prev["c"], j.prev["b"], j.prev["t"]
    worst = Verdict.PASS
    for k in range(1, 41):
        to_c = rng.binomial(200, 0.5)
        c += rng.binomial(to_c, 0.02)
        b += rng.binomial(200 - to_c, 0.02)
        t = t0 + 10.0 * k
        feed(j, ok(t, float(c), float(b)), w=0.5)
        worst = max(worst, j.result(t).verdict)
    return worst


def test_compare_skips_intervals_while_a_new_weight_settles() -> None:
    j = compare(settle_s=25.0)
    j.observe_readings([], 0.1, 0.0)
    feed(j, ok(10.0, 0, 0), ok(20.0, 0, 10), ok(30.0, 0, 20), ok(40.0, 0, 30), w=0.1)
    assert j.c["intervals"] == 1 and j.c["settling"] == 2  # those that began before 25 s
    j.observe_readings([], 0.5, 45.0)  # the next step: a new weight from 45 s
    feed(j, ok(50.0, 5, 35), ok(60.0, 10, 40), ok(70.0, 15, 45), ok(80.0, 20, 50), w=0.5)
    assert j.c["intervals"] == 2 and j.c["settling"] == 5  # (40, 50] .. (60, 70] did too
    assert j.c["bad_candidate"] == 5 and j.c["bad_baseline"] == 15


def test_compare_skips_a_counter_reset_and_warmup_and_an_uninformative_weight() -> None:
    j = compare(warmup_s=15.0)
    feed(j, ok(0.0, 0, 0), ok(10.0, 1, 1), ok(20.0, 2, 2), ok(30.0, 0, 0), ok(40.0, 1, 1))
    assert j.c["warmup"] == 2 and j.c["resets"] == 1 and j.c["intervals"] == 1
    feed(j, ok(50.0, 2, 2), ok(60.0, 3, 3), w=0.0)  # a new weight settles (0 s), then...
    assert j.c["settling"] == 1 and j.c["uninformative"] == 1  # ...tells nothing


def test_a_query_that_is_not_a_count_is_inconclusive_for_good() -> None:
    j = compare(min_intervals=1)
    feed(j, ok(0.0, 0, 0), ok(10.0, 1, 1), ok(20.0, 2.5, 3))
    r = j.result(20.0)
    assert r.verdict is Verdict.INCONCLUSIVE and "not a whole count" in r.reason
    feed(j, *(ok(30.0 + 10 * k, 3.0 + 50 * k, 3) for k in range(20)))
    assert j.result(300.0).verdict is Verdict.INCONCLUSIVE  # never FAIL, never PASS


@pytest.mark.parametrize(("params", "says"), [
    ({"query": 'sum(rate(x{v="{{version}}"}[1m]))'}, "rate(...) does not give a count"),
    ({"query": 'histogram_quantile(0.9, x{v="{{version}}"})'}, "histogram_quantile"),
    ({"query": "sum(x)"}, "by {{version}}"),
    ({"query": 'x{v="{{version}}",c="{{candidate}}"}'}, "neither {{candidate}}"),
    ({"unit_mode": "session"}, "counts requests, not sessions"),
    ({"grid": [0.5, 2.0]}, "multipliers > 1"),
])
def test_compare_refuses_queries_and_settings_that_are_no_valid_test(params: dict[str, Any],
                                                                     says: str) -> None:
    with pytest.raises(ValueError) as e:
        PromQLCompareJudge(**params)
    assert says in str(e.value)


def test_compare_state_round_trips_exactly() -> None:
    j = compare()
    rng = np.random.default_rng(3)
    run_counts(j, rng, 12, 0.4, 0.03, 0.01)
    back = roundtrip(j)
    assert back.result(200.0) == j.result(200.0)
    for x in (j, back):
        feed(x, ok(1000.0, 999.0, 1000.0))
    assert back.result(1000.0) == j.result(1000.0)


# -- in a spec -----------------------------------------------------------------------------


def spec_doc(checks: list[dict[str, Any]], guards: list[dict[str, Any]]) -> dict[str, Any]:
    v = {"runtime": "onnx", "artifact": "models/artifacts/v1.onnx"}
    return {"model": "m", "stable": {"name": "v1", **v}, "candidates": [{"name": "v2", **v}],
            "strategy": {"steps": [{"weight": 10}]},
            "analysis": {"checks": checks, "guards": guards}}


def test_a_spec_takes_promql_checks_where_they_belong_and_names_bad_params() -> None:
    url = "http://prometheus.monitoring:9090"
    s = RolloutSpec.model_validate(spec_doc(
        [{"kind": "promql_compare", "params": {"url": url, "interval_s": 15}}],
        [{"kind": "promql_threshold", "name": "p99", "params": {
            "url": url, "query": 'histogram_quantile(0.99, sum by (le) (rate(x{v="{{version}}"}'
            '[1m])))', "max_value": 250, "failures": 2}}]))
    assert [c.kind for c in s.analysis.checks] == ["promql_compare"]
    with pytest.raises(ValueError, match=r"(?s)analysis.checks.0.kind.*threshold guard"):
        RolloutSpec.model_validate(spec_doc([{"kind": "promql_threshold"}], []))
    with pytest.raises(ValueError, match=r"(?s)analysis.guards.0.kind.*sequential check"):
        RolloutSpec.model_validate(spec_doc([{"kind": "errors"}], [{"kind": "promql_compare"}]))
    with pytest.raises(ValueError, match=r"(?s)analysis.guards.0.params.url"):
        RolloutSpec.model_validate(spec_doc([{"kind": "errors"}], [
            {"kind": "promql_threshold", "params": {"url": "ftp://x"}}]))
    with pytest.raises(ValueError, match=r"(?s)analysis.checks.0.params.*rate\(\.\.\.\)"):
        RolloutSpec.model_validate(spec_doc([{"kind": "promql_compare", "params": {
            "query": 'rate(x{v="{{version}}"}[1m])'}}], []))
    with pytest.raises(ValueError, match=r"(?s)analysis.checks.0.params.*not sessions"):
        doc = spec_doc([{"kind": "promql_compare"}], [])
        doc["analysis"]["unit_mode"] = "session"
        RolloutSpec.model_validate(doc)
