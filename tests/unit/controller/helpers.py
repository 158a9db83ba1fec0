"""Shared builders for the controller-core tests: specs, hand-made results, a tick driver.

``Sim`` ticks the pure ``decide`` one observation at a time on a fixed clock and checks, on
every tick, the invariants a user relies on whatever the scenario: each phase change is in the
table, each routing push has a larger epoch, weights sum to 100, a version is only deleted once
no traffic (and no shadow) goes to it, and the stable is never deleted while it is stable.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rayrollout.analysis.result import CheckResult, Verdict
from rayrollout.controller.core import ControllerCore
from rayrollout.controller.decide import decide, initial_state
from rayrollout.controller.phases import ACTIVE, TRANSITIONS, Phase
from rayrollout.controller.state import Action, Command, Decision, Observation, RolloutState
from rayrollout.dataplane.events import RequestEvent
from rayrollout.spec import RolloutSpec

CHECKS = ("errors", "latency")


def version(name: str) -> dict[str, Any]:
    return {"name": name, "runtime": "onnx", "artifact": f"models/{name}.onnx"}


def spec_doc(
    steps: Sequence[dict[str, Any] | float] = (10, 50),
    candidates: Sequence[str] = ("v2",),
    shadow: dict[str, Any] | None = None,
    window: float = 60.0,
    **extra: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": "m",
        "stable": version("v1"),
        "candidates": [version(c) for c in candidates],
        "strategy": {"steps": [s if isinstance(s, dict) else {"weight": s} for s in steps]},
        "rollback_window_s": window,
        **extra,
    }
    if shadow is not None:
        doc["strategy"]["shadow"] = shadow
    return doc


def make_spec(*args: Any, **kw: Any) -> RolloutSpec:
    return RolloutSpec.model_validate(spec_doc(*args, **kw))


def results(
    verdicts: Mapping[str, Verdict | Sequence[Verdict]], checks: Sequence[str] = CHECKS
) -> dict[str, list[CheckResult]]:
    """``{"v2": Verdict.PASS}`` -> every check of v2 PASS; a sequence gives one per check."""
    out = {}
    for cand, v in verdicts.items():
        vs = [v] * len(checks) if isinstance(v, Verdict) else list(v)
        out[cand] = [
            CheckResult(check=c, verdict=x, statistic="ratio", value=1.0,
                        counts={"n": 100.0}, reason=f"{cand}.{c} {x.name.lower()}")
            for c, x in zip(checks, vs, strict=True)
        ]
    return out


def weights_sum(weights: dict[str, float]) -> float:
    return sum(weights.values())


class Sim:
    """Drives ``decide`` one tick at a time with hand-made observations on a fixed clock."""

    def __init__(self, spec: RolloutSpec, now: float = 1000.0, epoch: int = 0) -> None:
        self.spec = spec
        self.now = now
        self.state = initial_state(spec, now, epoch)
        self.decisions: list[Decision] = []
        self.actions: list[Action] = []
        self.transitions: set[tuple[Phase, Phase]] = set()
        self.inputs: list[tuple[RolloutState, Observation]] = []  # what decide was given
        # Running replicas per version; None: every version has all it asks for.
        self.capacity: dict[str, int] | None = None

    def _capacity(self) -> dict[str, int]:
        if self.capacity is not None:
            return dict(self.capacity)
        return {v.name: 10**6 for v in [self.spec.stable, *self.spec.candidates]}

    # -- driving -------------------------------------------------------------------------------

    def tick(
        self,
        dt: float = 1.0,
        verdict: Verdict | Mapping[str, Verdict | Sequence[Verdict]] | None = None,
        requests: dict[str, int] | int | None = None,
        ready: Iterable[str] | None = None,
        shadow_compared: int = 0,
        failed: dict[str, str] | None = None,
    ) -> list[Action]:
        """One tick ``dt`` seconds later. ``verdict`` alone applies to every active candidate;
        ``requests`` as an int is that many new requests per active candidate."""
        self.now += dt
        if isinstance(verdict, Verdict):
            verdict = dict.fromkeys(self.state.active(), verdict)
        if isinstance(requests, int):
            requests = dict.fromkeys(self.state.active(), requests)
        obs = Observation(
            now=self.now,
            results=results(verdict) if verdict else {},
            requests=requests or {},
            shadow_compared=shadow_compared,
            ready=frozenset(ready or ()),
            failed_deploys=failed or {},
            capacity=self._capacity(),
        )
        return self.observe(obs)

    def command(self, verb: str, dt: float = 0.0, **kw: Any) -> list[Action]:
        self.now += dt
        return self.observe(Observation(now=self.now, command=Command(verb, **kw),
                                        capacity=self._capacity()))

    def observe(self, obs: Observation) -> list[Action]:
        before = self.state
        self.inputs.append((before, obs))
        snapshot = copy.deepcopy(before)
        new, actions, decision = decide(before, self.spec, obs)
        assert before == snapshot, "decide mutated its input state"
        check_step(before, new, actions, decision)
        if decision is not None:
            self.transitions.add((Phase(decision.phase_from), Phase(decision.phase_to)))
            self.decisions.append(decision)
        self.actions += actions
        self.state = new
        return actions

    # -- common journeys -----------------------------------------------------------------------

    def to_canary(self) -> None:
        """PENDING -> DEPLOYING -> (ready) -> step 0 (or SHADOW when the spec has one)."""
        self.tick()
        assert self.state.phase == Phase.DEPLOYING
        self.tick(ready=self.state.active())

    def pass_step(self, requests: int = 10_000, dt: float = 3600.0) -> list[Action]:
        """One tick that satisfies any step's duration and requests with every check PASS."""
        return self.tick(dt, verdict=Verdict.PASS, requests=requests)

    # -- views ---------------------------------------------------------------------------------

    def routes(self) -> list[Action]:
        return [a for a in self.actions if a.kind == "routes"]

    def kinds(self, actions: Sequence[Action]) -> list[str]:
        return [a.kind for a in actions]


