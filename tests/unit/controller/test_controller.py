"""``RolloutController`` driven tick by tick through the in-memory ``FakeServePort``: whole
rollouts (deploy, shadow, steps, approval, promotion, undo, drain, rollback, retry) and
restarts, with real judges on synthetic traffic and a hand-moved clock, over both stores
(``stores``: SQLite, PostgreSQL). No Ray is started or imported (``test_no_ray`` checks that in
a fresh interpreter)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rayrollout.client.api as rr
from rayrollout.controller.controller import RolloutController
from rayrollout.controller.fake import FakeServePort
from rayrollout.controller.store import store_kind
from rayrollout.dataplane.events import Outcome
from rayrollout.errors import Conflict, IllegalTransition, NotFound
from tests.unit.controller.conftest import Stores

MODEL = "m"


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def spec_doc(store: str | Path, **over: Any) -> dict[str, Any]:
    """A spec whose store is ``store``: a path (``store_path``) or a URL (``store_url``)."""
    where = "store_url" if store_kind(str(store)) == "postgresql" else "store_path"
    doc: dict[str, Any] = {
        "model": MODEL,
        "stable": {"name": "v1", "runtime": "onnx", "artifact": "models/artifacts/v1.onnx"},
        "candidates": [{"name": "v2", "runtime": "onnx", "artifact": "models/artifacts/v2.onnx"}],
        "strategy": {
            "shadow": {"fraction": 0.5, "min_comparisons": 50},
            "steps": [{"weight": 10, "min_requests": 100, "min_duration_s": 5},
                      {"weight": 50, "min_requests": 200, "approval": True}],
        },
        "analysis": {"checks": [{"kind": "errors", "params": {"min_candidate_requests": 50}},
                                {"kind": "latency"}]},
        "rollback_window_s": 60,
        "drain_s": 10,
        "router": {"deployment": {"num_replicas": 2}},
        where: str(store),
    }
    doc.update(over)
    return doc


class Cluster:
    """The fake cluster, its clock, and traffic: each router replica serves ``n`` requests a
    tick under its own table (seeded), with per-version error rates and latency factors."""

    def __init__(self, store: str | Path, seed: int = 0) -> None:
        self.clock = Clock()
        self.port = FakeServePort(self.clock)
        self.store = str(store)  # a path or a URL
        self.rng = random.Random(seed)
        self.err: dict[str, float] = {}

    @property
    def controller(self) -> RolloutController:
        return self.port.controllers[MODEL]

    def serve(self, n: int = 60) -> None:
        for router in self.port.routers.get(MODEL, []):
            t = router.table
            names = sorted(t.weights)
            weights = [t.weights[v] for v in names]
            for i in range(n):
                ts = self.clock.t + i / n
                v = self.rng.choices(names, weights)[0]
                bad = self.rng.random() < self.err.get(v, 0.005)
                lat = self.rng.lognormvariate(math.log(10.0), 0.3)
                router.request(ts, v, lat, Outcome.ERROR if bad else Outcome.OK)
                if t.shadow and v != t.shadow and self.rng.random() < t.shadow_fraction:
                    router.shadow(ts, v, t.shadow, 0.0)

    def tick(self, n: int = 60) -> str:
        """One second of traffic, then one controller step; returns the phase."""
        self.serve(n)
        self.clock.t += 1.0
        self.controller.step()
        return str(self.controller.status()["phase"])

    def run_until(self, phases: set[str], ticks: int = 400, n: int = 60) -> str:
        for _ in range(ticks):
            phase = self.tick(n)
            if phase in phases:
                return phase
        raise AssertionError(f"still {self.controller.status()['phase']} after {ticks} ticks")

    def tables(self) -> list[tuple[int, dict[str, float], str | None]]:
        """(epoch, weights in percent, shadow) on every router replica."""
        return [(r.table.epoch, r.table.percent(), r.table.shadow)
                for r in self.port.routers[MODEL]]

    def app_deleted_at(self, version: str) -> float | None:
        return next((t for t, app in self.port.deleted if app == f"{MODEL}-{version}"), None)


@pytest.fixture
def cluster(stores: Stores) -> Iterator[Cluster]:
    c = Cluster(stores.target)
    yield c
    for controller in c.port.controllers.values():
        controller.store.close()


def start(cluster: Cluster, **over: Any) -> rr.Rollout:
    # the store is named twice: in the spec, and as the store the controller is created with
    return rr.start(spec_doc(cluster.store, **over), store_path=cluster.store, port=cluster.port)


def test_a_rollout_goes_through_shadow_steps_approval_and_promotion(cluster: Cluster) -> None:
    ro = start(cluster)
    st = ro.status()
    assert st["phase"] == "pending" and st["allowed_verbs"] == []  # nothing to steer yet
    assert cluster.port.versions(MODEL) == {"v1"}  # the stable and the router were deployed
    assert cluster.tables() == [(0, {"v1": 100.0}, None)] * 2

    assert cluster.tick() == "deploying" and cluster.port.versions(MODEL) == {"v1", "v2"}
    assert cluster.tick() == "shadow"  # the fake's apps are ready at once
    epoch = ro.status()["epoch"]
    assert cluster.tables() == [(epoch, {"v1": 100.0}, "v2")] * 2  # users see only stable

    assert cluster.run_until({"canary"}) == "canary"
    st = ro.status()
    assert st["step"] == 0 and st["shadow_compared"] >= 50
    assert cluster.tables() == [(st["epoch"], {"v1": 90.0, "v2": 10.0}, None)] * 2

    assert cluster.run_until({"awaiting_approval"}) == "awaiting_approval"
    st = ro.status()
    assert st["step"] == 1 and st["weights"] == {"v1": 50.0, "v2": 50.0}
    assert "approve" in st["allowed_verbs"] and not st["final"]
    assert any(c["verdict"] == "PASS" for c in st["checks"]["v2"])
    assert all(c["log10_threshold"] > 0 for c in st["checks"]["v2"])

    st = ro.approve()
    assert st["phase"] == "promoted" and st["final"] and st["stable"] == "v2"
    assert cluster.tables() == [(st["epoch"], {"v2": 100.0}, None)] * 2
    assert [n["message"] for n in cluster.port.notifier.events][-1] == "m: promoted v2"
    # the old stable stays warm for the rollback window, then is retired after the drain
    promoted_at = cluster.clock.t
    assert cluster.run_until({"completed"}) == "completed"
    assert cluster.clock.t >= promoted_at + 60
    for _ in range(12):
        cluster.tick()
    deleted = cluster.app_deleted_at("v1")
    assert deleted is not None and deleted >= promoted_at + 60 + 10
    assert cluster.port.versions(MODEL) == {"v2"}
    assert ro.verify()["ok"] and ro.replay()["identical"]


def test_a_failing_candidate_is_rolled_back_at_once_and_its_app_deleted_after_the_drain(
    cluster: Cluster,
) -> None:
    ro = start(cluster, strategy={"steps": [{"weight": 20, "min_requests": 10**6}]})
    cluster.err = {"v2": 0.5}  # half of the candidate's requests fail
    assert cluster.run_until({"rolled_back"}) == "rolled_back"
    st = ro.status()
    assert st["weights"] == {"v1": 100.0}
    # the rollback is a table push first: every replica has it when the decision returns
    assert cluster.tables() == [(st["epoch"], {"v1": 100.0}, None)] * 2
    last = ro.history(limit=1)[-1]
    assert last["phase_to"] == "rolled_back" and "v2 failed errors" in last["reason"]
    decided = last["now"]
    assert cluster.app_deleted_at("v2") is None  # still draining
    for _ in range(12):
        cluster.tick()
    deleted = cluster.app_deleted_at("v2")
    assert deleted is not None and decided + 10 <= deleted <= decided + 12
    assert st["allowed_verbs"] == ["retry"]

    cluster.err = {}
    st = ro.retry()
    assert st["phase"] == "deploying" and st["attempt"] == 2
    assert "v2" in cluster.port.versions(MODEL)  # deployed again
    assert cluster.tick() == "canary"


def test_a_retry_whose_deploy_serve_refuses_is_accepted_and_deployed_on_a_later_tick(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ro = start(cluster, strategy={"steps": [{"weight": 20, "min_requests": 10**6}]})
    assert cluster.run_until({"canary"}) == "canary"
    ro.abort()
    for _ in range(12):  # past the drain: the candidate's app is deleted
        cluster.tick()
    assert "v2" not in cluster.port.versions(MODEL)
    deploy = cluster.port.deploy_version
    refusals: list[str] = []

    def refuse_once(config: Any, replicas: int | None = None) -> None:
        if not refusals:
            refusals.append(config.name)
            raise RuntimeError("Serve's controller is busy")
        deploy(config, replicas)

    monkeypatch.setattr(cluster.port, "deploy_version", refuse_once)
    st = ro.retry()  # decided and stored: not an internal error
    assert st["phase"] == "deploying" and refusals == ["v2"]
    assert "v2" not in cluster.port.versions(MODEL)
    cluster.tick()  # asked again, and the fake's app is ready at once
    assert "v2" in cluster.port.versions(MODEL)
    assert cluster.run_until({"canary"}) == "canary"


def test_undo_after_promotion_makes_the_old_stable_stable_and_drains_the_new_one(
    cluster: Cluster,
) -> None:
    ro = start(cluster, strategy={"steps": [{"weight": 10}]})
    assert cluster.run_until({"canary"}) == "canary"
    st = ro.promote(full=True)
    assert st["phase"] == "promoted" and st["allowed_verbs"] == ["undo"]
    for _ in range(3):
        cluster.tick()
    st = ro.undo()
    assert st["phase"] == "rolled_back" and st["stable"] == "v1"
    assert cluster.tables() == [(st["epoch"], {"v1": 100.0}, None)] * 2
    undone = cluster.clock.t
    for _ in range(12):
        cluster.tick()
    deleted = cluster.app_deleted_at("v2")
    assert deleted is not None and deleted >= undone + 10
    assert cluster.port.versions(MODEL) == {"v1"}  # the old stable was never deleted
    with pytest.raises(IllegalTransition, match="undo needs a promotion"):
        ro.undo()


def test_a_restarted_controller_resumes_where_it_was(cluster: Cluster) -> None:
    ro = start(cluster)
    assert cluster.run_until({"canary"}) == "canary"
    for _ in range(2):
        cluster.tick()
    before, history = ro.status(), ro.history()

    cluster.port.restart_controller(MODEL)
    ro = rr.connect(MODEL, port=cluster.port)
    after = ro.status()
    for key in ("rollout", "phase", "step", "epoch", "weights", "decisions", "step_requests"):
        assert after[key] == before[key], key
    assert ro.history() == history
    # it goes on from there, to the end, and its log replays
    assert cluster.run_until({"awaiting_approval"}) == "awaiting_approval"
    assert ro.approve()["phase"] == "promoted"
    assert ro.verify()["ok"] and ro.replay()["identical"]


def test_actions_a_crash_left_undone_are_applied_on_restart(cluster: Cluster) -> None:
    ro = start(cluster, strategy={"steps": [{"weight": 20, "min_requests": 10**6}]})
    assert cluster.run_until({"canary"}) == "canary"
    epoch = ro.status()["epoch"]
    # the routers cannot be reached: the abort is decided and stored, its push fails
    cluster.port.reachable = False
    with pytest.raises(Exception, match="no router"):
        ro.abort(reason="pager")
    cluster.port.reachable = True
    assert [t[0] for t in cluster.tables()] == [epoch, epoch]  # still the canary table

    cluster.port.restart_controller(MODEL)
    st = rr.connect(MODEL, port=cluster.port).status()
    assert st["phase"] == "rolled_back"
    assert cluster.tables() == [(st["epoch"], {"v1": 100.0}, None)] * 2
    # the candidate's app is retired after a fresh drain, by the new incarnation
    for _ in range(12):
        cluster.tick()
    assert cluster.port.versions(MODEL) == {"v1"}


def test_a_router_replica_that_restarts_gets_the_current_table(cluster: Cluster) -> None:
    ro = start(cluster)
    assert cluster.run_until({"canary"}) == "canary"
    cluster.port.restart_router(MODEL, 1)
    assert cluster.tables()[1][0] == 0  # back with its config's table
    cluster.tick()
    epoch = ro.status()["epoch"]
    assert [t[0] for t in cluster.tables()] == [epoch, epoch]


def test_deploy_failure_rolls_back_and_says_why(cluster: Cluster) -> None:
    cluster.port.auto_ready = False
    ro = start(cluster)
    assert cluster.tick() == "deploying"
    assert cluster.tick() == "deploying"  # not running yet: hold
    cluster.port.fail_deploy(MODEL, "v2", "no GPU on this node")
    assert cluster.tick() == "rolled_back"
    assert "no GPU on this node" in ro.history(limit=1)[-1]["reason"]


def test_verbs_through_the_handle(cluster: Cluster) -> None:
    ro = start(cluster)
    assert cluster.run_until({"canary"}) == "canary"
    st = ro.pause(reason="looking")
    assert st["phase"] == "paused" and st["allowed_verbs"] == ["resume", "promote", "abort"]
    epoch = st["epoch"]
    for _ in range(5):  # judging goes on, nothing moves
        cluster.tick()
    assert ro.status()["epoch"] == epoch
    with pytest.raises(IllegalTransition, match="cannot pause in phase paused"):
        ro.pause()
    assert ro.resume()["phase"] == "canary"
    assert ro.history(limit=2)[0]["actor"] == "python-api"
    with pytest.raises(NotFound, match="no rollout 99"):
        ro.replay(99)
    with pytest.raises(NotFound, match="no rollout controller"):
        rr.connect("other", port=cluster.port)


def test_no_ray(tmp_path: Path) -> None:
    """The control plane with the fake port runs a rollout in a fresh interpreter without
    importing Ray at all (the import contracts check the code; this checks the running)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from tests.unit.controller.test_controller import Cluster, spec_doc
        import rayrollout.client.api as rr
        c = Cluster(Path({str(tmp_path / 'r.db')!r}))
        ro = rr.start(spec_doc(c.store, strategy={{"steps": [{{"weight": 10}}]}}), port=c.port)
        phase = c.run_until({{"promoted"}})
        assert phase == "promoted", phase
        assert "ray" not in sys.modules, "ray was imported"
        assert "starlette" not in sys.modules, "starlette was imported"
        print("ok")
    """)
    root = Path(__file__).resolve().parents[3]
    r = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_the_status_says_how_long_the_step_still_needs(cluster: Cluster) -> None:
    ro = start(cluster, strategy={"steps": [{"weight": 10}, {"weight": 50}]},
               analysis={"checks": [{"kind": "errors"}],
                         "detect": {"errors_ratio": 5.0, "base_error_rate": 0.005}})
    assert cluster.run_until({"canary"}) == "canary"
    for _ in range(10):
        cluster.tick()
    need = ro.status()["step_need"]
    assert need["requests"] > need["seen"] > 0 and need["to_catch"].startswith("errors x5")
    # 60 requests a tick on each of 2 replicas, 10% to the candidate: about 12 a second
    assert need["rate_per_s"] == pytest.approx(12, rel=0.3)
    assert need["eta_s"] == pytest.approx((need["requests"] - need["seen"]) / need["rate_per_s"],
                                          rel=0.01)


def test_a_redeployed_config_never_starts_a_rollout_it_already_ran(cluster: Cluster) -> None:
    """``serve run`` / ``serve deploy`` of the same config again, or another router replica
    coming up, makes a declarative start: a finished or rolled-back rollout of that very spec
    is not started again; a config with a new candidate starts its rollout."""
    doc = spec_doc(cluster.store, strategy={"steps": [{"weight": 10}]}, rollback_window_s=5)
    rr.start(doc, store_path=cluster.store, port=cluster.port)
    h = cluster.port.controller(MODEL)
    assert cluster.run_until({"completed"}) == "completed"
    first = h.call("status")
    deploys = len(cluster.port.scaled)
    again = h.call("start", doc, "serve-run", True)  # the same config, deployed again
    assert (again["rollout"], again["phase"]) == (first["rollout"], "completed")
    assert len(cluster.port.scaled) == deploys  # nothing deployed again
    # the next config: v2 is stable now, v3 the new candidate
    nxt = {**doc, "stable": doc["candidates"][0],
           "candidates": [{"name": "v3", "runtime": "onnx",
                           "artifact": "models/artifacts/v2-regressed.onnx"}]}
    started = h.call("start", nxt, "serve-run", True)
    assert started["rollout"] != first["rollout"] and started["phase"] == "pending"
    # an explicit (non-declarative) start of the first spec is still refused as before:
    # its stable is no longer the stable
    with pytest.raises(Conflict):
        h.call("start", doc, "api")


def test_a_controller_with_nothing_left_to_move_ticks_slowly_until_woken(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Judging ticks at ``analysis.tick_s``; once the rollout is over (and nothing waits to
    be retired) the controller only drains the routers, every ``IDLE_TICK_S``; a start or a
    verb wakes its loop at once."""
    import threading

    from rayrollout.controller.controller import IDLE_TICK_S, run_loop

    doc = spec_doc(cluster.store, strategy={"steps": [{"weight": 10}]}, rollback_window_s=5,
                   drain_s=0)
    rr.start(doc, store_path=cluster.store, port=cluster.port)
    c = cluster.controller
    assert c.tick_s == 1.0  # the spec's analysis.tick_s
    assert cluster.run_until({"completed"}) == "completed"
    cluster.tick()  # the old stable's app is retired
    assert c.tick_s == IDLE_TICK_S
    import rayrollout.controller.controller as module

    monkeypatch.setattr(module, "IDLE_TICK_S", 3600.0)  # only a wake can bring a tick now
    assert c.tick_s == 3600.0
    stepped = threading.Event()
    c.step = lambda: stepped.set()  # type: ignore[method-assign]
    stop = threading.Event()
    loop = threading.Thread(target=run_loop, args=(c, stop))
    loop.start()
    assert stepped.wait(5)
    stepped.clear()
    assert not stepped.wait(0.2)
    c.wake.set()  # what start and every verb do
    assert stepped.wait(30)
    stop.set()
    loop.join(5)
    assert not loop.is_alive()
