from __future__ import annotations

import json

import numpy as np
import pytest

from rayrollout.analysis import ErrorRateJudge, Judge, Verdict, restore_judge
from rayrollout.dataplane.events import EventBatch, Outcome, RequestEvent
from tests.unit.analysis.sim import BASE, CAND, mc_limit, replace, stream, take, ticks


def ev(
    t: float,
    version: str,
    outcome: Outcome = Outcome.OK,
    w: float = 0.5,
    unit: str = "",
    randomised: bool = True,
) -> RequestEvent:
    weight = w if version == CAND else 1.0 - w
    return RequestEvent(t, version, weight, 10.0, int(outcome), float("nan"), unit, randomised, 1)


def batch(*events: RequestEvent) -> EventBatch:
    return EventBatch.from_events(list(events))


def test_is_a_judge_and_inconclusive_without_data() -> None:
    j = ErrorRateJudge()
    assert isinstance(j, Judge)
    r = j.result(now=0.0)
    assert r.verdict is Verdict.INCONCLUSIVE and "not enough data" in r.reason
    j.observe(EventBatch(), BASE, CAND)
    assert j.result(1.0).verdict is Verdict.INCONCLUSIVE


def test_rejected_never_counts() -> None:
    j = ErrorRateJudge(alpha=0.05, min_candidate_requests=1)
    j.observe(batch(*[ev(float(i), CAND, Outcome.REJECTED) for i in range(500)]), BASE, CAND)
    r = j.result(600.0)
    assert r.counts["bad_candidate"] == 0 and r.counts["candidate"] == 0
    assert r.verdict is Verdict.INCONCLUSIVE
    assert j.proc.log_e == 0.0


def test_errors_and_timeouts_are_bad_and_fail_with_evidence() -> None:
    j = ErrorRateJudge(alpha=0.05, min_candidate_requests=1)
    rows = [ev(float(i), CAND, Outcome.ERROR if i % 2 else Outcome.TIMEOUT) for i in range(8)]
    j.observe(batch(*rows, ev(9.0, BASE)), BASE, CAND)
    r = j.result(10.0)
    # 8 canary bad events at w = 1/2 under rho = 10: (20/11)^8 / 6 > 20
    assert r.verdict is Verdict.FAIL and r.counts["bad_candidate"] == 8
    assert r.log_e is not None and r.log_e >= np.log(20)
    assert "t=7.000" in r.reason or "t=9.000" in r.reason


def test_versions_outside_the_pair_are_ignored() -> None:
    j = ErrorRateJudge(min_candidate_requests=1)
    j.observe(batch(*[ev(float(i), "v3", Outcome.ERROR) for i in range(50)]), BASE, CAND)
    assert j.result(60.0).counts["bad_candidate"] == 0
    with pytest.raises(ValueError, match="bound to"):
        j.observe(EventBatch(), BASE, "v3")


def test_unreadable_weights_and_ragged_columns_are_error() -> None:
    j = ErrorRateJudge(min_candidate_requests=1)
    b = stream(0, 200)
    j.observe(replace(b, weight=np.full(200, np.nan)), BASE, CAND)
    assert j.result(10.0).verdict is Verdict.ERROR
    k = ErrorRateJudge(min_candidate_requests=1)
    k.observe(replace(b, outcome=b.outcome[:10]), BASE, CAND)
    r = k.result(10.0)
    assert r.verdict is Verdict.ERROR and "outcome" in r.reason


def test_non_randomised_requests_are_excluded_in_request_mode() -> None:
    j = ErrorRateJudge(min_candidate_requests=1)
    rows = [ev(float(i), CAND, Outcome.ERROR, unit="u", randomised=False) for i in range(50)]
    j.observe(batch(*rows), BASE, CAND)
    r = j.result(60.0)
    assert r.verdict is Verdict.INCONCLUSIVE and "session" in r.reason
    assert r.counts["not_randomised"] == 50


def test_session_mode_counts_a_bad_session_once() -> None:
    j = ErrorRateJudge(alpha=0.05, min_candidate_requests=1, unit_mode="session")
    rows = [ev(float(i), CAND, Outcome.ERROR, unit="s1", randomised=False) for i in range(30)]
    rows += [ev(30.0 + i, BASE, Outcome.ERROR, unit=f"b{i}", randomised=False) for i in range(2)]
    j.observe(batch(*rows[:10]), BASE, CAND)
    j = restore_judge(json.loads(json.dumps(j.to_state())))  # type: ignore[assignment]
    j.observe(batch(*rows[10:]), BASE, CAND)
    r = j.result(60.0)
    assert (r.counts["bad_candidate"], r.counts["bad_baseline"]) == (1, 2)
    assert r.verdict is Verdict.PASS


