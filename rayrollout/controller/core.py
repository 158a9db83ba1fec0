"""The controller's step, without Ray: judges + ``decide`` + the store. Also replay.

``ControllerCore.tick()`` takes what the routers reported since the last tick, feeds the judges,
asks ``decide`` what to do, and persists inputs, state, judges and the decision in one
transaction *before* returning the actions for the shell to carry out.

Arrival order: routers record a request when it completes, so one tick's events are not the
requests that arrived in that tick. ``tick(watermark=...)`` gets the smallest watermark of all
router replicas (no event still to come arrived before it); the core releases to the judges
only the events below it, sorted by arrival, and holds the rest for a later tick. The held
events are persisted with the judges, so a restart loses none of them.

``replay()`` feeds a rollout's recorded tick inputs to fresh judges and ``decide`` and returns
the decisions; they must equal the recorded log. What Serve said of the apps' health and the
routers' epoch, when they matter, are such inputs too, so a rollback for a lost replica and a
reconciliation replay as they happened; so are the readings of PromQL checks (``readings``:
what the shell's sources answered), so a replay needs no Prometheus.

Fencing: a core made with a ``token`` (the controller's lease, ``RolloutStore.acquire``) passes
it to every write; a write with a stale token raises ``Fenced`` with nothing written, and the
core's memory stays as it was (no decision is taken that the store does not hold).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from rayrollout.analysis.assemble import check_judges
from rayrollout.analysis.base import Judge
from rayrollout.analysis.judges.promql import PromQLJudge
from rayrollout.analysis.registry import restore_judge
from rayrollout.controller.decide import decide, initial_state
from rayrollout.controller.phases import ACTIVE, IllegalTransition
from rayrollout.controller.state import Action, Command, Decision, Observation, RolloutState
from rayrollout.controller.store import RolloutStore, canonical
from rayrollout.dataplane.events import EventBatch, LabelledEvent, RequestEvent, ShadowEvent
from rayrollout.dataplane.ordering import ArrivalOrder
from rayrollout.errors import NotFound
from rayrollout.spec import RolloutSpec


def build_judges(spec: RolloutSpec) -> dict[str, dict[str, Judge]]:
    """One judge per (candidate, check), with the alpha budget split over checks and candidates."""
    return {cand.name: check_judges(spec.analysis, len(spec.candidates))
            for cand in spec.candidates}


def _restore(saved: dict[str, Any], spec: RolloutSpec) -> dict[str, dict[str, Judge]]:
    """Judges from their saved states, in the spec's order (the store sorts JSON keys, and the
    order of checks is part of every decision's evidence)."""
    order = [c.check_name for c in [*spec.analysis.checks, *spec.analysis.guards]]
    return {
        cand.name: {name: restore_judge(saved["judges"][cand.name][name]) for name in order}
        for cand in spec.candidates
    }


def _nan_to_none(row: Sequence[Any]) -> list[Any]:
    return [None if isinstance(x, float) and math.isnan(x) else x for x in row]


def _none_to_nan(row: Sequence[Any]) -> list[Any]:
    return [math.nan if x is None else x for x in row]


# Per candidate, per check: the readings a PromQL check's source gave since the last tick
# (``rayrollout.sources.poll``: plain JSON), oldest first.
Readings = Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]]


def _plain_readings(readings: Readings) -> dict[str, dict[str, list[dict[str, Any]]]]:
    return {c: {n: [dict(r) for r in rs] for n, rs in checks.items()}
            for c, checks in readings.items()}


def encode_inputs(
    now: float,
    events: Sequence[RequestEvent],
    shadow: Sequence[ShadowEvent],
    requests: dict[str, int],
    ready: frozenset[str],
    failed: dict[str, str],
    command: Command | None,
    labelled: Sequence[LabelledEvent] = (),
    watermark: float | None = math.inf,
    accounting: dict[str, Any] | None = None,
    capacity: dict[str, int] | None = None,
    health: dict[str, dict[str, Any]] | None = None,
    router_epoch: int | None = None,
    readings: Readings | None = None,
) -> dict[str, Any]:
    wm: dict[str, Any] = {} if watermark == math.inf else {"watermark": watermark}
    return {
        **wm,
        **({"readings": _plain_readings(readings)} if readings else {}),
        **({"capacity": capacity} if capacity else {}),
        **({"health": health} if health is not None else {}),
        **({"router_epoch": router_epoch} if router_epoch is not None else {}),
        **(accounting or {}),
        "labelled": [_nan_to_none(e) for e in labelled],
        "now": now,
        "events": [_nan_to_none(e) for e in events],
        "shadow": [_nan_to_none(e) for e in shadow],
        "requests": requests,
        "ready": sorted(ready),
        "failed": failed,
        "command": asdict(command) if command else None,
    }


