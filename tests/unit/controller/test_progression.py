"""A rollout moving forward: deploy, shadow, steps, approval, promotion, retirement."""

from __future__ import annotations

import pytest

from rayrollout.analysis.result import Verdict
from rayrollout.controller.phases import Phase
from rayrollout.controller.state import Action
from tests.unit.controller.helpers import Sim, make_spec


def test_pending_deploys_every_candidate_then_waits_for_readiness() -> None:
    sim = Sim(make_spec(candidates=("v2", "v3"), steps=(10, 40)))
    acts = sim.tick()
    assert sim.state.phase == Phase.DEPLOYING
    # each sized for its first share of traffic: 10% of the stable's one replica is one
    assert acts == [Action("deploy", version="v2", replicas=1),
                    Action("deploy", version="v3", replicas=1)]
    assert sim.tick(verdict=Verdict.PASS) == [] and sim.tick(ready=["v2"]) == []
    assert sim.state.phase == Phase.DEPLOYING and sim.state.weights == {"v1": 100.0}
    acts = sim.tick(ready=["v2", "v3"])
    assert sim.state.phase == Phase.CANARY and sim.state.step == 0
    assert acts == [Action("routes", epoch=1, weights={"v1": 80.0, "v2": 10.0, "v3": 10.0})]


def test_a_failed_deploy_of_the_only_candidate_rolls_back() -> None:
    sim = Sim(make_spec())
    sim.tick()
    acts = sim.tick(failed={"v2": "image pull failed"})
    assert sim.state.phase == Phase.ROLLED_BACK
    assert Action("delete", version="v2") in acts
    assert "image pull failed" in sim.decisions[-1].reason
    assert sim.state.weights == {"v1": 100.0}


def test_a_failed_deploy_of_one_of_two_candidates_is_logged_and_cleaned_up() -> None:
    sim = Sim(make_spec(candidates=("v2", "v3"), steps=(10, 40)))
    sim.tick()
    acts = sim.tick(ready=["v2"], failed={"v3": "OOM"})
    assert sim.state.phase == Phase.CANARY and sim.state.weights == {"v1": 90.0, "v2": 10.0}
    assert "OOM" in sim.decisions[-1].reason
    assert Action("delete", version="v3") in acts


def test_shadow_phase_mirrors_then_needs_comparisons_and_duration() -> None:
    shadow = {"fraction": 0.5, "min_comparisons": 100, "min_duration_s": 60}
    sim = Sim(make_spec(shadow=shadow))
    sim.to_canary()
    assert sim.state.phase == Phase.SHADOW and sim.state.step == -1
    assert sim.actions[-1] == Action("routes", epoch=1, weights={"v1": 100.0}, shadow="v2",
                                     shadow_fraction=0.5)
    t0 = sim.now
    assert sim.tick(30, verdict=Verdict.PASS, shadow_compared=150) == []  # too soon
    assert sim.state.shadow_compared == 150
    sim2 = Sim(make_spec(shadow=shadow))
    sim2.to_canary()
    assert sim2.tick(120, verdict=Verdict.PASS, shadow_compared=99) == []  # too few
    assert sim2.state.phase == Phase.SHADOW
    # both met (comparisons add up over ticks): step 0, shadow off
    acts = sim.tick(30, verdict=Verdict.INCONCLUSIVE)
    assert sim.now - t0 == 60
    assert sim.state.phase == Phase.CANARY and sim.state.step == 0
    assert acts == [Action("routes", epoch=2, weights={"v1": 90.0, "v2": 10.0})]
    assert "150 comparisons" in sim.decisions[-1].reason


def step_sim() -> Sim:
    sim = Sim(make_spec(steps=({"weight": 10, "min_duration_s": 60, "min_requests": 100}, 50)))
    sim.to_canary()
    assert sim.state.step == 0
    return sim


def test_a_step_needs_its_duration() -> None:
    sim = step_sim()
    assert sim.tick(59, verdict=Verdict.PASS, requests=500) == []
    assert sim.state.step == 0 and sim.state.step_requests == 500
    sim.tick(1, verdict=Verdict.PASS)
    assert sim.state.step == 1 and sim.state.step_requests == 0
    assert sim.state.weights == {"v1": 50.0, "v2": 50.0}


def test_a_step_needs_its_candidate_requests() -> None:
    sim = step_sim()
    assert sim.tick(600, verdict=Verdict.PASS, requests={"v1": 10_000, "v2": 99}) == []
    assert sim.state.step == 0
    sim.tick(1, verdict=Verdict.PASS, requests=1)
    assert sim.state.step == 1


