"""Rolling back: a FAIL anywhere in an active phase sends all traffic back to stable first."""

from __future__ import annotations

import pytest

from rayrollout.analysis.result import Verdict
from rayrollout.controller.phases import Phase
from rayrollout.controller.state import Action
from tests.unit.controller.helpers import Sim, make_spec


def assert_rolled_back(sim: Sim, acts: list[Action], deleted: list[str]) -> None:
    s = sim.state
    assert s.phase == Phase.ROLLED_BACK and s.stable == "v1"
    assert acts[0] == Action("routes", epoch=acts[0].epoch, weights={"v1": 100.0}, shadow=None,
                             shadow_fraction=0.0), "the table push comes first"
    assert [a.version for a in acts if a.kind == "delete"] == deleted
    first_delete = next(i for i, a in enumerate(acts) if a.kind == "delete")
    assert all(a.kind != "routes" for a in acts[first_delete:])
    assert acts[-1].kind == "notify" and "rolled back" in acts[-1].message
    assert s.weights == {"v1": 100.0} and s.shadow is None and s.paused_from is None


def test_fail_in_canary_rolls_back_with_the_evidence() -> None:
    sim = Sim(make_spec(steps=(10, 50)))
    sim.to_canary()
    sim.pass_step()
    acts = sim.tick(verdict={"v2": [Verdict.PASS, Verdict.FAIL]})
    assert_rolled_back(sim, acts, ["v2"])
    d = sim.decisions[-1]
    assert d.phase_from == "canary" and "v2.latency fail" in d.reason
    assert [r["verdict"] for r in d.evidence["v2"]] == ["PASS", "FAIL"]
    assert sim.state.candidates[0].status == "failed"


def test_fail_in_shadow_turns_the_shadow_off_first() -> None:
    sim = Sim(make_spec(shadow={"min_comparisons": 1000}))
    sim.to_canary()
    assert sim.state.shadow == "v2"
    acts = sim.tick(verdict=Verdict.FAIL, shadow_compared=10)
    assert_rolled_back(sim, acts, ["v2"])


def test_fail_while_awaiting_approval_rolls_back() -> None:
    sim = Sim(make_spec(steps=({"weight": 10, "approval": True}, 50)))
    sim.to_canary()
    sim.pass_step()
    assert sim.state.phase == Phase.AWAITING_APPROVAL
    acts = sim.tick(verdict=Verdict.FAIL)
    assert_rolled_back(sim, acts, ["v2"])


@pytest.mark.parametrize("shadow", [None, {"min_comparisons": 10}])
def test_fail_while_paused_rolls_back(shadow: dict[str, int] | None) -> None:
    sim = Sim(make_spec(shadow=shadow))
    sim.to_canary()
    sim.command("pause")
    assert sim.state.phase == Phase.PAUSED
    acts = sim.tick(verdict=Verdict.FAIL)
    assert_rolled_back(sim, acts, ["v2"])
    assert sim.decisions[-1].phase_from == "paused"


def test_fail_while_deploying_needs_no_table_push() -> None:
    sim = Sim(make_spec())
    sim.tick()
    acts = sim.tick(verdict=Verdict.FAIL)
    assert sim.state.phase == Phase.ROLLED_BACK
    assert sim.kinds(acts) == ["delete", "notify"] and sim.state.epoch == 0


@pytest.mark.parametrize("verdict", [Verdict.ERROR, Verdict.INCONCLUSIVE])
def test_error_and_inconclusive_never_roll_back(verdict: Verdict) -> None:
    sim = Sim(make_spec())
    sim.to_canary()
    for _ in range(20):
        assert sim.tick(600, verdict=verdict, requests=1000) == []
    assert sim.state.phase == Phase.CANARY and sim.state.step == 0


def test_after_rollback_nothing_more_happens() -> None:
    sim = Sim(make_spec())
    sim.to_canary()
    sim.tick(verdict=Verdict.FAIL)
    n = len(sim.decisions)
    for v in (Verdict.FAIL, Verdict.PASS):
        assert sim.tick(600, verdict=v, requests=1000, ready=["v2"]) == []
    assert len(sim.decisions) == n


def test_epochs_strictly_increase_across_a_whole_rollout_with_retry_and_undo() -> None:
    sim = Sim(make_spec(steps=(10, 30, 60), shadow={"min_comparisons": 1}), epoch=7)
    sim.to_canary()
    sim.tick(verdict=Verdict.PASS, shadow_compared=1)
    sim.pass_step()
    sim.tick(verdict=Verdict.FAIL)
    sim.command("retry")
    sim.tick(ready=["v2"])
    assert sim.state.phase == Phase.SHADOW and sim.state.attempt == 2
    sim.command("pause")
    sim.command("resume")
    sim.tick(verdict=Verdict.PASS, shadow_compared=1)
    for _ in range(3):
        sim.pass_step()
    assert sim.state.phase == Phase.PROMOTED
    sim.command("undo")
    epochs = [a.epoch for a in sim.routes()]
    assert epochs == list(range(8, 8 + len(epochs))) and len(epochs) >= 8
    assert sim.state.epoch == epochs[-1]
    assert [d.epoch for d in sim.decisions] == sorted(d.epoch for d in sim.decisions)


def test_rollback_keeps_an_earlier_failure_reason_and_deletes_once() -> None:
    sim = Sim(make_spec(candidates=("v2", "v3"), steps=({"weight": 10, "min_duration_s": 600},
                                                        40)))
    sim.to_canary()
    sim.tick(verdict={"v2": Verdict.FAIL, "v3": Verdict.PASS})
    assert sim.state.candidates[0].reason == "errors: v2.errors fail; latency: v2.latency fail"
    acts = sim.tick(verdict={"v3": Verdict.FAIL})
    assert sim.state.phase == Phase.ROLLED_BACK
    assert [a.version for a in acts if a.kind == "delete"] == ["v3"]
    assert "v2.errors fail" in sim.state.candidates[0].reason
    assert "v3" not in sim.state.candidates[0].reason
