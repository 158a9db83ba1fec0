"""Fault injection: ``FaultSpec`` validation, ``FaultInjector`` for every kind of fault on the fake
runtime with a hand-moved clock, and the drill's plans and verdicts (no Ray, no sleeping)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from rayrollout._compat import ASYNC_TIMEOUT
from rayrollout.cli.drill import KINDS, drill_spec, judge, render
from rayrollout.cli.main import build_parser
from rayrollout.runtime.fake import FakeRuntime
from rayrollout.runtime.faults import CRASH_EXIT_CODE, FaultInjector, InjectedFault
from rayrollout.spec import FaultSpec, VersionSpec, format_validation_error

X = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Exits:
    """Records the exit codes an injector asked for, instead of exiting."""

    def __init__(self) -> None:
        self.codes: list[int] = []

    def __call__(self, code: int) -> None:
        self.codes.append(code)


def injector(task: str = "classification", **faults: Any) -> tuple[FaultInjector, Clock, Exits]:
    clock, exits = Clock(), Exits()
    return FaultInjector(FaultSpec(**faults), task, clock, exits), clock, exits


def call(inj: FaultInjector, rt: FakeRuntime, x: np.ndarray = X,
         timeout_s: float | None = None) -> dict[str, np.ndarray]:
    async def predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return rt.predict(inputs)

    async def go() -> dict[str, np.ndarray]:
        return await asyncio.wait_for(inj.run(predict, {"input": x}), timeout_s)

    return asyncio.run(go())


# -- FaultSpec -------------------------------------------------------------------------------


def test_all_faults_are_off_by_default() -> None:
    f = FaultSpec()
    assert not f.active
    assert VersionSpec(name="v", runtime="onnx", artifact="m.onnx").faults is None


@pytest.mark.parametrize("field, value", [
    ("latency_ms", -1), ("latency_ms", 10_000_000), ("tail_fraction", 1.5),
    ("error_rate", -0.1), ("error_rate", 2), ("hang_fraction", 1.01), ("wrong_fraction", -1),
    ("crash_after_requests", 0), ("crash_after_s", 0), ("slow_start_s", 7200),
    ("seed", -1), ("start_after_s", 1e9), ("latency_ms", float("nan")), ("error_rate", "0.5"),
    ("typo_rate", 0.1),
])
def test_a_bad_value_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as e:
        FaultSpec.model_validate({field: value})
    assert format_validation_error(e.value).startswith(f"{field}:")


@pytest.mark.parametrize("doc, words", [
    ({"tail_fraction": 0.1}, "tail_ms"),
    ({"tail_ms": 100}, "tail_fraction"),
    ({"crash_after_requests": 5, "crash_after_s": 1.0}, "crash_after_s"),
    ({"error_rate": 0.6, "hang_fraction": 0.6}, "hang_fraction"),
])
def test_inconsistent_faults_are_refused_naming_both_fields(doc: dict, words: str) -> None:
    with pytest.raises(ValidationError) as e:
        FaultSpec.model_validate(doc)
    assert words in str(e.value)


def test_a_version_carries_its_faults_to_its_config() -> None:
    v = VersionSpec.model_validate({"name": "v2", "runtime": "onnx", "artifact": "m.onnx",
                                    "faults": {"error_rate": 0.25, "seed": 3}})
    cfg = v.for_model("digits")
    assert cfg.faults == FaultSpec(error_rate=0.25, seed=3) and cfg.faults.active
    with pytest.raises(ValidationError) as e:
        VersionSpec.model_validate({"name": "v2", "runtime": "onnx", "artifact": "m.onnx",
                                    "faults": {"error_rate": 3}})
    assert format_validation_error(e.value).startswith("faults.error_rate:")


# -- FaultInjector: every kind -------------------------------------------------------------


def test_no_fault_answers_what_the_runtime_answers() -> None:
    inj, _, exits = injector()
    rt = FakeRuntime()
    out = call(inj, rt)
    assert np.array_equal(out["label"], rt.predict({"input": X})["label"])
    assert inj.before().delay_s == 0 and not exits.codes


def test_latency_delays_every_request() -> None:
    inj, _, _ = injector(latency_ms=250)
    assert [inj.before().delay_s for _ in range(20)] == [0.25] * 20


def test_tail_delays_about_its_fraction_of_requests() -> None:
    inj, _, _ = injector(tail_fraction=0.2, tail_ms=400, latency_ms=10)
    delays = [inj.before().delay_s for _ in range(5000)]
    assert set(delays) == {0.01, 0.41}
    assert 0.17 < delays.count(0.41) / len(delays) < 0.23


def test_errors_fail_about_their_rate_as_model_failures() -> None:
    inj, _, _ = injector(error_rate=0.3, seed=7)
    rt = FakeRuntime()
    outcomes = []
    for _ in range(2000):
        try:
            call(inj, rt)
            outcomes.append("ok")
        except InjectedFault:
            outcomes.append("fail")
    assert 0.27 < outcomes.count("fail") / len(outcomes) < 0.33
    assert rt.calls == outcomes.count("ok")  # a failed request never reached the model


def test_hang_never_answers() -> None:
    inj, _, _ = injector(hang_fraction=1.0)
    rt = FakeRuntime()
    with pytest.raises(ASYNC_TIMEOUT):
        call(inj, rt, timeout_s=0.05)
    assert rt.calls == 0


def test_hang_and_errors_share_one_draw() -> None:
    inj, _, _ = injector(hang_fraction=0.5, error_rate=0.5)
    got = [inj.before() for _ in range(500)]
    assert all(m.hang != m.fail for m in got)  # each request hangs or fails, never both
    assert 0.4 < sum(m.hang for m in got) / len(got) < 0.6


def test_crash_after_requests_exits_once_on_the_next_request() -> None:
    inj, _, exits = injector(crash_after_requests=3)
    rt = FakeRuntime()
    for _ in range(3):
        call(inj, rt)
    assert exits.codes == []
    call(inj, rt)  # the fourth request: the process exits (here the fake exit returns)
    assert exits.codes == [CRASH_EXIT_CODE] and inj.crashed
    for _ in range(5):
        call(inj, rt)
    assert exits.codes == [CRASH_EXIT_CODE]  # once


def test_crash_after_seconds_exits_at_the_first_request_due() -> None:
    inj, clock, exits = injector(crash_after_s=10.0)
    rt = FakeRuntime()
    assert inj.crash_delay_s() == 10.0
    clock.t += 9.9
    call(inj, rt)
    assert not exits.codes
    clock.t += 0.1
    call(inj, rt)
    assert exits.codes == [CRASH_EXIT_CODE] and inj.crash_delay_s() is None


def test_crash_timer_exits_without_any_request() -> None:
    inj, clock, exits = injector(crash_after_s=5.0)
    clock.t += 5.0  # due now: the timer fires at once
    timer = inj.crash_timer()
    assert isinstance(timer, threading.Timer) and timer.daemon
    timer.join(10)
    assert exits.codes == [CRASH_EXIT_CODE]
    assert injector(crash_after_requests=5)[0].crash_timer() is None


def test_wrong_classification_rows_answer_another_class_consistently() -> None:
    inj, _, _ = injector(wrong_fraction=0.5, seed=11)
    rt = FakeRuntime()
    x = np.random.default_rng(2).normal(size=(4000, 4)).astype(np.float32)
    truth = rt.predict({"input": x})
    out = call(inj, rt, x)
    wrong = out["label"] != truth["label"]
    assert 0.46 < wrong.mean() < 0.54
    assert np.array_equal(out["probabilities"].argmax(axis=1), out["label"])  # they agree
    assert np.allclose(np.sort(out["probabilities"], axis=1),
                       np.sort(truth["probabilities"], axis=1))  # the same numbers, permuted
    assert np.array_equal(out["label"][~wrong], truth["label"][~wrong])
    assert set(np.unique(out["label"])) <= {0, 1, 2}
    assert np.array_equal(rt.predict({"input": x})["label"], truth["label"])  # not in place


def test_wrong_regression_rows_are_offset() -> None:
    def fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"value": inputs["input"][:, 0].astype(np.float32)}

    inj, _, _ = injector("regression", wrong_fraction=0.25, seed=5)
    rt = FakeRuntime(fn=fn)
    x = np.random.default_rng(3).normal(size=(2000, 4)).astype(np.float32)
    out = call(inj, rt, x)["value"]
    diff = np.abs(out - x[:, 0])
    moved = diff > 0
    assert 0.2 < moved.mean() < 0.3
    assert np.all(diff[moved] >= 1.0) and np.all(diff[moved] >= np.abs(x[moved, 0]))


def test_slow_start_waits_before_the_replica_counts_as_started() -> None:
    inj, clock, _ = injector(slow_start_s=30.0, start_after_s=0)
    waited: list[float] = []

    def sleep(s: float) -> None:
        waited.append(s)
        clock.t += s

    inj.slow_start(sleep)
    assert waited == [30.0] and inj.started == clock.t


def test_faults_begin_after_start_after_s() -> None:
    inj, clock, exits = injector(error_rate=1.0, crash_after_requests=1, start_after_s=60)
    rt = FakeRuntime()
    for _ in range(10):
        call(inj, rt)  # a healthy start: no error, no crash, nothing counted
    assert inj.requests == 0 and not exits.codes
    clock.t += 60
    with pytest.raises(InjectedFault):
        call(inj, rt)


def test_the_same_seed_misbehaves_the_same_way() -> None:
    def run(seed: int) -> list[Any]:
        inj, _, _ = injector(error_rate=0.3, tail_fraction=0.3, tail_ms=5, wrong_fraction=0.3,
                             seed=seed)
        x = np.random.default_rng(4).normal(size=(50, 4)).astype(np.float32)
        return [inj.before() for _ in range(100)] + [call(inj, FakeRuntime(), x)["label"].tolist()]

    assert run(1) == run(1)
    assert run(1) != run(2)


# -- the drill's plan and verdict (pure: a decision log and the clients' counts) -------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_drill_spec_validates_with_its_fault_on_the_candidate(kind: str) -> None:
    spec = drill_spec(kind, f"drill-{kind}", "/tmp/x.db")
    faults = spec.candidates[0].faults
    assert faults is not None and faults.active and spec.stable.faults is None
    assert build_parser().parse_args(["drill", "--fault", kind]).fault == kind


def log(*entries: tuple[str, float, str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"phase_to": p, "now": t, "reason": why, "evidence": {"v2": ev}}
            for p, t, why, ev in entries]


FAIL = [{"check": "errors", "verdict": "FAIL"}, {"check": "latency", "verdict": "PASS"}]
ROLLED_BACK = log(("deploying", 0.0, "", []), ("canary", 2.0, "", []),
                  ("rolled_back", 6.0, "rolled back: v2 failed errors: ...", FAIL))


def test_a_drill_passes_when_the_right_check_rolls_back_in_time() -> None:
    spec = drill_spec("errors", "drill-errors", "/tmp/x.db")
    seen = {"v1": {"sent": 90, "answered": 90, "failed": 0},
            "v2": {"sent": 10, "answered": 7, "failed": 3}}
    r = judge("errors", spec, ROLLED_BACK, seen, bound_s=30)
    assert r.passed and r.fired == ["errors"] and r.seconds == 4.0 and r.stable_failed == 0
    assert "PASS" in render(r) and r.to_dict()["requests"] == seen


@pytest.mark.parametrize("kind, failed, bound, problem", [
    ("errors", {"v1": 1}, 30, "stable path"),
    ("errors", {"?": 1}, 30, "stable path"),  # an answer that named no version counts too
    ("errors", {}, 3, "bound"),
    ("latency", {}, 30, "expected ['latency']"),
])
def test_a_drill_fails_on_stable_failures_a_late_or_a_wrong_rollback(
        kind: str, failed: dict[str, int], bound: float, problem: str) -> None:
    spec = drill_spec(kind, "drill-x", "/tmp/x.db")
    seen = {v: {"sent": n, "answered": 0, "failed": n} for v, n in failed.items()}
    r = judge(kind, spec, ROLLED_BACK, seen, bound_s=bound)
    assert not r.passed and any(problem in p for p in r.problems), r.problems


def test_the_slow_start_drill_wants_a_wait_then_a_promotion() -> None:
    spec = drill_spec("slow-start", "drill-s", "/tmp/x.db", {"slow_start_s": 5.0})
    ok = log(("deploying", 0.0, "", []), ("canary", 6.0, "", []),
             ("promoted", 9.0, "promoted v2", []), ("completed", 9.5, "", []))
    r = judge("slow-start", spec, ok, {}, bound_s=60)
    assert r.passed and r.waited_s == 6.0 and r.seconds == 9.0
    early = log(("deploying", 0.0, "", []), ("canary", 1.0, "", []), ("promoted", 3.0, "", []))
    problems = judge("slow-start", spec, early, {}, 60).problems
    assert any("before the 5 s start" in p for p in problems)
    assert not judge("slow-start", spec, ROLLED_BACK, {}, 60).passed