def check_step(
    before: RolloutState, new: RolloutState, actions: Sequence[Action], d: Decision | None
) -> None:
    """The invariants every tick keeps (see the module docstring)."""
    if d is None:
        assert not actions and new.phase == before.phase and new.seq == before.seq
    else:
        src, dst = Phase(d.phase_from), Phase(d.phase_to)
        assert src == before.phase and dst == new.phase
        assert src == dst or dst in TRANSITIONS[src], f"{src} -> {dst} is not in the table"
        assert d.seq == new.seq == before.seq + 1
        assert d.epoch == new.epoch and d.step == new.step
        assert d.actions == list(actions)
    weights, shadow = dict(before.weights), before.shadow
    epoch = before.epoch
    for a in actions:
        if a.kind == "routes":
            assert a.epoch is not None and a.epoch == epoch + 1, "epochs grow by one per push"
            assert a.weights is not None
            epoch, weights, shadow = a.epoch, a.weights, a.shadow
            assert math.isclose(weights_sum(weights), 100.0), weights
            assert all(w >= 0 for w in weights.values()), weights
        elif a.kind == "delete":
            assert a.version is not None
            assert weights.get(a.version, 0.0) == 0.0, f"deleted {a.version} still has traffic"
            assert shadow != a.version, f"deleted {a.version} is still shadowed"
            assert a.version != new.stable, "deleted the stable"
            if before.phase in ACTIVE:
                assert a.version != before.stable, "deleted the stable during a rollout"
        elif a.kind == "scale":
            assert a.version is not None
            if before.phase in ACTIVE and a.version == before.stable:
                # the stable is only ever held where it is during a rollout, never released
                assert a.replicas is not None, "released the stable's floor mid-rollout"
        else:
            assert a.kind in ("deploy", "notify"), a.kind
    assert epoch == new.epoch and weights == new.weights and shadow == new.shadow
    assert new.stable in new.weights or new.phase == Phase.PENDING


# -- synthetic traffic for the ControllerCore / store / replay tests ---------------------------


def traffic(
    state: RolloutState, tick: int, seed: int, err: Mapping[str, float], n: int = 100
) -> tuple[list[RequestEvent], dict[str, int]]:
    """``n`` requests in second ``tick``, routed by ``state.weights``; error rate per version.

    Seeded per (seed, tick), so a resumed run draws the same events as an uninterrupted one.
    """
    rng = random.Random(seed * 1_000_003 + tick)
    names = sorted(state.weights)
    cum: list[float] = []
    acc = 0.0
    for v in names:
        acc += state.weights[v]
        cum.append(acc)
    events: list[RequestEvent] = []
    requests: dict[str, int] = {}
    for i in range(n):
        u = rng.random() * acc
        v = next(name for name, c in zip(names, cum, strict=True) if u < c)
        bad = rng.random() < err.get(v, 0.005)
        lat = rng.lognormvariate(math.log(10.0), 0.3)
        events.append(RequestEvent(tick + i / n, v, state.weights[v] / 100.0, lat, int(bad),
                                   float(rng.randrange(10)), "", True, state.epoch))
        requests[v] = requests.get(v, 0) + 1
    return events, requests


def core_spec(**kw: Any) -> RolloutSpec:
    """A spec with real sequential judges (errors, latency), as in the smoke run."""
    doc = spec_doc(
        steps=[{"weight": 10, "min_requests": 200}, {"weight": 50, "min_requests": 300}],
        window=5.0,
        analysis={"checks": [{"kind": "errors", "params": {"min_candidate_requests": 100}},
                             {"kind": "latency"}]},
    )
    doc.update(kw)
    return RolloutSpec.model_validate(doc)


def drive(
    core: ControllerCore,
    ticks: Iterable[int],
    seed: int,
    err: Mapping[int, Mapping[str, float]] | None = None,
    commands: Mapping[int, Command] | None = None,
) -> None:
    """Second by second: a command first if one is due, then that second's traffic.

    ``err`` maps an attempt to its error rates (default: every version 0.5%); readiness is
    reported for every active candidate while deploying, as a healthy cluster would.
    """
    capacity = {v.name: 100 for v in [core.spec.stable, *core.spec.candidates]}  # ample
    for t in ticks:
        cmd = (commands or {}).get(t)
        if cmd is not None:
            core.tick(t + 0.5, command=cmd, capacity=capacity)
        rates = (err or {}).get(core.state.attempt, {})
        events, requests = traffic(core.state, t, seed, rates)
        ready = frozenset(core.state.active()) if core.state.phase == Phase.DEPLOYING else None
        core.tick(float(t + 1), events, (), requests, ready or frozenset(), {},
                  capacity=capacity)
