"""``decide`` is pure: same inputs, same outputs; it reads no clock and mutates nothing."""

from __future__ import annotations

import copy
import random
import threading
import time
from collections.abc import Callable

import pytest

from rayrollout.analysis.result import Verdict
from rayrollout.controller.decide import decide
from rayrollout.controller.state import Command, Decision, Observation, RolloutState
from tests.unit.controller.helpers import Sim, make_spec, results

SPEC = make_spec(candidates=("v2", "v3"), steps=({"weight": 10, "min_requests": 20},
                                                  {"weight": 30, "approval": True}, 45))


def journey() -> Sim:
    sim = Sim(SPEC)
    sim.to_canary()
    sim.tick(verdict=Verdict.INCONCLUSIVE, requests=15)
    sim.command("pause")
    sim.command("resume")
    sim.tick(verdict=Verdict.PASS, requests=10)
    sim.tick(verdict={"v2": Verdict.PASS, "v3": Verdict.FAIL})
    sim.pass_step()
    sim.command("approve")
    sim.pass_step()
    sim.tick(60)
    return sim


def test_the_same_journey_twice_gives_the_same_log() -> None:
    a, b = journey(), journey()
    assert [d.to_dict() for d in a.decisions] == [d.to_dict() for d in b.decisions]
    assert a.state == b.state and a.state.phase == "completed"


def test_decide_twice_on_the_same_inputs_is_equal_and_leaves_them_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = journey()
    this_thread = threading.get_ident()

    def guarded(real: Callable[[], float]) -> Callable[[], float]:
        # Only this thread is forbidden the clock: other threads of the session (Ray Serve's
        # handle event loop in the driver, left by the integration tests) keep working.
        def no_clock() -> float:
            if threading.get_ident() == this_thread:
                raise AssertionError("decide read the clock or drew a random number")
            return real()

        return no_clock

    for name in ("time", "monotonic", "perf_counter"):
        monkeypatch.setattr(time, name, guarded(getattr(time, name)))
    monkeypatch.setattr(random, "random", guarded(random.random))
    assert len(sim.inputs) > 10
    for state, obs in sim.inputs:
        snapshot = copy.deepcopy((state, obs, SPEC))
        first = decide(state, SPEC, obs)
        assert decide(state, SPEC, obs) == first
        assert (state, obs, SPEC) == snapshot
        # a state that went through the store decides the same
        assert decide(RolloutState.from_dict(state.to_dict()), SPEC, obs) == first


def test_values_round_trip_through_json_dicts() -> None:
    sim = journey()
    for d in sim.decisions:
        assert Decision.from_dict(d.to_dict()) == d
    paused = Sim(SPEC)
    paused.to_canary()
    paused.command("pause")
    for s in (sim.state, paused.state):
        assert RolloutState.from_dict(s.to_dict()) == s
    obs = Observation(now=1.5, results=results({"v2": [Verdict.PASS, Verdict.ERROR]}),
                      requests={"v2": 3}, shadow_compared=4, ready=frozenset({"v2", "v3"}),
                      failed_deploys={"v3": "x"}, command=Command("promote", "ann", True, "v2"))
    assert Observation.from_dict(obs.to_dict()) == obs
