"""The phase table: decide only moves along it, and a verb it does not allow is refused."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from rayrollout.analysis.result import Verdict
from rayrollout.controller.decide import allowed_verbs, decide
from rayrollout.controller.phases import (
    ACTIVE,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    Phase,
    check,
)
from rayrollout.controller.phases import VERBS as VERBS_TABLE
from rayrollout.controller.state import Command, Observation
from rayrollout.errors import Conflict
from tests.unit.controller.helpers import Sim, make_spec


def test_table_covers_every_phase_and_completed_is_final() -> None:
    assert set(TRANSITIONS) == set(Phase)
    assert TRANSITIONS[Phase.COMPLETED] == frozenset()
    assert TERMINAL.isdisjoint(ACTIVE) and set(Phase) > TERMINAL | ACTIVE
    for src, dsts in TRANSITIONS.items():
        for dst in dsts:
            check(src, dst)


def test_check_refuses_a_move_outside_the_table_as_a_409_conflict() -> None:
    with pytest.raises(IllegalTransition, match="cannot go from completed to canary"):
        check(Phase.COMPLETED, Phase.CANARY)
    with pytest.raises(IllegalTransition, match=r"allowed: .*deploying"):
        check(Phase.PENDING, Phase.PROMOTED)
    assert issubclass(IllegalTransition, Conflict) and IllegalTransition.code


def completed() -> Sim:
    sim = Sim(make_spec())
    sim.to_canary()
    sim.pass_step()
    sim.pass_step()
    sim.tick(3600)
    assert sim.state.phase == Phase.COMPLETED
    return sim


def canary() -> Sim:
    sim = Sim(make_spec())
    sim.to_canary()
    return sim


def promoted() -> Sim:
    sim = canary()
    sim.command("promote", full=True)
    assert sim.state.phase == Phase.PROMOTED
    return sim


def rolled_back() -> Sim:
    sim = canary()
    sim.tick(verdict=Verdict.FAIL)
    assert sim.state.phase == Phase.ROLLED_BACK
    return sim


def paused() -> Sim:
    sim = canary()
    sim.command("pause")
    return sim


@pytest.mark.parametrize(
    ("make", "verb", "match"),
    [
        (completed, "pause", "cannot pause in phase completed"),
        (paused, "pause", "cannot pause in phase paused"),
        (canary, "resume", "cannot resume in phase canary"),
        (canary, "approve", "nothing waits for approval in phase canary"),
        (completed, "approve", "nothing waits for approval"),
        (canary, "undo", "undo needs a promotion within its window; phase canary"),
        (completed, "undo", "phase completed"),
        (rolled_back, "undo", "phase rolled_back"),
        (canary, "retry", "retry needs a rolled-back rollout; phase canary"),
        (promoted, "retry", "phase promoted"),
        (promoted, "abort", "cannot abort in phase promoted; use undo after promotion"),
        (completed, "abort", "cannot abort in phase completed"),
        (rolled_back, "abort", "cannot abort in phase rolled_back"),
        (promoted, "promote", "cannot promote in phase promoted"),
        (rolled_back, "promote", "cannot promote in phase rolled_back"),
        (canary, "rewind", "unknown verb 'rewind'"),
    ],
)
def test_illegal_verbs_raise_and_change_nothing(
    make: Callable[[], Sim], verb: str, match: str
) -> None:
    sim = make()
    before = sim.state
    with pytest.raises(IllegalTransition, match=match):
        sim.command(verb)
    assert sim.state == before


def test_promote_names_an_unknown_candidate() -> None:
    sim = canary()
    with pytest.raises(IllegalTransition, match="'v9' is not an active candidate"):
        sim.command("promote", candidate="v9")


VERBS = ["pause", "resume", "approve", "promote", "abort", "retry", "undo"]
VERDICTS = [Verdict.PASS] * 6 + [Verdict.INCONCLUSIVE, Verdict.ERROR, Verdict.FAIL]


@pytest.mark.parametrize("seed", range(12))
def test_random_walks_stay_on_the_table(seed: int) -> None:
    """Seeded random mixes of ticks and verbs; ``Sim`` checks every step's invariants."""
    rng = random.Random(seed)
    cands = ("v2", "v3") if seed % 3 == 0 else ("v2",)
    shadow = {"min_comparisons": 5} if seed % 3 == 1 else None
    spec = make_spec(steps=({"weight": 5}, {"weight": 20, "approval": seed % 2 == 0}, 40),
                     candidates=cands, shadow=shadow)
    sim = Sim(spec)
    for _ in range(150):
        r = rng.random()
        if r < 0.2:
            verb = rng.choice(VERBS)
            kw = {}
            if verb == "promote":
                kw = {"full": rng.random() < 0.3, "candidate": rng.choice([None, *cands])}
            before = sim.state
            try:
                sim.command(verb, dt=rng.random(), **kw)
            except IllegalTransition:
                assert sim.state == before
        else:
            active = sim.state.active()
            sim.tick(
                dt=rng.choice([0.5, 10, 100]),
                verdict={c: rng.choice(VERDICTS) for c in active},
                requests={c: rng.randrange(50) for c in active},
                ready=[c for c in active if rng.random() < 0.7],
                shadow_compared=rng.randrange(5),
            )
        _allowed_is_what_decide_accepts(sim)
    assert sim.transitions, "the walk never moved"
    for src, dst in sim.transitions:
        assert src == dst or dst in TRANSITIONS[src]


def _allowed_is_what_decide_accepts(sim: Sim) -> None:
    """The verbs the status lists (``allowed_verbs``: the page's buttons, the CLI's hint) are
    exactly the verbs ``decide`` accepts in this state, with their default arguments."""
    allowed = allowed_verbs(sim.state, sim.spec)
    for verb in VERBS_TABLE:
        obs = Observation(now=sim.now, command=Command(verb))
        try:
            decide(sim.state, sim.spec, obs)
            accepted = True
        except IllegalTransition:
            accepted = False
        assert accepted == (verb in allowed), (verb, sim.state.phase, allowed)
        assert sim.state.phase in VERBS_TABLE[verb].phases or not accepted
