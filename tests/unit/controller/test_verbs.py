"""A person's verbs: pause, resume, approve, promote, abort, undo, retry."""

from __future__ import annotations

import pytest

from rayrollout.analysis.base import Judge
from rayrollout.analysis.judges.fake import FakeJudge
from rayrollout.analysis.result import Verdict
from rayrollout.controller.core import ControllerCore, build_judges
from rayrollout.controller.decide import initial_state
from rayrollout.controller.phases import IllegalTransition, Phase
from rayrollout.controller.state import Action, Command
from tests.unit.controller.helpers import Sim, make_spec

HELD = ({"weight": 10, "min_duration_s": 60}, {"weight": 30, "min_duration_s": 60}, 60)


def canary(**kw: object) -> Sim:
    sim = Sim(make_spec(steps=HELD, **kw))
    sim.to_canary()
    return sim


@pytest.mark.parametrize("shadow", [None, {"min_comparisons": 10, "fraction": 0.25}])
def test_pause_and_resume_keep_the_table(shadow: dict[str, float] | None) -> None:
    sim = canary(shadow=shadow)
    table = (sim.state.epoch, sim.state.weights, sim.state.shadow, sim.state.shadow_fraction)
    was = sim.state.phase
    assert sim.command("pause", actor="carol", reason="incident") == []
    assert sim.state.phase == Phase.PAUSED and sim.state.paused_from == was
    assert sim.decisions[-1].reason == "pause by carol (incident)"
    for _ in range(3):  # a paused rollout does not advance, whatever the evidence
        assert sim.pass_step() == []
        assert sim.tick(600, verdict=Verdict.PASS, shadow_compared=100) == []
    assert sim.command("resume") == []
    assert sim.state.phase == was and sim.state.paused_from is None
    assert (sim.state.epoch, sim.state.weights, sim.state.shadow,
            sim.state.shadow_fraction) == table


def test_pause_while_awaiting_approval_resumes_to_waiting() -> None:
    sim = Sim(make_spec(steps=({"weight": 10, "approval": True}, 50)))
    sim.to_canary()
    sim.pass_step()
    sim.command("pause")
    sim.command("resume")
    assert sim.state.phase == Phase.AWAITING_APPROVAL


def test_promote_moves_to_the_next_step_without_waiting() -> None:
    sim = canary()
    acts = sim.command("promote")
    assert sim.state.step == 1 and sim.state.phase == Phase.CANARY
    assert acts == [Action("routes", epoch=2, weights={"v1": 70.0, "v2": 30.0})]
    sim.command("promote")
    sim.command("promote")
    assert sim.state.phase == Phase.PROMOTED and sim.state.stable == "v2"


def test_promote_in_shadow_starts_step_one() -> None:
    sim = canary(shadow={"min_comparisons": 1000})
    acts = sim.command("promote")
    assert sim.state.phase == Phase.CANARY and sim.state.step == 0
    assert acts == [Action("routes", epoch=2, weights={"v1": 90.0, "v2": 10.0})]


def test_promote_from_pause_leaves_the_pause() -> None:
    sim = canary()
    sim.command("pause")
    sim.command("promote")
    assert sim.state.phase == Phase.CANARY and sim.state.step == 1
    assert sim.state.paused_from is None


@pytest.mark.parametrize("pause", [False, True])
def test_promote_full_goes_to_100_percent_now(pause: bool) -> None:
    sim = canary()
    if pause:
        sim.command("pause")
    acts = sim.command("promote", full=True)
    s = sim.state
    assert s.phase == Phase.PROMOTED and s.stable == "v2" and s.previous_stable == "v1"
    assert s.weights == {"v2": 100.0} and s.paused_from is None
    assert sim.kinds(acts) == ["routes", "notify"]


def test_promote_from_a_pause_taken_while_deploying_is_refused() -> None:
    sim = Sim(make_spec())
    sim.tick()
    with pytest.raises(IllegalTransition):
        sim.command("promote")
    sim.command("pause")
    with pytest.raises(IllegalTransition):
        sim.command("promote")