class ControllerCore:
    """One rollout's judges and state, persisted in ``store`` (``None``: in memory, for replay)
    with the fencing ``token`` of the controller that owns it (None: no fencing)."""

    def __init__(
        self,
        spec: RolloutSpec,
        state: RolloutState,
        rollout: int,
        store: RolloutStore | None,
        judges: dict[str, dict[str, Judge]] | None = None,
        token: int | None = None,
    ) -> None:
        self.spec = spec
        self.state = state
        self.rollout = rollout
        self.store = store
        self.token = token
        self.judges = judges if judges is not None else build_judges(spec)
        self.last_results: dict[str, list[Any]] = {}
        self.order = ArrivalOrder()  # events reported, not yet released to the judges

    @classmethod
    def create(
        cls, store: RolloutStore | None, spec: RolloutSpec, now: float, epoch: int,
        token: int | None = None,
    ) -> ControllerCore:
        state = initial_state(spec, now, epoch)
        rollout = 0
        if store is not None:
            rollout = store.create(spec.model, spec.digest(), spec.model_dump(mode="json"),
                                   state.to_dict(), token=token)
        return cls(spec, state, rollout, store, token=token)

    @classmethod
    def load(cls, store: RolloutStore, model: str, token: int | None = None
             ) -> ControllerCore | None:
        row = store.latest(model)
        if row is None:
            return None
        spec = RolloutSpec.model_validate(row.spec)
        state = RolloutState.from_dict(row.state)
        judges = _restore(row.judges, spec) if row.judges else None
        core = cls(spec, state, row.id, store, judges, token)
        core._load_held(row.judges or {})
        return core

    def _load_held(self, saved: dict[str, Any]) -> None:
        wm = saved.get("watermark")
        self.order = ArrivalOrder((RequestEvent(*_none_to_nan(e)) for e in saved.get("held", [])),
                                  None if wm is None else float(wm))

    def judge_states(self) -> dict[str, Any]:
        return {
            "attempt": self.state.attempt,
            "judges": {
                c: {n: j.to_state() for n, j in js.items()} for c, js in self.judges.items()
            },
            "held": [_nan_to_none(e) for e in self.order.held],
            "watermark": self.order.finite_watermark(),
        }

    def tick(
        self,
        now: float,
        events: Sequence[RequestEvent] = (),
        shadow: Sequence[ShadowEvent] = (),
        requests: dict[str, int] | None = None,
        ready: frozenset[str] = frozenset(),
        failed: dict[str, str] | None = None,
        command: Command | None = None,
        labelled: Sequence[LabelledEvent] = (),
        watermark: float | None = math.inf,
        accounting: dict[str, Any] | None = None,
        capacity: dict[str, int] | None = None,
        health: dict[str, dict[str, Any]] | None = None,
        router_epoch: int | None = None,
        readings: Readings | None = None,
    ) -> tuple[list[Action], Decision | None]:
        """One step. ``events`` are the new request events as reported, in any order;
        ``watermark`` releases the held and new ones that arrived before it (``inf``: all of
        them; ``None``: no router answered, release nothing new). ``capacity`` holds the
        running replicas of each version (what a move that needs replicas waits for);
        ``health`` the versions whose app is not plainly live (None: not read this tick);
        ``router_epoch`` the routers' newest epoch when it is above the state's;
        ``readings`` what the sources of PromQL checks answered since the last tick (per
        candidate and check; recorded with the inputs, so a replay needs no Prometheus).
        ``accounting`` (requests
        rejected per version, events lost off full router buffers) is only persisted with the
        inputs, so the store accounts for every request the routers reported; ``decide`` and
        replay never read it. Persists before it returns; raises ``IllegalTransition`` for a
        bad verb (and then persists nothing)."""
        requests = requests or {}
        failed = failed or {}
        saved = self.judge_states() if self.store is not None else None
        try:
            return self._tick(now, events, shadow, requests, ready, failed, command, labelled,
                              watermark, accounting, capacity or {}, health, router_epoch,
                              readings or {})
        except BaseException:
            if saved is not None:  # nothing was committed: the judges forget this tick too
                self.judges = _restore(saved, self.spec)
                self._load_held(saved)
            raise

    def _tick(
        self,
        now: float,
        events: Sequence[RequestEvent],
        shadow: Sequence[ShadowEvent],
        requests: dict[str, int],
        ready: frozenset[str],
        failed: dict[str, str],
        command: Command | None,
        labelled: Sequence[LabelledEvent],
        watermark: float | None,
        accounting: dict[str, Any] | None = None,
        capacity: dict[str, int] | None = None,
        health: dict[str, dict[str, Any]] | None = None,
        router_epoch: int | None = None,
        readings: Readings | None = None,
    ) -> tuple[list[Action], Decision | None]:
        released = self.order.release(events, watermark) if command is None else []
        results = (self._judge(now, released, shadow, labelled, readings or {})
                   if command is None else {})
        if results:
            self.last_results = results
        obs = Observation(
            now=now,
            results=results,
            requests=requests,
            shadow_compared=sum(1 for e in shadow if e.shadow_ok),
            ready=ready,
            failed_deploys=failed,
            command=command,
            capacity=dict(capacity or {}),
            health=health,
            router_epoch=router_epoch,
        )
        new, actions, decision = decide(self.state, self.spec, obs)
        retried = new.attempt != self.state.attempt
        judges = build_judges(self.spec) if retried else self.judges
        if retried:  # a fresh attempt: fresh evidence, nothing carried over
            self.order = ArrivalOrder()
        if self.store is not None:  # persist first: memory never runs ahead of the store
            inputs = encode_inputs(now, events, shadow, requests, ready, failed, command, labelled,
                                   watermark, accounting, capacity, health, router_epoch,
                                   readings)
            states = {"attempt": new.attempt, "judges": {
                c: {n: j.to_state() for n, j in js.items()} for c, js in judges.items()},
                "held": [_nan_to_none(e) for e in self.order.held],
                "watermark": self.order.finite_watermark()}
            self.store.commit(
                self.rollout, new.to_dict(), states, now, inputs,
                decision.to_dict() if decision else None, token=self.token,
            )
        self.state, self.judges = new, judges  # retry: fresh evidence for a fresh attempt
        return actions, decision

    def _judge(
        self,
        now: float,
        events: Sequence[RequestEvent],
        shadow: Sequence[ShadowEvent],
        labelled: Sequence[LabelledEvent],
        readings: Readings,
    ) -> dict[str, list[Any]]:
        s = self.state
        if s.phase not in ACTIVE:
            return {}
        batch = EventBatch.from_events(list(events))
        out: dict[str, list[Any]] = {}
        for cand in s.active():
            judges = self.judges[cand]
            mine = readings.get(cand, {})
            for name, j in judges.items():
                j.observe(batch, s.stable, cand, shadow=shadow, labelled=labelled)
                if isinstance(j, PromQLJudge):
                    j.observe_readings(mine.get(name, ()), self.pair_weight(cand), now)
            out[cand] = [j.result(now) for j in judges.values()]
        return out

    def pair_weight(self, cand: str) -> float:
        """The candidate's share of its pair with the stable in the table in force (0 when
        neither takes traffic): what a PromQL comparison of the two weighs its counts by."""
        w = self.state.weights
        c, b = w.get(cand, 0.0), w.get(self.state.stable, 0.0)
        return c / (c + b) if c + b > 0 else 0.0