def test_warmup_is_excluded_but_counted_as_exposure() -> None:
    j = ErrorRateJudge(alpha=0.05, warmup_s=60.0, start_t=100.0, min_candidate_requests=1)
    rows = [ev(100.0 + i, CAND, Outcome.ERROR) for i in range(50)]  # cold start errors
    rows += [ev(170.0 + i, CAND) for i in range(10)]
    j.observe(batch(*rows), BASE, CAND)
    r = j.result(200.0)
    assert r.counts["warmup_candidate"] == 50 and r.counts["candidate"] == 10
    assert r.counts["bad_candidate"] == 0 and r.verdict is Verdict.PASS


def test_start_defaults_to_the_first_candidate_request() -> None:
    j = ErrorRateJudge(warmup_s=10.0, min_candidate_requests=1)
    j.observe(batch(ev(0.0, BASE), ev(5.0, CAND), ev(12.0, CAND), ev(16.0, CAND)), BASE, CAND)
    assert j.start_t == 5.0 and j.result(20.0).counts["candidate"] == 1


def test_state_round_trip_resumes_identically() -> None:
    b = stream(1, 20_000, rho=3.0)
    a = ErrorRateJudge(alpha=0.05)
    c = ErrorRateJudge(alpha=0.05)
    for i, tick in enumerate(ticks(b, 10.0)):
        a.observe(tick, BASE, CAND)
        c.observe(tick, BASE, CAND)
        if i % 3 == 0:
            c = restore_judge(json.loads(json.dumps(c.to_state())))  # type: ignore[assignment]
    ra, rc = a.result(b.t[-1]), c.result(b.t[-1])
    assert ra.to_dict() == rc.to_dict()
    assert ra.ci is not None and ra.ci[0] < 3.0 < ra.ci[1]


def _fail_rate(rho: float, runs: int, n: int, alpha: float) -> float:
    fails = 0
    for seed in range(runs):
        j = ErrorRateJudge(alpha=alpha)
        for tick in ticks(stream(seed, n, rho=rho), 10.0):
            j.observe(tick, BASE, CAND)
        fails += j.result(1e9).verdict is Verdict.FAIL
    return fails / runs


def test_validity_end_to_end_many_seeds() -> None:
    alpha, runs = 0.05, 100
    assert _fail_rate(1.0, runs, 20_000, alpha) <= mc_limit(alpha, runs)


def test_power_for_a_five_fold_error_ratio() -> None:
    assert _fail_rate(5.0, 30, 60_000, 0.05) == 1.0


def _sticky(seed: int, names: np.ndarray, w: float = 0.1) -> EventBatch:
    """Sticky sessions with per-session error proneness (frailty); candidate == baseline."""
    rng = np.random.default_rng(seed)
    n_s = names.size
    arm = rng.random(n_s) < w
    length = rng.geometric(1 / 20, n_s)
    p_sess = np.where(rng.random(n_s) < 0.05, 0.1, 0.0)
    sid = np.repeat(np.arange(n_s), length)
    start = rng.uniform(0, 600, n_s)
    t = (
        start[sid]
        + np.cumsum(rng.exponential(1.0, sid.size))
        - np.repeat(np.cumsum(rng.exponential(1.0, sid.size))[np.cumsum(length) - length], length)
    )
    order = np.argsort(t, kind="stable")
    sid, t = sid[order], t[order]
    c = arm[sid]
    err = rng.random(sid.size) < p_sess[sid]
    return EventBatch(
        t=t,
        version=np.where(c, CAND, BASE).astype(object),
        weight=np.where(c, w, 1 - w),
        latency_ms=np.full(sid.size, 100.0),
        outcome=np.where(err, int(Outcome.ERROR), int(Outcome.OK)).astype(np.int8),
        prediction=np.full(sid.size, np.nan),
        unit=names[sid],
        randomised=np.zeros(sid.size, dtype=bool),
        epoch=np.ones(sid.size, dtype=np.int64),
    )


def test_session_mode_keeps_validity_under_sticky_routing() -> None:
    alpha, runs = 0.05, 100
    names = np.array([f"s{i}" for i in range(1500)], dtype=object)
    fails_session = fails_naive = 0
    for seed in range(runs):
        b = _sticky(seed, names)
        s = ErrorRateJudge(alpha=alpha, unit_mode="session")
        s.observe(b, BASE, CAND)
        fails_session += s.result(1e9).verdict is Verdict.FAIL
        naive = ErrorRateJudge(alpha=alpha)  # wrongly treating sticky requests as randomised
        naive.observe(replace(b, randomised=np.ones(len(b), dtype=bool)), BASE, CAND)
        fails_naive += naive.result(1e9).verdict is Verdict.FAIL
    assert fails_session / runs <= mc_limit(alpha, runs)
    assert fails_naive / runs > 2 * alpha  # why session mode exists


def test_take_helper_keeps_rows() -> None:
    b = stream(2, 10)
    assert len(take(b, slice(0, 3))) == 3
