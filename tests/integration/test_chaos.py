"""Faults under steady load on a real local Ray: candidate replicas killed mid-canary, a router
replica killed, the controller killed while it deploys and in each canary step. Each rollout
must end in the right state with its whole log, the stable path must not fail, and each test
reports what its fault cost (failed requests by version, seconds from the fault to recovery)
with ``record_property`` and as JSON in its tmp_path. The controller-kill test has a long form
(eleven kills, some at random moments) in ``python -m benchmarks.endurance``.

A candidate that hangs is the ``hang`` fault of ``VersionSpec.faults`` (the drills run every
fault kind; this one runs it under the chaos tests' load).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

import rayrollout.client.api as rr
from rayrollout.errors import UnavailableError
from rayrollout.names import ROUTER_DEPLOYMENT, VERSION_DEPLOYMENT, router_app_name
from rayrollout.serving.port import RayServePort
from tests.conftest import ARTIFACTS, RayServe
from tests.integration.test_load import (
    LONG_FORM,
    NO_VERSION,
    Ledger,
    Model,
    Traffic,
    check_log,
    make_model,
    remove_model,
    report,
    rollout_spec,
    served_by,
    wait_for,
)

pytestmark = pytest.mark.integration

CLIENTS = 12
# Controller kills: one while it deploys, one in each canary step, and in the long form
# (``python -m benchmarks.endurance``) this many more at random moments after each canary kill.
EXTRA_KILLS = 4 if LONG_FORM else 0
CONTROLLER_KILLS = 1 + 2 * (1 + EXTRA_KILLS)


@pytest.fixture
def model(ray_serve: RayServe, tmp_path: Path) -> Iterator[Model]:
    m = make_model(ray_serve, tmp_path)
    yield m
    remove_model(m)


def replica_actors(app: str, deployment: str) -> list[str]:
    """Names of the live Serve replica actors of one deployment of ``app``."""
    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith(prefix)]


def decision_at(ro: rr.Rollout, phase: str) -> float | None:
    return next((e["now"] for e in ro.history() if e["phase_to"] == phase), None)


def test_candidate_replica_killed_mid_canary_recover(
    model: Model, heldout, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """One of the candidate's two replicas crashes (killed, as by an OOM) while it serves a
    canary step. Requests in flight on it fail, counted against the candidate; the other
    replica carries on, Serve starts a new one and the router's calls go to both. One crash
    that fails a handful of requests is no evidence that the candidate is worse (the errors
    check bounds false rollbacks), and the candidate never lost its last live replica (which
    the controller's health check would roll back), so the right outcome for a good candidate
    is that it recovers and is promoted, with the stable path untouched. (A candidate that
    crashes again and again is rolled back: the ``crash`` fault drill shows that.)"""
    X, _ = heldout
    steps = [{"weight": 30, "min_duration_s": 10}, {"weight": 60, "min_duration_s": 5}]
    cand = {"name": "v2", "runtime": "onnx", "artifact": str(ARTIFACTS / "v2.onnx"),
            "num_replicas": 2}
    spec = rollout_spec(model.name, model.store, ("v1", "v1.onnx"), ("v2", "v2.onnx"), steps,
                        candidates=[cand])
    spec["strategy"]["capacity"] = {"candidate": "full"}  # both replicas from the first step
    ro = model.start(spec)
    app = f"{model.name}-v2"
    with Traffic(model.base, model.name, X, clients=CLIENTS) as load:
        wait_for(ro, {"canary"}, timeout_s=120)
        time.sleep(3.0)  # the candidate serves its share first
        deadline = time.monotonic() + 60
        while len(before := replica_actors(app, VERSION_DEPLOYMENT)) < 2:
            assert time.monotonic() < deadline, before
            time.sleep(0.2)
        victim = sorted(before)[0]
        killed_at = time.time()
        with contextlib.suppress(ValueError):  # already gone
            ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        replaced_at = None
        deadline = time.monotonic() + 60
        while replaced_at is None and time.monotonic() < deadline:
            now = replica_actors(app, VERSION_DEPLOYMENT)
            if len(now) == 2 and victim not in now:
                replaced_at = time.time()
            time.sleep(0.2)
        st = wait_for(ro, {"promoted", "rolled_back"}, timeout_s=180)
        served_by(load, st["epoch"], timeout_s=30)  # the final table serves
    failed = load.failed()
    print("\ncandidate replica killed:", victim, "phase", st["phase"], "failed", dict(failed),
          "served", dict(load.served()))
    assert replaced_at is not None  # Serve replaced the killed replica
    assert st["phase"] == "promoted" and st["weights"] == {"v2": 100.0}, st["checks"]
    # One move may have waited for the replacement (logged once, when the wait began): Serve
    # counts the killed replica as running until its next health check of it (up to 10 s), so
    # the wait falls before the step move (at step 0) or, when Serve noticed the loss after
    # that move, before the promotion (at step 1, which needs both replicas of v2).
    expected = [("canary", "canary", 1), ("canary", "promoted", 1)]
    waited = [e for e in ro.history() if "waiting for capacity" in e["reason"]]
    assert len(waited) <= 1, waited
    for e in waited:
        assert e["step"] in (0, 1) and "replicas running: v2 1 of 2" in e["reason"], e
        expected.insert(e["step"], ("canary", "canary", e["step"]))
    check_log(ro, expected)
    assert failed["v1"] == 0 and failed[NO_VERSION] == 0, failed  # the stable path held
    assert load.served()["v2"] > 0
    led = Ledger.settle(model.store, st["rollout"], load.sent)
    report(record_property, tmp_path, "chaos_candidate_killed", {
        "replicas_killed": 1, "failed": dict(failed), "served": dict(load.served()),
        "s_kill_to_replaced": round(replaced_at - killed_at, 2),
        "sent": load.sent, "recorded": led.recorded})


def test_a_candidate_that_hangs_is_rolled_back_and_the_stable_path_holds(
    model: Model, heldout, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """A third of the candidate's requests never answer. The router gives up on each after
    its request timeout (a 504, counted as the candidate's TIMEOUT); the errors check rolls
    it back; the stable path fails nothing and, after the rollback, nothing fails at all.
    Requests still waiting on the candidate when the rollback's table lands stop waiting
    after the router's short grace (a 503 ``version_withdrawn``, the candidate's ERROR)
    instead of waiting out the timeout."""
    X, _ = heldout
    cand = {"name": "v2", "runtime": "onnx", "artifact": str(ARTIFACTS / "v2.onnx"),
            "faults": {"hang_fraction": 0.3, "seed": 3}}
    spec = rollout_spec(model.name, model.store, ("v1", "v1.onnx"), ("v2", "v2.onnx"),
                        [{"weight": 20, "min_duration_s": 120}, {"weight": 50}],
                        candidates=[cand], router={"request_timeout_s": 2.0})
    ro = model.start(spec)
    with ErrorCodes(model.base, model.name, X, clients=CLIENTS) as load:
        wait_for(ro, {"canary"}, timeout_s=120)
        canary_at = time.time()
        st = wait_for(ro, {"rolled_back", "promoted"}, timeout_s=120)
        time.sleep(3.0)  # every hung request has timed out by now
    assert st["phase"] == "rolled_back" and st["weights"] == {"v1": 100.0}
    log = check_log(ro, [("canary", "rolled_back", 0)])
    assert "errors" in log[-1]["reason"]
    failed = load.failed()
    assert failed["v1"] == 0 and failed[NO_VERSION] == 0 and failed["v2"] > 0, failed
    # Every candidate failure is a timeout (504) or, for a request still waiting on it when
    # the rollback withdrew it, a 503 version_withdrawn; both name the candidate.
    codes = Counter((e.version, e.status, e.code) for e in load.errors)
    rolled_back_at = log[-1]["now"]
    assert codes[("v2", 504, "model_timeout")] > 0, codes
    assert set(codes) <= {("v2", 504, "model_timeout"), ("v2", 503, "version_withdrawn")}, codes
    withdrawn = [e for e in load.errors if e.status == 503]
    assert all(e.t >= rolled_back_at for e in withdrawn), (rolled_back_at, withdrawn)
    candidate_failed = Counter(r.status for r in load.replies
                               if r.version == "v2" and r.kind == "ok" and r.status != 200)
    assert candidate_failed == Counter({s: n for (_, s, _), n in codes.items()}), (
        candidate_failed, codes)
    after = load.failed(since=log[-1]["now"] + 2.5)  # the last hung ones time out
    assert sum(after.values()) == 0, after
    report(record_property, tmp_path, "chaos_candidate_hangs", {
        "failed": dict(failed), "served": dict(load.served()),
        "s_canary_to_rollback": round(log[-1]["now"] - canary_at, 2)})


@dataclass(frozen=True)
class ErrorReply:
    """A 5xx answer as its client read it: when it came, the version that answered, the
    status and the error ``code`` of its JSON body (empty when the body has none)."""

    t: float
    version: str
    status: int
    code: str


class ErrorCodes(Traffic):
    """``Traffic`` that also reads the body of every 5xx answer (``errors``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors: list[ErrorReply] = []

    def __enter__(self) -> ErrorCodes:
        super().__enter__()
        return self

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.clients)
        async with httpx.AsyncClient(base_url=self.base, timeout=60, limits=limits,
                                     event_hooks={"response": [self._read_error]}) as c:
            await asyncio.gather(*(self._client(c, k) for k in range(self.clients)))

    async def _read_error(self, r: httpx.Response) -> None:
        if r.status_code < 500:
            return
        await r.aread()
        try:
            body = r.json()
        except ValueError:
            body = None
        code = str(body.get("code", "")) if isinstance(body, dict) else ""
        self.errors.append(ErrorReply(time.time(), r.headers.get("x-model-version", NO_VERSION),
                                      r.status_code, code))


def router_epochs(m: Model) -> list[int]:
    return [int(t["epoch"]) for t in RayServePort().router_tables(m.name)]


def test_router_replica_killed(
    model: Model, heldout, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """Two router replicas; one is killed mid-canary. The other carries the traffic, Serve
    starts a new one, which serves the current routing epoch (it asks the controller, and
    the controller pushes again to a replica that reports an older one), and the rollout is
    promoted as it would have been."""
    X, _ = heldout
    steps = [{"weight": 20, "min_duration_s": 8}, {"weight": 50, "min_duration_s": 4}]
    spec = rollout_spec(model.name, model.store, ("v1", "v1.onnx"), ("v2", "v2.onnx"), steps,
                        router={"deployment": {"num_replicas": 2}})
    ro = model.start(spec)
    app = router_app_name(model.name)
    with Traffic(model.base, model.name, X, clients=CLIENTS) as load:
        wait_for(ro, {"canary"}, timeout_s=120)
        time.sleep(3.0)
        epoch = ro.status()["epoch"]
        before = set(replica_actors(app, ROUTER_DEPLOYMENT))
        assert len(before) == 2
        killed_at = time.time()
        victim = sorted(before)[0]
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        # Recovered: two replicas again, the new one among them, all on the current epoch.
        recovered_at = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = set(replica_actors(app, ROUTER_DEPLOYMENT))
            try:
                epochs = router_epochs(model)
            except UnavailableError:
                epochs = []
            cur = ro.status()["epoch"]
            if len(now) == 2 and victim not in now and len(epochs) == 2 and set(epochs) == {cur}:
                recovered_at = time.time()
                break
            time.sleep(0.2)
        assert recovered_at is not None, (now, epochs)
        st = wait_for(ro, {"promoted", "rolled_back"}, timeout_s=120)
        served_by(load, st["epoch"], timeout_s=30)  # the final table serves
    assert st["phase"] == "promoted" and st["weights"] == {"v2": 100.0}
    check_log(ro, [("canary", "canary", 1), ("canary", "promoted", 1)])
    failed = load.failed()
    # Requests in flight on the killed replica are lost with it (no version answered them);
    # no request that reached a version failed, on the stable path or the candidate's.
    assert failed["v1"] == 0 and failed["v2"] == 0, failed
    # After recovery every answer came from a table at least as new as the one in force
    # at the kill: the new replica never served its config's (epoch 0) table.
    stale = [r for r in load.replies if r.t0 >= killed_at and 0 <= r.epoch < epoch]
    assert not stale, stale[:5]
    led = Ledger.settle(model.store, st["rollout"], load.sent, timeout_s=5)
    report(record_property, tmp_path, "chaos_router_killed", {
        "failed": dict(failed), "served": dict(load.served()),
        "s_kill_to_two_replicas_on_current_epoch": round(recovered_at - killed_at, 2),
        "failed_after_recovery": sum(load.failed(since=recovered_at).values()),
        "sent": load.sent, "recorded": led.recorded,
        "lost_from_counts": load.sent - led.recorded})
    assert led.recorded <= load.sent  # nothing counted twice


def test_controller_killed_during_one_rollout(
    model: Model, heldout, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """The controller is killed (Ray restarts it; it reloads the rollout from its store) while
    it deploys the candidate, in the first canary step and in the second. After each restart
    the controller answers with its rollout where it was or further on (decision count and
    epoch never go back; phase, step and weights change only with a decision) and with the log
    it had (no entry lost or rewritten). A ``Rollout.wait()`` in another thread rides out
    every restart; the rollout is promoted with each transition logged exactly once; the
    routers served on throughout.

    Long form (11 kills: four more at random moments after each canary kill; 30 s steps):
    ``python -m benchmarks.endurance``."""
    X, _ = heldout
    step_s = 30 if LONG_FORM else 5
    steps = [{"weight": 30, "min_duration_s": step_s}, {"weight": 60, "min_duration_s": step_s}]
    spec = rollout_spec(model.name, model.store, ("v1", "v1.onnx"), ("v2", "v2.onnx"), steps)
    ro = model.start(spec)
    waited: dict[str, Any] = {}

    def waiter() -> None:
        try:
            waited["status"] = ro.wait(frozenset({"promoted", "rolled_back"}), 300)
        except Exception as e:  # reported below: wait() must survive the restarts
            waited["error"] = repr(e)

    rng = random.Random(9)
    kills: list[dict[str, Any]] = []
    with Traffic(model.base, model.name, X, clients=CLIENTS) as load:
        w = threading.Thread(target=waiter)
        w.start()
        kills.append(kill_controller(model))  # while it deploys the candidate
        for step in (0, 1):
            wait_until(ro, in_step(step))
            kills.append(kill_controller(model))
            for _ in range(EXTRA_KILLS):
                time.sleep(rng.uniform(0.2, 2.5))
                kills.append(kill_controller(model))
        w.join(300)
        st = wait_for(ro, {"promoted", "rolled_back"}, timeout_s=120)
        served_by(load, st["epoch"], timeout_s=30)
    assert "error" not in waited, waited["error"]
    assert waited["status"]["phase"] == "promoted"
    assert st["phase"] == "promoted" and st["weights"] == {"v2": 100.0}
    check_log(ro, [("canary", "canary", 1), ("canary", "promoted", 1)])
    assert len(kills) == CONTROLLER_KILLS, kills
    where = [(k["phase"], k["step"]) for k in kills]
    assert where[0][0] in ("pending", "deploying"), where
    assert {("canary", 0), ("canary", 1)} <= set(where), where
    failed = load.failed()
    assert sum(failed.values()) == 0, failed  # the routers never needed the controller
    led = Ledger.settle(model.store, st["rollout"], load.sent, timeout_s=10)
    assert led.recorded <= load.sent  # nothing counted twice
    report(record_property, tmp_path, "chaos_controller_killed", {
        "kills": kills, "failed": dict(failed),
        "s_to_answer_max": max(k["s_to_answer"] for k in kills),
        "s_to_answer_mean": round(sum(k["s_to_answer"] for k in kills) / len(kills), 2),
        "sent": load.sent, "recorded": led.recorded,
        "lost_from_counts": load.sent - led.recorded})


def snapshot(st: dict[str, Any]) -> tuple[Any, ...]:
    return st["phase"], st["step"], dict(st["weights"])


def in_step(step: int) -> Callable[[dict[str, Any]], bool]:
    """A status in canary step ``step`` or later (or with the rollout's outcome known)."""
    def ok(st: dict[str, Any]) -> bool:
        return st["phase"] in ("promoted", "rolled_back") or (
            st["phase"] == "canary" and st["step"] >= step)
    return ok


def wait_until(ro: rr.Rollout, ok: Callable[[dict[str, Any]], bool], timeout_s: float = 120
               ) -> dict[str, Any]:
    """Poll the rollout's status until ``ok`` holds for it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = ro.status()
        if ok(st):
            return st
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s:g} s: {ro.status()}")


def kill_controller(m: Model) -> dict[str, Any]:
    """Kill the controller (Ray restarts it) and wait until the new one answers; then check
    that it resumed where the old one was or further on: the same rollout, decision count
    and epoch no lower (phase, step and weights the same unless a decision came in between),
    and the log it had, entry for entry, at the head of its log."""
    h = m.controller()
    ro = rr.connect(m.name)
    st, log = ro.status(), ro.history()
    pid = ray.get(h.pid.remote(), timeout=30)
    t0 = time.time()
    ray.kill(h, no_restart=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if ray.get(h.pid.remote(), timeout=5) != pid:
                s_to_answer = round(time.time() - t0, 2)
                break
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            pass
        time.sleep(0.1)
    else:
        raise AssertionError("the controller did not come back")
    after, log_after = ro.status(), ro.history()
    assert after["rollout"] == st["rollout"], (st, after)
    assert after["decisions"] >= st["decisions"] and after["epoch"] >= st["epoch"], (st, after)
    if after["decisions"] == st["decisions"]:  # no decision since: exactly where it was
        assert snapshot(after) == snapshot(st), (st, after)
    assert log_after[:len(log)] == log, (log, log_after)  # none lost, none rewritten
    return {"phase": st["phase"], "step": st["step"], "s_to_answer": s_to_answer}
