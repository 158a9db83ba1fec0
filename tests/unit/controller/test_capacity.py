"""Capacity follows traffic: candidates are sized for their share before traffic moves up,
the stable is never scaled down, and the waits and sizes are in the decision log."""

from __future__ import annotations

from typing import Any

import pytest

from rayrollout.analysis.result import Verdict
from rayrollout.controller.capacity import promotion_sizes, share_size
from rayrollout.controller.phases import Phase
from rayrollout.controller.state import Action
from rayrollout.spec import RolloutSpec
from tests.unit.controller.helpers import Sim, spec_doc

AUTO = {"min_replicas": 1, "max_replicas": 6, "target_ongoing_requests": 2}


def spec(stable: dict[str, Any] | None = None, cand: dict[str, Any] | None = None,
         capacity: dict[str, Any] | None = None, **kw: Any) -> RolloutSpec:
    doc = spec_doc(**kw)
    doc["stable"].update(stable if stable is not None else {"num_replicas": 4})
    doc["candidates"][0].update(cand or {})
    if capacity is not None:
        doc["strategy"]["capacity"] = capacity
    return RolloutSpec.model_validate(doc)


def scales(sim: Sim) -> list[Action]:
    return [a for a in sim.actions if a.kind == "scale"]


def test_a_fixed_size_candidate_is_sized_with_its_share_of_the_stable() -> None:
    s = spec(steps=(10, 30, 50), shadow={"fraction": 0.5, "min_comparisons": 0})
    assert [share_size(s, "v2", x) for x in (0.5, 0.1, 0.3, 0.5, 1.0)] == [2, 1, 2, 2, 4]
    assert promotion_sizes(s, "v2", {}) == {"v2": 4}
    # the candidate's own size counts when it is the larger
    assert promotion_sizes(spec(cand={"num_replicas": 6}), "v2", {}) == {"v2": 6}
    assert share_size(spec(capacity={"candidate": "full"}), "v2", 0.1) == 4
    assert share_size(spec(capacity={"min_replicas": 3}), "v2", 0.1) == 3


def test_traffic_moves_up_only_once_the_replicas_it_needs_run() -> None:
    sim = Sim(spec(steps=(10, 50)))
    sim.capacity = {"v1": 4, "v2": 0}
    acts = sim.tick()
    assert Action("deploy", version="v2", replicas=1) in acts
    sim.capacity = {"v1": 4, "v2": 1}
    sim.tick(ready=["v2"])
    assert sim.state.phase == Phase.CANARY and sim.state.weights == {"v1": 90.0, "v2": 10.0}
    # step 1 passes: the candidate is scaled to ceil(50% x 4) = 2 first, traffic waits
    acts = sim.pass_step()
    assert acts == [Action("scale", version="v2", replicas=2)]
    assert sim.state.step == 0 and sim.state.weights == {"v1": 90.0, "v2": 10.0}
    assert "waiting for capacity" in sim.decisions[-1].reason
    assert "v2 1 of 2" in sim.decisions[-1].reason
    n = len(sim.decisions)
    assert sim.pass_step() == [] and len(sim.decisions) == n  # the wait is logged once
    sim.capacity = {"v1": 4, "v2": 2}
    acts = sim.pass_step()
    assert sim.state.step == 1 and sim.state.weights == {"v1": 50.0, "v2": 50.0}
    assert sim.kinds(acts) == ["routes"]
    # promotion: the candidate at the stable's 4 replicas before it takes 100%
    acts = sim.pass_step()
    assert acts == [Action("scale", version="v2", replicas=4)]
    assert sim.state.phase == Phase.CANARY
    sim.capacity = {"v1": 4, "v2": 3}
    assert sim.pass_step() == [] and sim.state.phase == Phase.CANARY
    sim.capacity = {"v1": 4, "v2": 4}
    sim.pass_step()
    assert sim.state.phase == Phase.PROMOTED and sim.state.weights == {"v2": 100.0}
    assert all(a.version == "v2" for a in scales(sim))  # the stable is never scaled
    assert sim.state.pending is None


def test_a_fail_while_waiting_for_capacity_rolls_back_at_once() -> None:
    sim = Sim(spec(steps=(10, 50)))
    sim.capacity = {"v1": 4, "v2": 1}
    sim.to_canary()
    sim.pass_step()
    assert sim.state.pending is not None
    acts = sim.tick(verdict=Verdict.FAIL)
    assert sim.state.phase == Phase.ROLLED_BACK and sim.state.pending is None
    assert acts[0] == Action("routes", epoch=sim.state.epoch, weights={"v1": 100.0})


