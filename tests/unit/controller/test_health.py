"""Health on every tick: a candidate with no live replica (its app gone, failed, unhealthy with
nothing running, or its replicas lost) is rolled back by the check named ``health`` with the
cause in the log; a stable in that state is reported, never rolled back. Pure ``decide``
first, then the controller over the in-memory port (what Serve says of the apps is a recorded
input: the replay reproduces the rollback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rayrollout.analysis.result import Verdict
from rayrollout.controller.capacity import MISSING, app_health, no_live_replica, running
from rayrollout.controller.core import replay_rollout
from rayrollout.controller.phases import Phase
from rayrollout.controller.port import DELETING, DEPLOY_FAILED, DEPLOYING, RUNNING, AppStatus
from rayrollout.controller.state import Observation
from rayrollout.names import version_app_name
from rayrollout.spec import RolloutSpec
from tests.unit.controller.helpers import Sim, make_spec, results, spec_doc
from tests.unit.controller.test_controller import MODEL, Cluster, cluster, start

__all__ = ["cluster"]  # the fake cluster fixture of test_controller


def fact(status: str = RUNNING, replicas: int = 0, message: str = "") -> dict[str, Any]:
    return {"status": status, "replicas": replicas, "message": message}


def observe(sim: Sim, health: dict[str, dict[str, Any]] | None,
            verdict: Verdict | None = Verdict.INCONCLUSIVE) -> list[Any]:
    """One tick one second later with these health facts (judges: ``verdict`` for every
    active candidate)."""
    sim.now += 1.0
    return sim.observe(Observation(
        now=sim.now, health=health, capacity=sim._capacity(),
        results=results(dict.fromkeys(sim.state.active(), verdict)) if verdict else {}))


# -- the rule, pure --------------------------------------------------------------------------


@pytest.mark.parametrize(("health", "cause"), [
    (fact(RUNNING, 0), "replicas lost (replica or node gone): 0 of 1 running"),
    (fact("UNHEALTHY", 0, "replica died"), "app unhealthy, no replica running: replica died"),
    (fact("UNHEALTHY", -1, "health check failed"), "app unhealthy"),
    (fact(MISSING), "app gone"),
    (fact(DEPLOY_FAILED, 0, "boom"), "app deploy failed: boom"),
    (fact(DELETING, 1), "app being deleted"),
])
def test_a_canary_candidate_with_no_live_replica_is_rolled_back_by_the_health_check(
    health: dict[str, Any], cause: str
) -> None:
    sim = Sim(make_spec())
    sim.to_canary()
    assert sim.state.phase == Phase.CANARY
    actions = observe(sim, {"v2": health})
    assert sim.state.phase == Phase.ROLLED_BACK and sim.state.weights == {"v1": 100.0}
    assert [a.kind for a in actions][:1] == ["routes"]  # traffic off it first
    d = sim.decisions[-1]
    assert "v2 failed health: " + cause in d.reason
    check = d.evidence["v2"][-1]
    assert check["check"] == "health" and check["verdict"] == "FAIL" and cause in check["reason"]
    assert sim.state.candidates[0].status == "failed"


@pytest.mark.parametrize("phase", ["shadow", "awaiting_approval", "paused"])
def test_every_phase_in_which_the_candidate_serves_is_watched(phase: str) -> None:
    shadow = {"fraction": 0.5, "min_comparisons": 1} if phase == "shadow" else None
    sim = Sim(make_spec(steps=[{"weight": 10, "approval": True}, 50], shadow=shadow))
    sim.to_canary()
    if phase == "awaiting_approval":
        sim.pass_step()
    elif phase == "paused":
        sim.command("pause")
    assert str(sim.state.phase) == phase
    observe(sim, {"v2": fact(MISSING)})
    assert sim.state.phase == Phase.ROLLED_BACK
    assert "failed health: app gone" in sim.decisions[-1].reason


def test_only_the_candidate_that_lost_its_replicas_is_withdrawn() -> None:
    sim = Sim(make_spec(candidates=("v2", "v3")))
    sim.to_canary()
    observe(sim, {"v3": fact(RUNNING, 0)})
    assert sim.state.phase == Phase.CANARY and sim.state.active() == ["v2"]
    assert sim.state.weights == {"v1": 90.0, "v2": 10.0}
    assert "v3 failed health: replicas lost" in sim.decisions[-1].reason


@pytest.mark.parametrize(("health", "why"), [
    (None, "Serve's apps were not read this tick"),
    ({}, "every app is live"),
    ({"v2": fact(DEPLOYING, 2)}, "an update on its way, replicas running"),
    ({"v2": fact("UNHEALTHY", 1, "one replica failed")}, "unhealthy but still serving"),
])
def test_a_candidate_that_can_still_serve_is_not_rolled_back(
    health: dict[str, dict[str, Any]] | None, why: str
) -> None:
    sim = Sim(make_spec())
    sim.to_canary()
    observe(sim, health)
    assert sim.state.phase == Phase.CANARY, why


def test_an_autoscaling_candidate_with_floor_zero_may_run_no_replica() -> None:
    doc = spec_doc()
    doc["candidates"][0]["autoscaling_config"] = {"min_replicas": 0, "max_replicas": 4}
    sim = Sim(RolloutSpec.model_validate(doc))
    sim.to_canary()
    observe(sim, {"v2": fact(RUNNING, 0)})
    assert sim.state.phase == Phase.CANARY
    observe(sim, {"v2": fact(MISSING)})  # but an app that is gone is gone
    assert sim.state.phase == Phase.ROLLED_BACK


def test_a_deploying_candidate_is_left_to_the_deploy_rules() -> None:
    sim = Sim(make_spec())
    sim.tick()
    assert sim.state.phase == Phase.DEPLOYING
    observe(sim, {"v2": fact(DEPLOYING, 0)}, verdict=None)
    assert sim.state.phase == Phase.DEPLOYING and not sim.decisions[1:]


def test_a_stable_with_no_live_replica_is_reported_once_and_its_recovery_once() -> None:
    sim = Sim(make_spec())
    sim.to_canary()
    n = len(sim.decisions)
    actions = observe(sim, {"v1": fact("UNHEALTHY", 0, "node lost")})
    assert sim.state.phase == Phase.CANARY and sim.state.weights == {"v1": 90.0, "v2": 10.0}
    d = sim.decisions[-1]
    assert "health: stable v1 has no live replica: app unhealthy" in d.reason
    assert "node lost" in d.reason and "not rolled back" in d.reason
    assert [a.kind for a in actions] == ["notify"] and "v1" in actions[0].message
    assert sim.state.down == {"v1": "app unhealthy, no replica running: node lost"}
    for _ in range(3):  # still down: nothing new to say
        observe(sim, {"v1": fact("UNHEALTHY", 0, "node lost")})
    assert len(sim.decisions) == n + 1
    observe(sim, None)  # not read: not known to be back
    assert len(sim.decisions) == n + 1
    observe(sim, {})
    assert "health: stable v1 is live again" in sim.decisions[-1].reason
    assert sim.state.down == {} and len(sim.decisions) == n + 2


# -- the shell's facts, from the same AppStatus as capacity -----------------------------------


def test_app_health_and_capacity_read_the_same_app_status() -> None:
    apps = {
        "m-v1": AppStatus(RUNNING, "", 2),
        "m-v2": AppStatus(RUNNING, "", 0),
        "m-v3": AppStatus("UNHEALTHY", "x" * 1000, 1),
        "m-v4": AppStatus(DELETING, "", 1),
    }
    names = {v: f"m-{v}" for v in ("v1", "v2", "v3", "v4", "v5")}
    h = app_health(apps, names)
    assert sorted(h) == ["v2", "v3", "v4", "v5"]  # v1 is plainly live
    assert h["v5"]["status"] == MISSING and len(h["v3"]["message"]) == 300
    assert [running(apps.get(n)) for n in names.values()] == [2, 0, 1, None, None]
    spec = make_spec(steps=(10, 20), candidates=("v2", "v3", "v4", "v5"))
    assert no_live_replica(spec, "v3", {}, h["v3"]) is None  # one replica still serves
    assert no_live_replica(spec, "v2", {"v2": 3}, h["v2"]) == (
        "replicas lost (replica or node gone): 0 of 3 running")


# -- the controller ----------------------------------------------------------------------------


def test_the_controller_rolls_back_a_canary_whose_replicas_are_lost(cluster: Cluster) -> None:
    ro = start(cluster)
    cluster.run_until({"canary"})
    cluster.tick()
    assert ro.status()["phase"] == "canary"
    cluster.port.set_replicas(MODEL, "v2", 0)  # the node with its only replica is gone
    assert cluster.tick() == "rolled_back"  # in the very next tick
    assert all(e == ro.status()["epoch"] and w == {"v1": 100.0}
               for e, w, _ in cluster.tables())
    last = ro.history()[-1]
    assert "failed health: replicas lost" in last["reason"]
    assert last["evidence"]["v2"][-1]["check"] == "health"
    rid = ro.status()["rollout"]
    same, replayed, _ = replay_rollout(cluster.controller.store, rid)
    assert same and "failed health" in replayed[-1]["reason"]
    assert ro.verify()["ok"]


def test_the_controller_reports_an_app_that_is_gone_with_serves_message(
    cluster: Cluster
) -> None:
    ro = start(cluster)
    cluster.run_until({"canary"})
    cluster.port.apps[version_app_name(MODEL, "v1")].status = "UNHEALTHY"
    cluster.port.apps[version_app_name(MODEL, "v1")].message = "The node was removed"
    cluster.port.set_replicas(MODEL, "v1", 0)
    assert cluster.tick() == "canary"  # the stable is never rolled back
    entry = ro.history()[-1]
    assert "stable v1 has no live replica" in entry["reason"]
    assert "The node was removed" in entry["reason"]
    assert any("stable v1 has no live replica" in n["message"]
               for n in cluster.controller.notifications)
    assert ro.status()["down"] == {"v1": "app unhealthy, no replica running: The node was "
                                   "removed"}
    del cluster.port.apps[version_app_name(MODEL, "v2")]  # and then the candidate's app
    assert cluster.tick() == "rolled_back"
    assert "v2 failed health: app gone" in ro.history()[-1]["reason"]
    assert ro.replay()["identical"]


def test_no_health_is_judged_when_serve_does_not_answer(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    ro = start(cluster)
    cluster.run_until({"canary"})

    def down() -> dict[str, AppStatus]:
        raise TimeoutError("serve.status() timed out")

    monkeypatch.setattr(cluster.port, "applications", down)
    for _ in range(3):
        assert cluster.tick() == "canary"
    ticks = cluster.controller.store.ticks(ro.status()["rollout"])
    assert all("health" not in t for t in ticks[-3:])
    assert "health" in ticks[-4]  # read (all live) while Serve answered
    assert ticks[-4]["health"] == {}


def test_health_facts_are_recorded_only_in_the_phases_watched(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "r.db")
    ro = start(c, strategy={"steps": [{"weight": 10, "min_requests": 10}]},
               rollback_window_s=1)
    c.run_until({"completed"}, ticks=200)
    ticks = c.controller.store.ticks(ro.status()["rollout"])
    assert "health" in ticks[-1]  # promoted: the new stable is watched
    c.tick()
    assert "health" not in c.controller.store.ticks(ro.status()["rollout"])[-1]