def replay(
    spec: RolloutSpec, initial: RolloutState, ticks: Sequence[dict[str, Any]]
) -> list[Decision]:
    """Re-run a recorded rollout from its tick inputs; returns every decision it takes."""
    core = ControllerCore(spec, initial, 0, None)
    decisions: list[Decision] = []
    for t in ticks:
        try:
            d = _replay_tick(core, t)
        except IllegalTransition:  # the recorded inputs no longer lead where they did
            break
        if d is not None:
            decisions.append(d)
    return decisions


def _replay_tick(core: ControllerCore, t: dict[str, Any]) -> Decision | None:
    cmd = Command(**t["command"]) if t.get("command") else None
    _, d = core.tick(
        t["now"],
        [RequestEvent(*_none_to_nan(e)) for e in t["events"]],
        [ShadowEvent(*_none_to_nan(e)) for e in t["shadow"]],
        dict(t["requests"]),
        frozenset(t["ready"]),
        dict(t["failed"]),
        cmd,
        [LabelledEvent(*_none_to_nan(e)) for e in t.get("labelled", [])],
        t.get("watermark", math.inf),  # ticks recorded before watermarks: release everything
        capacity=dict(t.get("capacity", {})),
        health=t.get("health"),
        router_epoch=t.get("router_epoch"),
        readings=t.get("readings"),
    )
    return d


def replay_rollout(
    store: RolloutStore, rollout: int
) -> tuple[bool, list[dict[str, Any]], list[dict[str, Any]]]:
    """Replay a stored rollout and compare with its log: (identical?, replayed, recorded)."""
    row = store.get(rollout)
    if row is None:
        raise NotFound(f"no rollout {rollout} in the store")
    spec = RolloutSpec.model_validate(row.spec)
    recorded = [
        {k: v for k, v in e.items() if k not in ("log_seq", "rollout", "ts", "hash")}
        for e in store.history(rollout)
    ]
    initial = RolloutState.from_dict(row.initial)
    decisions = replay(spec, initial, store.ticks(rollout))
    replayed = [json.loads(canonical(d.to_dict())) for d in decisions]
    return replayed == recorded, replayed, recorded