def test_a_person_s_promotion_waits_for_capacity_too() -> None:
    sim = Sim(spec(steps=(10, 50)))
    sim.capacity = {"v1": 4, "v2": 1}
    sim.to_canary()
    acts = sim.command("promote", full=True, actor="ann")
    assert acts == [Action("scale", version="v2", replicas=4)]
    assert sim.state.phase == Phase.CANARY and "promote by ann" in sim.decisions[-1].reason
    sim.capacity = {"v1": 4, "v2": 4}
    sim.tick()
    assert sim.state.phase == Phase.PROMOTED


def test_without_wait_traffic_moves_with_the_scale() -> None:
    sim = Sim(spec(steps=(10, 50), capacity={"wait": False}))
    sim.capacity = {"v1": 4, "v2": 1}
    sim.to_canary()
    acts = sim.pass_step()
    assert sim.kinds(acts) == ["scale", "routes"] and sim.state.step == 1
    assert "capacity: scaled v2 1 -> 2" in sim.decisions[-1].reason


def test_autoscaling_versions_size_themselves_until_promotion() -> None:
    sim = Sim(spec(stable={"autoscaling_config": AUTO}, cand={"autoscaling_config": AUTO},
                   steps=(10, 50), window=30.0))
    sim.capacity = {"v1": 3, "v2": 1}
    acts = sim.tick()
    assert acts == [Action("deploy", version="v2")]  # its own autoscaling config
    sim.tick(ready=["v2"])
    assert sim.pass_step() and sim.state.step == 1 and scales(sim) == []
    # promotion: the candidate's floor to the stable's 3 running, the stable's held at 3
    acts = sim.pass_step()
    assert acts == [Action("scale", version="v2", replicas=3),
                    Action("scale", version="v1", replicas=3)]
    sim.capacity = {"v1": 3, "v2": 3}
    sim.pass_step()
    assert sim.state.phase == Phase.PROMOTED
    # the window ends: the new stable autoscales on its own config again
    acts = sim.tick(60.0)
    assert sim.state.phase == Phase.COMPLETED
    assert Action("scale", version="v2") in acts and "v2" not in sim.state.sizes


def test_undo_lands_on_the_held_stable_then_releases_its_floor() -> None:
    sim = Sim(spec(stable={"autoscaling_config": AUTO}, cand={"autoscaling_config": AUTO},
                   steps=(50,)))
    sim.capacity = {"v1": 5, "v2": 5}
    sim.to_canary()
    sim.pass_step()
    assert sim.state.phase == Phase.PROMOTED and sim.state.sizes == {"v1": 5, "v2": 5}
    acts = sim.command("undo")
    assert acts[0].kind == "routes" and acts[0].weights == {"v1": 100.0}
    assert Action("scale", version="v1") in acts  # after the traffic is back on it


@pytest.mark.parametrize("stable_running", [-1, 0])
def test_an_unknown_stable_size_asks_nothing_of_an_autoscaling_candidate(
        stable_running: int) -> None:
    s = spec(stable={"autoscaling_config": AUTO}, cand={"autoscaling_config": AUTO})
    assert promotion_sizes(s, "v2", {"v1": stable_running}) == {}


def test_the_candidate_s_floor_stays_within_its_max_replicas() -> None:
    s = spec(stable={"autoscaling_config": AUTO},
             cand={"autoscaling_config": {**AUTO, "max_replicas": 2}})
    assert promotion_sizes(s, "v2", {"v1": 5}) == {"v2": 2, "v1": 5}


def test_fewer_replicas_only_once_the_traffic_has_moved_down() -> None:
    """After a shadow of all the traffic the first step needs fewer replicas: the table moves
    first, the scale-down follows it in the same decision."""
    sim = Sim(spec(steps=(10, 50), shadow={"fraction": 1.0, "min_comparisons": 0}))
    sim.capacity = {"v1": 4, "v2": 4}
    acts = sim.tick()
    assert Action("deploy", version="v2", replicas=4) in acts
    sim.tick(ready=["v2"])
    assert sim.state.phase == Phase.SHADOW
    acts = sim.tick(verdict=Verdict.PASS)
    assert sim.state.phase == Phase.CANARY
    assert sim.kinds(acts) == ["routes", "scale"] and acts[1].replicas == 1
