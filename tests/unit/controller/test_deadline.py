"""The progress deadline (``strategy.progress_deadline_s``), tick by tick through the pure
``decide``: a step or shadow phase held by INCONCLUSIVE or ERROR checks (or short of requests
or comparisons) for longer than the deadline is paused, notified, with a reason that says what
each check still waits for; a FAIL still rolls back at once; a resume gives a fresh deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rayrollout.analysis.result import Verdict
from rayrollout.controller.core import ControllerCore, replay_rollout
from rayrollout.controller.phases import Phase
from rayrollout.controller.state import Command, Decision, RolloutState, decision_kind
from rayrollout.controller.store import Store
from rayrollout.spec import RolloutSpec
from tests.unit.controller.helpers import Sim, core_spec, drive, spec_doc

INC, ERR, PAS, FAI = Verdict.INCONCLUSIVE, Verdict.ERROR, Verdict.PASS, Verdict.FAIL


def spec(deadline: float | None = 300.0, steps: Any = ({"weight": 10, "min_requests": 100},
                                                        50), **kw: Any) -> RolloutSpec:
    doc = spec_doc(steps=steps, **kw)
    doc["strategy"]["progress_deadline_s"] = deadline
    return RolloutSpec.model_validate(doc)


def in_step(s: RolloutSpec) -> Sim:
    sim = Sim(s)
    sim.to_canary()
    assert sim.state.phase in (Phase.CANARY, Phase.SHADOW)
    return sim


def hold(sim: Sim, seconds: int, verdict: Any = INC, requests: int = 1) -> None:
    """``seconds`` ticks of one second each with ``verdict`` and a trickle of requests."""
    for _ in range(seconds):
        sim.tick(1.0, verdict=verdict, requests=requests)


def last(sim: Sim) -> Decision:
    return sim.decisions[-1]


def test_without_a_deadline_a_step_holds_for_ever() -> None:
    sim = in_step(spec(None))
    hold(sim, 3000)
    assert sim.state.phase == Phase.CANARY and sim.state.holding_since is None
    assert all(d.kind == "" for d in sim.decisions)


def test_a_step_held_by_inconclusive_checks_beyond_the_deadline_pauses_and_notifies() -> None:
    sim = in_step(spec(300.0, steps=({"weight": 10, "min_requests": 1000}, 50)))
    entered = sim.now
    hold(sim, 300)
    assert sim.state.phase == Phase.CANARY  # at the deadline: not beyond it yet
    acts = sim.tick(1.0, verdict={"v2": [INC, ERR]}, requests=1)
    assert sim.state.phase == Phase.PAUSED and sim.state.paused_from == Phase.CANARY
    d = last(sim)
    assert d.kind == "deadline" and decision_kind(d) == "deadline"
    assert d.to_dict()["kind"] == "deadline" and d.actor == "controller"
    assert d.reason.startswith(f"progress deadline: step 1 (10%) held for "
                               f"{sim.now - entered:.0f} s > progress_deadline_s=300 by ")
    # every holding thing, with what it still waits for
    assert "step: needs 699 more candidate requests at the current rate (~1.0/s: ~12 min)" \
        in d.reason
    assert "v2.errors: inconclusive: v2.errors inconclusive" in d.reason
    assert "v2.latency: cannot judge: v2.latency error" in d.reason
    assert [a.kind for a in acts] == ["notify"]
    assert "paused by the progress deadline" in acts[0].message and "v2.latency" in \
        acts[0].message
    assert sim.state.weights == {"v1": 90.0, "v2": 10.0}  # a pause moves no traffic


def test_a_fail_still_rolls_back_at_once_before_and_after_the_deadline() -> None:
    sim = in_step(spec(300.0))
    hold(sim, 300)
    sim.tick(5.0, verdict={"v2": [FAI, INC]}, requests=1)  # the deadline passed this tick too
    assert sim.state.phase == Phase.ROLLED_BACK and last(sim).kind == ""

    sim = in_step(spec(300.0))
    hold(sim, 301)
    assert sim.state.phase == Phase.PAUSED
    sim.tick(1.0, verdict={"v2": [FAI, INC]})
    assert sim.state.phase == Phase.ROLLED_BACK
    assert sim.state.weights == {"v1": 100.0}


def test_a_resume_gives_a_fresh_deadline() -> None:
    sim = in_step(spec(300.0))
    hold(sim, 301)
    assert sim.state.phase == Phase.PAUSED and sim.state.holding_since is None
    hold(sim, 1000)  # paused: held as long as a person likes, judged, never paused again
    assert sim.state.phase == Phase.PAUSED and len(sim.decisions) == 3
    sim.command("resume", actor="ann")
    assert sim.state.phase == Phase.CANARY and sim.state.holding_since == sim.now
    hold(sim, 300)
    assert sim.state.phase == Phase.CANARY
    hold(sim, 1)
    assert sim.state.phase == Phase.PAUSED and last(sim).kind == "deadline"


def test_the_clock_restarts_whenever_nothing_holds_the_step() -> None:
    """A step waiting for its min_duration_s with every check PASS and its requests in is not
    held: the deadline counts only what holds it."""
    sim = in_step(spec(300.0, steps=({"weight": 10, "min_requests": 10,
                                      "min_duration_s": 2000}, 50)))
    hold(sim, 250)
    hold(sim, 3, verdict=PAS, requests=10)
    assert sim.state.holding_since is None
    hold(sim, 250)  # the checks are INCONCLUSIVE again: 250 s, not 503 s
    assert sim.state.phase == Phase.CANARY
    hold(sim, 60)
    assert sim.state.phase == Phase.PAUSED


def test_requests_short_of_what_the_step_needs_hold_it() -> None:
    sim = in_step(spec(300.0, steps=({"weight": 10, "min_requests": 100000}, 50)))
    hold(sim, 301, verdict=PAS, requests=2)
    assert sim.state.phase == Phase.PAUSED
    assert last(sim).reason.count("needs") == 1 and "step: needs 99,398 more candidate " \
        "requests at the current rate (~2.0/s: ~13.8 h)" in last(sim).reason


def test_a_candidate_without_results_holds_the_step() -> None:
    sim = in_step(spec(300.0))
    for _ in range(301):
        sim.tick(1.0, requests=10)
    assert sim.state.phase == Phase.PAUSED
    assert "v2.checks: waits for its first check results" in last(sim).reason


def test_the_shadow_phase_is_held_by_missing_comparisons_not_by_request_checks() -> None:
    """In the shadow phase the request checks are INCONCLUSIVE by nature (no user sees the
    candidate): only comparisons short of min_comparisons, or an ERROR, hold it."""
    sh = {"fraction": 1.0, "min_comparisons": 50, "min_duration_s": 1000}
    sim = in_step(spec(300.0, shadow=sh))
    assert sim.state.phase == Phase.SHADOW
    for _ in range(100):
        sim.tick(1.0, verdict=INC, shadow_compared=1)
    assert sim.state.holding_since is None  # 50 comparisons in: waiting for time only
    for _ in range(500):
        sim.tick(1.0, verdict=INC)
    assert sim.state.phase == Phase.SHADOW

    sim = in_step(spec(300.0, shadow=sh))
    for _ in range(301):
        sim.tick(1.0, verdict=INC, shadow_compared=0)
    assert sim.state.phase == Phase.PAUSED and sim.state.paused_from == Phase.SHADOW
    assert "the shadow phase held for 301 s" in last(sim).reason
    assert "shadow: needs 50 more shadow comparisons (none arrived in this phase yet)" in \
        last(sim).reason

    sim = in_step(spec(300.0, shadow={**sh, "min_comparisons": 0}))
    for _ in range(301):
        sim.tick(1.0, verdict={"v2": [INC, ERR]})
    assert sim.state.phase == Phase.PAUSED and "v2.latency: cannot judge" in last(sim).reason


def test_approval_and_capacity_waits_are_not_held_by_the_deadline() -> None:
    sim = in_step(spec(60.0, steps=({"weight": 10, "approval": True}, 50)))
    sim.pass_step()
    assert sim.state.phase == Phase.AWAITING_APPROVAL
    hold(sim, 1000, verdict=PAS)
    assert sim.state.phase == Phase.AWAITING_APPROVAL

    sim = in_step(spec(60.0, steps=(10, 50)))
    sim.capacity = {"v1": 1, "v2": 0}  # v2's replica is not running: the move waits
    sim.pass_step()
    assert sim.state.pending is not None
    hold(sim, 1000, verdict=PAS)
    assert sim.state.phase == Phase.CANARY and sim.state.pending is not None


def test_the_next_step_starts_its_own_deadline() -> None:
    sim = in_step(spec(300.0))
    hold(sim, 250)
    sim.tick(1.0, verdict=PAS, requests=1000)  # step 1 passes
    assert sim.state.step == 1 and sim.state.holding_since == sim.now
    hold(sim, 300)
    assert sim.state.phase == Phase.CANARY
    hold(sim, 1)
    assert sim.state.phase == Phase.PAUSED and "step 2 (50%)" in last(sim).reason


def test_the_state_round_trips_and_old_states_load() -> None:
    sim = in_step(spec(300.0))
    hold(sim, 10)
    d = sim.state.to_dict()
    assert RolloutState.from_dict(d) == sim.state and d["holding_since"] is not None
    old = {k: v for k, v in d.items() if k not in ("holding_since", "phase_counts")}
    assert RolloutState.from_dict(old).holding_since is None
    assert Decision.from_dict(last(sim).to_dict()) == last(sim)
    assert "kind" not in sim.decisions[0].to_dict()  # old entries hash as they did


@pytest.mark.parametrize("bad", [0, -5, 31 * 86400, "soon"])
def test_a_bad_deadline_fails_validation_naming_the_field(bad: Any) -> None:
    doc = spec_doc()
    doc["strategy"]["progress_deadline_s"] = bad
    with pytest.raises(ValidationError, match=r"strategy\.progress_deadline_s"):
        RolloutSpec.model_validate(doc)


def test_an_unset_deadline_keeps_a_specs_digest() -> None:
    doc = spec_doc()
    before = RolloutSpec.model_validate(doc).digest()
    doc["strategy"]["progress_deadline_s"] = None
    assert RolloutSpec.model_validate(doc).digest() == before
    doc["strategy"]["progress_deadline_s"] = 600
    assert RolloutSpec.model_validate(doc).digest() != before


def test_a_recorded_deadline_pause_replays_identically(tmp_path: Path) -> None:
    """Real judges on synthetic traffic: step 1 needs far more requests than arrive, so the
    deadline pauses it; a person resumes, the fresh deadline pauses it again. Replaying the
    recorded inputs decides the same, word for word."""
    s = core_spec(strategy={"steps": [{"weight": 10, "min_requests": 100000}, {"weight": 50}],
                            "progress_deadline_s": 8.0})
    store = Store(tmp_path / "r.db")
    core = ControllerCore.create(store, s, 0.0, 3)
    drive(core, range(40), seed=5, commands={20: Command("resume", actor="ann")})
    log = store.history(core.rollout)
    kinds = [e.get("kind", "") for e in log]
    assert kinds.count("deadline") == 2, [e["reason"] for e in log]
    pause = next(e for e in log if e.get("kind") == "deadline")
    assert "needs" in pause["reason"] and "candidate requests at the current rate" in \
        pause["reason"]
    ok, replayed, recorded = replay_rollout(store, core.rollout)
    assert ok and replayed == recorded