@pytest.mark.parametrize("holding", [Verdict.INCONCLUSIVE, Verdict.ERROR, None])
def test_inconclusive_error_or_missing_results_hold_the_step(holding: Verdict | None) -> None:
    sim = step_sim()
    sim.tick(600, requests=1000)
    for _ in range(5):
        verdict = {"v2": [Verdict.PASS, holding]} if holding else None
        assert sim.tick(600, verdict=verdict) == []
    assert sim.state.phase == Phase.CANARY and sim.state.step == 0
    sim.tick(1, verdict=Verdict.PASS)
    assert sim.state.step == 1


def test_approval_step_waits_until_approved() -> None:
    sim = Sim(make_spec(steps=(10, {"weight": 30, "approval": True}, 60)))
    sim.to_canary()
    sim.pass_step()
    assert sim.state.step == 1 and sim.state.weights == {"v1": 70.0, "v2": 30.0}
    acts = sim.pass_step()
    assert sim.state.phase == Phase.AWAITING_APPROVAL and sim.state.step == 1
    assert sim.kinds(acts) == ["notify"] and "waits for approval" in acts[0].message
    for _ in range(3):
        assert sim.pass_step() == []
    assert sim.state.weights == {"v1": 70.0, "v2": 30.0}
    acts = sim.command("approve", actor="alice")
    assert sim.state.phase == Phase.CANARY and sim.state.step == 2
    assert acts == [Action("routes", epoch=3, weights={"v1": 40.0, "v2": 60.0})]
    assert sim.decisions[-1].actor == "alice" and "approve by alice" in sim.decisions[-1].reason


def test_last_step_promotes_keeps_old_stable_then_retires_it() -> None:
    sim = Sim(make_spec(steps=(10, 50), window=300))
    sim.to_canary()
    sim.pass_step()
    acts = sim.pass_step()
    s = sim.state
    assert s.phase == Phase.PROMOTED and s.stable == "v2" and s.previous_stable == "v1"
    assert s.retire_at == sim.now + 300 and s.weights == {"v2": 100.0}
    assert sim.kinds(acts) == ["routes", "notify"]  # the old stable stays deployed
    assert [c.status for c in s.candidates] == ["promoted"]
    assert sim.tick(299, verdict=Verdict.FAIL) == []  # judges no longer decide anything
    assert sim.state.phase == Phase.PROMOTED
    acts = sim.tick(1)
    assert sim.state.phase == Phase.COMPLETED and acts == [Action("delete", version="v1")]
    assert sim.state.previous_stable is None and sim.state.retire_at is None
    assert sim.tick(1000, verdict=Verdict.FAIL) == []
    assert [d.phase_to for d in sim.decisions] == [
        "deploying", "canary", "canary", "promoted", "completed"]
    assert [d.seq for d in sim.decisions] == [1, 2, 3, 4, 5]


def test_step_requests_count_the_least_exposed_candidate() -> None:
    sim = Sim(make_spec(candidates=("v2", "v3"), steps=({"weight": 10, "min_requests": 50}, 40)))
    sim.to_canary()
    sim.tick(verdict=Verdict.PASS, requests={"v2": 40, "v3": 10})
    sim.tick(verdict=Verdict.PASS, requests={"v2": 40, "v3": 30})
    assert sim.state.step_requests == 40 and sim.state.step == 0
    sim.tick(verdict=Verdict.PASS, requests={"v2": 10, "v3": 10})
    assert sim.state.step == 1


def test_a_step_is_held_until_it_could_have_caught_what_detect_asks_for() -> None:
    spec = make_spec(steps=({"weight": 10, "min_requests": 100}, 50),
                     analysis={"checks": [{"kind": "errors"}, {"kind": "latency"}],
                               "detect": {"errors_ratio": 3.0, "base_error_rate": 0.005}})
    need = spec.step_need(0)
    assert need > 1000  # far more than the step's own min_requests
    sim = Sim(spec)
    sim.to_canary()
    sim.tick(3600, verdict=Verdict.PASS, requests=need - 1)
    assert sim.state.step == 0  # every check PASS, min_requests met: not enough to catch x3
    sim.tick(1, verdict=Verdict.PASS, requests=1)
    assert sim.state.step == 1
    assert f">= {need} to catch errors x3 on a 0.50% base" in sim.decisions[-1].reason
    assert spec.step_need(1) != need  # each step by its own weight


def test_detect_names_what_it_needs() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"detect\.latency_slower needs a latency check"):
        make_spec(analysis={"checks": [{"kind": "errors"}], "detect": {"latency_slower": 0.1}})
    with pytest.raises(ValidationError, match=r"analysis\.detect: need slower > tau"):
        make_spec(analysis={"checks": [{"kind": "latency", "params": {"tau": 0.2}}],
                            "detect": {"latency_slower": 0.1}})
    assert make_spec().step_need(0) == 0  # no detect: nothing beyond the step's own minimums