@pytest.mark.parametrize("pause", [False, True])
def test_abort_rolls_back(pause: bool) -> None:
    sim = canary()
    sim.command("promote")
    if pause:
        sim.command("pause")
    acts = sim.command("abort", actor="dave", reason="bad vibes")
    assert sim.state.phase == Phase.ROLLED_BACK
    assert sim.kinds(acts) == ["routes", "delete", "notify"]
    assert acts[0].weights == {"v1": 100.0}
    assert sim.state.candidates[0].status == "withdrawn"
    assert "abort by dave (bad vibes)" in sim.decisions[-1].reason


def promoted(window: float = 300) -> Sim:
    sim = Sim(make_spec(steps=(10, 50), window=window))
    sim.to_canary()
    sim.pass_step()
    sim.pass_step()
    assert sim.state.phase == Phase.PROMOTED
    return sim


def test_undo_within_the_window_restores_the_old_stable() -> None:
    sim = promoted()
    sim.tick(299)
    acts = sim.command("undo", actor="erin")
    s = sim.state
    assert s.phase == Phase.ROLLED_BACK and s.stable == "v1" and s.previous_stable is None
    assert acts == [Action("routes", epoch=4, weights={"v1": 100.0}),
                    Action("delete", version="v2")]
    assert s.candidates[0].status == "withdrawn"
    assert sim.tick(3600) == []  # nothing is retired afterwards


def test_undo_after_the_window_is_refused() -> None:
    sim = promoted()
    sim.tick(300)
    assert sim.state.phase == Phase.COMPLETED
    with pytest.raises(IllegalTransition):
        sim.command("undo")


def test_retry_after_rollback_redeploys_as_a_new_attempt() -> None:
    sim = Sim(make_spec(candidates=("v2", "v3"), steps=(10, 40)))
    sim.to_canary()
    sim.tick(verdict={"v2": Verdict.FAIL, "v3": Verdict.PASS})
    sim.command("abort")
    epoch = sim.state.epoch
    acts = sim.command("retry", actor="frank")
    s = sim.state
    assert s.phase == Phase.DEPLOYING and s.attempt == 2 and s.step == -1
    assert acts == [Action("deploy", version="v2", replicas=1),
                    Action("deploy", version="v3", replicas=1)]
    assert s.active() == ["v2", "v3"] and all(c.reason == "" for c in s.candidates)
    assert s.weights == {"v1": 100.0} and s.epoch == epoch
    sim.tick(ready=["v2", "v3"])
    assert sim.state.step == 0 and sim.state.epoch == epoch + 1


def test_retry_after_undo_keeps_the_old_stable() -> None:
    sim = promoted()
    sim.command("undo")
    sim.command("retry")
    assert sim.state.stable == "v1" and sim.state.active() == ["v2"]
    assert sim.actions[-1] == Action("deploy", version="v2", replicas=1)


def test_retry_gives_the_core_fresh_judges() -> None:
    spec = make_spec()
    fake: dict[str, dict[str, Judge]] = {"v2": {"errors": FakeJudge("errors", [Verdict.FAIL])}}
    core = ControllerCore(spec, initial_state(spec, 0.0), 0, None, judges=fake)
    core.tick(1.0)
    core.tick(2.0, ready=frozenset({"v2"}))
    assert core.state.phase == Phase.ROLLED_BACK
    judge = fake["v2"]["errors"]
    assert isinstance(judge, FakeJudge) and judge.asked == [2.0]  # PENDING is not judged
    with pytest.raises(IllegalTransition):  # a bad verb leaves the judges alone
        core.tick(3.0, command=Command("undo"))
    assert core.judges is fake
    core.tick(4.0, command=Command("retry"))
    assert core.state.attempt == 2 and core.judges is not fake
    fresh = build_judges(spec)
    assert {c: list(js) for c, js in core.judges.items()} == {"v2": list(fresh["v2"])}
    assert core.judge_states()["judges"] == {
        c: {n: j.to_state() for n, j in js.items()} for c, js in fresh.items()}
    assert core.judge_states()["attempt"] == 2
