from __future__ import annotations

import json

import numpy as np

from rayrollout.analysis import (
    AccuracyJudge,
    DisagreementJudge,
    DriftJudge,
    Judge,
    LabelledEvent,
    LatencyJudge,
    LatencyTailJudge,
    ThresholdErrorJudge,
    ThresholdLatencyJudge,
    Verdict,
    restore_judge,
)
from rayrollout.dataplane.events import EventBatch, Outcome, ShadowEvent
from tests.unit.analysis.sim import BASE, CAND, mc_limit, replace, stream, ticks


def run(judge: Judge, b: EventBatch, tick_s: float = 10.0, restore: bool = False) -> Judge:
    for i, tick in enumerate(ticks(b, tick_s)):
        judge.observe(tick, BASE, CAND)
        if restore and i % 4 == 0:
            judge = restore_judge(json.loads(json.dumps(judge.to_state())))
    return judge


# ---- latency (test B) -------------------------------------------------------------------
def test_latency_judge_detects_twenty_percent_and_round_trips() -> None:
    b = stream(0, 30_000, lat_mult=1.2)
    plain = run(LatencyJudge(alpha=0.05), b)
    resumed = run(LatencyJudge(alpha=0.05), b, restore=True)
    r = plain.result(b.t[-1])
    assert r.verdict is Verdict.FAIL and r.value is not None and r.value > 0.5
    assert resumed.result(b.t[-1]).to_dict() == r.to_dict()


def test_latency_judge_null_validity_and_inconclusive_start() -> None:
    assert LatencyJudge().result(0.0).verdict is Verdict.INCONCLUSIVE
    alpha, runs = 0.05, 60
    fails = sum(
        run(LatencyJudge(alpha=alpha), stream(s, 20_000)).result(1e9).verdict is Verdict.FAIL
        for s in range(runs)
    )
    assert fails / runs <= mc_limit(alpha, runs)


def test_latency_judge_nan_latency_is_error_and_errors_are_not_latency() -> None:
    b = stream(1, 5000)
    j = run(LatencyJudge(), replace(b, latency_ms=np.full(len(b), np.nan)))
    assert j.result(1e9).verdict is Verdict.ERROR
    # failed requests are left to the error judge: huge latencies on ERROR rows do not count
    slow_err = replace(b, outcome=np.full(len(b), int(Outcome.ERROR), dtype=np.int8))
    k = run(LatencyJudge(min_blocks=1), slow_err)
    assert k.result(1e9).counts["compared"] == 0


def test_latency_warmup_exclusion() -> None:
    b = stream(3, 40_000)
    cold = np.where(b.version == CAND, 1.0 + 0.5 * np.exp(-b.t / 60.0), 1.0)
    warm = replace(b, latency_ms=b.latency_ms * cold)
    assert run(LatencyJudge(alpha=0.05), warm).result(1e9).verdict is Verdict.FAIL
    r = run(LatencyJudge(alpha=0.05, warmup_s=300.0), warm).result(1e9)
    assert r.verdict is Verdict.PASS and r.counts["warmup_candidate"] > 0


# ---- latency tail (test C) --------------------------------------------------------------
def test_tail_judge_needs_a_threshold_then_detects_tail_only_regression() -> None:
    j = LatencyTailJudge(alpha=0.05, refresh_s=30.0)
    j.observe(stream(3, 500), BASE, CAND)
    r = j.result(10.0)
    assert r.verdict is Verdict.INCONCLUSIVE and "threshold" in r.reason
    b = stream(3, 60_000, tail_frac=0.05, tail_mult=3.0)
    r = run(LatencyTailJudge(alpha=0.05, refresh_s=30.0), b, restore=True).result(b.t[-1])
    assert r.verdict is Verdict.FAIL and r.counts["threshold_ms"] > 100.0


def test_tail_judge_null() -> None:
    alpha, runs = 0.05, 40
    fails = sum(
        run(LatencyTailJudge(alpha=alpha, p=0.95, refresh_s=30.0), stream(s, 20_000))
        .result(1e9)
        .verdict
        is Verdict.FAIL
        for s in range(runs)
    )
    assert fails / runs <= mc_limit(alpha, runs)


# ---- prediction drift -------------------------------------------------------------------
def _scores(seed: int, n: int, shift: float) -> EventBatch:
    b = stream(seed, n)
    rng = np.random.default_rng(seed + 10_000)
    c = b.version == CAND
    return replace(b, prediction=np.where(c, rng.beta(2 + shift, 5, n), rng.beta(2, 5, n)))


def test_drift_modes() -> None:
    same, shifted = _scores(4, 30_000, 0.0), _scores(4, 30_000, 1.0)
    for mode in ("tolerance", "rank"):
        assert run(DriftJudge(alpha=0.05, mode=mode), same).result(1e9).verdict is Verdict.PASS
        r = run(DriftJudge(alpha=0.05, mode=mode), shifted, restore=True).result(1e9)
        assert r.verdict is Verdict.FAIL, mode
    w = run(DriftJudge(alpha=0.05, mode="warning"), shifted).result(1e9)
    assert w.verdict is Verdict.PASS and w.warning and "WARNING" in w.reason
    assert DriftJudge().result(0.0).verdict is Verdict.INCONCLUSIVE


