"""A/B/n: several candidates share the steps; a FAIL withdraws only that candidate."""

from __future__ import annotations

import pytest

from rayrollout.analysis.result import Verdict
from rayrollout.controller.phases import IllegalTransition, Phase
from rayrollout.controller.state import Action
from tests.unit.controller.helpers import Sim, make_spec

P, F = Verdict.PASS, Verdict.FAIL


def abn(steps: tuple[float, ...] = (10, 30)) -> Sim:
    held = [{"weight": w, "min_duration_s": 60} for w in steps]  # a 1 s tick holds a step
    sim = Sim(make_spec(candidates=("v2", "v3"), steps=held))
    sim.to_canary()
    return sim


def status(sim: Sim) -> dict[str, str]:
    return {c.name: c.status for c in sim.state.candidates}


def test_each_candidate_gets_the_step_weight_and_stable_the_rest() -> None:
    sim = abn()
    assert sim.state.weights == {"v1": 80.0, "v2": 10.0, "v3": 10.0}
    sim.pass_step()
    assert sim.state.weights == {"v1": 40.0, "v2": 30.0, "v3": 30.0}


def test_one_fail_withdraws_only_that_candidate_and_the_other_goes_on() -> None:
    sim = abn((10, 30, 45))
    sim.pass_step()
    acts = sim.tick(verdict={"v2": [P, F], "v3": P})
    assert acts == [Action("routes", epoch=3, weights={"v1": 70.0, "v3": 30.0}),
                    Action("delete", version="v2")]
    assert sim.state.phase == Phase.CANARY and sim.state.step == 1
    assert status(sim) == {"v2": "failed", "v3": "active"}
    assert "v2 failed latency" in sim.decisions[-1].reason
    sim.pass_step()
    assert sim.state.weights == {"v1": 55.0, "v3": 45.0}
    sim.pass_step()
    assert sim.state.phase == Phase.PROMOTED and sim.state.stable == "v3"
    assert not any(a.version == "v2" for a in sim.actions[-3:])  # not deleted twice


def test_fail_and_pass_in_one_tick_withdraws_then_advances() -> None:
    sim = abn((10, 30, 45))
    sim.pass_step()
    acts = sim.tick(3600, verdict={"v2": F, "v3": P}, requests=10_000)
    assert sim.kinds(acts) == ["routes", "delete", "routes"]
    assert sim.state.step == 2 and sim.state.weights == {"v1": 55.0, "v3": 45.0}


def test_both_failing_rolls_back() -> None:
    sim = abn()
    acts = sim.tick(verdict=F)
    assert sim.state.phase == Phase.ROLLED_BACK
    assert sim.kinds(acts) == ["routes", "delete", "delete", "notify"]
    assert status(sim) == {"v2": "failed", "v3": "failed"}


def at_the_end() -> Sim:
    sim = abn()
    sim.pass_step()
    acts = sim.pass_step()
    assert acts == [] and sim.state.phase == Phase.AWAITING_APPROVAL
    assert "pick one of ['v2', 'v3'] to promote" in sim.decisions[-1].reason
    return sim


def test_two_survivors_wait_for_a_person_to_pick_one() -> None:
    sim = at_the_end()
    for _ in range(3):
        assert sim.pass_step() == []
    with pytest.raises(IllegalTransition, match="several candidates are active"):
        sim.command("promote", full=True)
    acts = sim.command("promote", candidate="v3", actor="bob")
    s = sim.state
    assert s.phase == Phase.PROMOTED and s.stable == "v3" and s.previous_stable == "v1"
    assert acts[:2] == [Action("routes", epoch=3, weights={"v3": 100.0}),
                        Action("delete", version="v2")]
    assert status(sim) == {"v2": "withdrawn", "v3": "promoted"}
    assert sim.decisions[-1].actor == "bob"


def test_promote_full_with_a_candidate_mid_rollout() -> None:
    sim = abn((10, 30, 45))
    sim.command("promote", full=True, candidate="v2")
    assert sim.state.phase == Phase.PROMOTED and sim.state.stable == "v2"
    assert status(sim) == {"v2": "promoted", "v3": "withdrawn"}


def test_a_fail_while_waiting_leaves_one_which_approve_promotes() -> None:
    sim = at_the_end()
    acts = sim.tick(verdict={"v2": P, "v3": F})
    assert acts == [Action("routes", epoch=3, weights={"v1": 70.0, "v2": 30.0}),
                    Action("delete", version="v3")]
    assert sim.state.phase == Phase.AWAITING_APPROVAL
    sim.command("approve")
    assert sim.state.phase == Phase.PROMOTED and sim.state.stable == "v2"


def test_approve_with_several_survivors_says_to_pick_one() -> None:
    sim = at_the_end()
    with pytest.raises(IllegalTransition, match="candidate"):
        sim.command("approve")