def test_drift_missing_predictions_are_error() -> None:
    assert run(DriftJudge(), stream(5, 5000)).result(1e9).verdict is Verdict.ERROR


def test_drift_categorical_edges() -> None:
    b = stream(6, 20_000)
    rng = np.random.default_rng(6)
    j = run(DriftJudge(alpha=0.05), replace(b, prediction=rng.integers(0, 3, len(b)).astype(float)))
    assert j.edges == [0.5, 1.5] and j.result(1e9).verdict is Verdict.PASS  # type: ignore[attr-defined]


# ---- shadow disagreement ----------------------------------------------------------------
def _shadows(seed: int, n: int, rate: float) -> list[ShadowEvent]:
    rng = np.random.default_rng(seed)
    d = (rng.random(n) < rate).astype(float)
    return [ShadowEvent(float(i), BASE, CAND, float(x), 0.0, 10.0, True) for i, x in enumerate(d)]


def test_disagreement_judge() -> None:
    j = DisagreementJudge(alpha=0.05, d0=0.05)
    assert j.result(0.0).verdict is Verdict.INCONCLUSIVE
    for lo in range(0, 5000, 500):
        j.observe(EventBatch(), BASE, CAND, shadow=_shadows(7, 5000, 0.08)[lo : lo + 500])
    assert j.result(5000.0).verdict is Verdict.FAIL
    k = DisagreementJudge(alpha=0.05, d0=0.05)
    k.observe(EventBatch(), BASE, CAND, shadow=_shadows(8, 5000, 0.03))
    k.observe(EventBatch(), BASE, CAND, shadow=[ShadowEvent(1.0, BASE, "v9", 1.0, 0, 1, True)])
    assert k.result(5000.0).verdict is Verdict.PASS
    bad = [ShadowEvent(float(i), BASE, CAND, float("nan"), 0, 1, True) for i in range(200)]
    e = DisagreementJudge()
    e.observe(EventBatch(), BASE, CAND, shadow=bad)
    assert e.result(1.0).verdict is Verdict.ERROR


# ---- accuracy / calibration -------------------------------------------------------------
def _labels(seed: int, n: int, acc_c: float, w: float = 0.3) -> list[LabelledEvent]:
    rng = np.random.default_rng(seed)
    c = rng.random(n) < w
    ok = rng.random(n) < np.where(c, acc_c, 0.9)
    prob = np.clip(rng.normal(0.85, 0.05, n), 0, 1)
    return [
        LabelledEvent(
            float(i), CAND if c[i] else BASE, w if c[i] else 1 - w, bool(ok[i]), float(prob[i]), 1
        )
        for i in range(n)
    ]


def test_accuracy_judge() -> None:
    j = AccuracyJudge(alpha=0.05)
    assert j.result(0.0).verdict is Verdict.INCONCLUSIVE
    labels = _labels(9, 20_000, 0.75)
    for lo in range(0, 20_000, 2000):
        j.observe(EventBatch(), BASE, CAND, labelled=labels[lo : lo + 2000])
    assert j.result(1e9).verdict is Verdict.FAIL
    k = AccuracyJudge(alpha=0.05)
    k.observe(EventBatch(), BASE, CAND, labelled=_labels(10, 5000, 0.9))
    r = k.result(1e9)
    assert r.verdict is Verdict.PASS and r.ci is not None and r.ci[0] < 1.0 < r.ci[1]
    assert restore_judge(json.loads(json.dumps(k.to_state()))).result(1e9) == r


# ---- plain threshold guards -------------------------------------------------------------
def test_threshold_guards_window_and_budget() -> None:
    b = stream(11, 12_000, rho=4.0, p_err=0.01, lat_mult=5.0)  # 120 s at 100 rps
    e = ThresholdErrorJudge(max_error_rate=0.01, window_s=60.0)
    lat = ThresholdLatencyJudge(max_ms=500.0, window_s=60.0)
    for tick in ticks(b, 1.0):
        e.observe(tick, BASE, CAND)
        lat.observe(tick, BASE, CAND)
    now = float(b.t[-1])
    assert e.result(now).verdict is Verdict.FAIL and e.alpha == 0.0
    assert lat.result(now).verdict is Verdict.FAIL
    assert e.result(now + 1000.0).verdict is Verdict.INCONCLUSIVE  # window has moved on
    back = restore_judge(json.loads(json.dumps(lat.to_state())))
    assert back.result(now) == lat.result(now)
    ok = ThresholdLatencyJudge(max_ms=500.0)
    ok.observe(stream(12, 12_000), BASE, CAND)
    assert ok.result(120.0).verdict is Verdict.PASS
