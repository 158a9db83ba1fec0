"""``RolloutController``: one model's rollouts, driven one tick at a time. No Ray.

The controller reaches Ray Serve only through a ``ServePort`` and reads time only from the clock
it is given, so a whole rollout (deploy, shadow, steps, drain, promotion, undo, a restart) runs
in a unit test with ``FakeServePort`` and a hand-moved clock. ``rayrollout.serving.actor`` wraps
it as the named, detached Ray actor; ``run_loop`` is the loop that calls ``step()``: the step
and the loop are separate.

Every tick (``analysis.tick_s``) ``step()`` collects the routers' aggregates and events, lets
``ControllerCore`` judge and decide (which persists before returning), then carries out the
actions: push a routing table to every router replica, deploy or retire version apps, notify.

Guarantees:

* Persist, then act: a decision is in the store before any of its actions is carried out.
* Restart safety: the constructor reloads the rollout; if the last decision's actions were not
  marked applied, they are applied again. Every action is idempotent (a table push is ignored by
  routers that already have its epoch; deploying a running app and deleting a deleted one do
  nothing), so nothing is done twice in effect and no log entry is written twice.
* Drain: a version's app is deleted ``drain_s`` after the decision that retired it, and only if
  no table, candidate or undo window needs it by then.
* A person's verb never waits behind the slow part of a tick: collecting from the routers and
  reading app status happen before the lock is taken.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from rayrollout.controller.core import ControllerCore, replay_rollout
from rayrollout.controller.decide import allowed_verbs
from rayrollout.controller.phases import ACTIVE, FINAL, TERMINAL, Phase
from rayrollout.controller.port import DEPLOY_FAILED, RUNNING, AppStatus, ServePort
from rayrollout.controller.state import Action, Command, Decision
from rayrollout.controller.store import Store
from rayrollout.dataplane.aggregates import Collected
from rayrollout.errors import ConfigError, Conflict
from rayrollout.names import version_app_name
from rayrollout.notify import Notifier, make_notifier
from rayrollout.spec import NotifierSpec, RolloutSpec
from rayrollout.spec.reach import check_artifacts

log = logging.getLogger("rayrollout.controller")

Clock = Callable[[], float]
IDLE_TICK_S = 2.0  # between ticks of a controller with no rollout that can still move


class RolloutController:
    def __init__(
        self,
        model: str,
        store: Store,
        port: ServePort,
        clock: Clock = time.time,
        notifier: Callable[[NotifierSpec], Notifier] = make_notifier,
    ) -> None:
        self.model = model
        self.store = store
        self.port = port
        self.clock = clock
        self._notifier = notifier
        self._lock = threading.RLock()
        self.notifications: list[dict[str, Any]] = []
        self._retiring: dict[str, float] = {}  # version -> when its app may be deleted
        self.wake = threading.Event()  # set by a start or a verb: tick now
        self.ticks = 0
        self.core = ControllerCore.load(self.store, model)
        if self.core is not None:
            self._resume()

    @property
    def tick_s(self) -> float:
        """Seconds between ticks: the running rollout's ``analysis.tick_s`` while it can still
        move by itself (``IDLE_TICK_S`` when there is none, or it is over and nothing waits
        to be retired: there is nothing to judge, only the routers' counts to drain)."""
        core = self.core
        if core is None or (core.state.phase in TERMINAL and not self._retiring):
            return max(IDLE_TICK_S, core.spec.analysis.tick_s if core is not None else 0.0)
        return core.spec.analysis.tick_s

    # -- verbs ---------------------------------------------------------------------------------

    def start(self, spec: dict[str, Any], actor: str = "api",
              declarative: bool = False) -> dict[str, Any]:
        """Start a rollout of ``spec``. Starting the same spec while it runs is a no-op.

        ``declarative``: the spec comes from a deployed config (``serve run``, ``serve
        deploy``, a router replica starting or being added). Such a start is a no-op as well
        when this model has already run a rollout of the very same spec, whatever its outcome:
        re-deploying a config, or scaling its routers, never starts a finished or rolled-back
        rollout again; a config with a new candidate (another spec) starts its rollout."""
        s = RolloutSpec.model_validate(spec)
        self._check_reach(s)
        with self._lock:
            if declarative and self._ran(s):
                return self.status()
            cur = self.core
            running = cur is not None and (
                cur.state.phase in ACTIVE or cur.state.phase == Phase.PENDING)
            if cur is not None and running and cur.spec.digest() == s.digest():
                return self.status()
            if cur is not None and running:
                raise Conflict(f"a rollout of {self.model} is in phase {cur.state.phase}: "
                               "abort it or let it finish first")
            if cur is not None and cur.state.stable != s.stable.name:
                raise Conflict(f"spec.stable={s.stable.name!r} but {cur.state.stable!r} is "
                               "stable now")
            if cur is not None and cur.state.phase == Phase.PROMOTED and cur.state.previous_stable:
                self._apply(cur, [Action("delete", version=cur.state.previous_stable)])
            epoch = cur.state.epoch if cur is not None else self._router_epoch()
            self._deploy(s, s.stable.name)
            self.core = ControllerCore.create(self.store, s, self.clock(), epoch)
            log.info("rollout %s of %s started by %s", self.core.rollout, s.model, actor)
        self.wake.set()
        return self.status()

    def _ran(self, s: RolloutSpec) -> bool:
        """Whether the store holds a rollout of this model with ``s``'s digest."""
        digest = s.digest()
        for rid in reversed(self.store.rollouts(self.model)):
            row = self.store.get(rid)
            if row is not None and row.digest == digest:
                return True
        return False

    def _check_reach(self, s: RolloutSpec) -> None:
        """What the spec names must be within what this controller's machine allows (artifact
        roots, webhook hosts and their environment variables): ``ConfigError`` (400) naming
        the field, before anything is deployed."""
        check_artifacts(s)
        for i, n in enumerate(s.notifiers):
            try:
                self._notifier(n)
            except ConfigError as e:
                raise ConfigError(f"notifiers[{i}]: {e}") from None

    def command(
        self,
        verb: str,
        actor: str = "api",
        full: bool = False,
        candidate: str | None = None,
        reason: str = "",
    ) -> dict[str, Any]:
        """Apply a person's verb now (not at the next tick); a refused one raises
        ``IllegalTransition`` (409) and changes nothing."""
        capacity = self._capacity(self.core, self._apps()) if self.core is not None else {}
        with self._lock:
            core = self._need_core()
            cmd = Command(verb, actor, full, candidate, reason)
            actions, decision = core.tick(self.clock(), command=cmd, capacity=capacity)
            self._apply(core, actions, decision)
        self.wake.set()
        return self.status()

    def status(self) -> dict[str, Any]:
        """The rollout as the status page, the CLI and the Python API show it; ``allowed_verbs``
        are the verbs ``decide`` would accept now, ``final`` says the outcome is known."""
        with self._lock:
            core = self.core
            if core is None:
                return {"model": self.model, "phase": "none", "rollout": None,
                        "allowed_verbs": [], "final": True}
            s, spec = core.state, core.spec
            return {
                "model": self.model,
                "rollout": core.rollout,
                "attempt": s.attempt,
                "phase": str(s.phase),
                "final": s.phase in FINAL,
                "allowed_verbs": allowed_verbs(s, spec),
                "step": s.step,
                "steps": [st.model_dump() for st in spec.strategy.steps],
                "epoch": s.epoch,
                "weights": dict(s.weights),
                "shadow": s.shadow,
                "shadow_fraction": s.shadow_fraction,
                "stable": s.stable,
                "previous_stable": s.previous_stable,
                "retire_at": s.retire_at,
                "candidates": [c.__dict__ for c in s.candidates],
                "phase_since": s.phase_since,
                "step_requests": s.step_requests,
                "step_need": self._step_need(core),
                "shadow_compared": s.shadow_compared,
                "checks": {c: [r.view() for r in rs] for c, rs in core.last_results.items()},
                "alpha": spec.analysis.alpha,
                "notifiers": [n.shown() for n in spec.notifiers],  # URLs as scheme://host only
                "decisions": s.seq,
                "ticks": self.ticks,
                "now": self.clock(),
            }

    def _step_need(self, core: ControllerCore) -> dict[str, Any] | None:
        """What the current step needs to catch ``analysis.detect``, and how long it has to go
        at the candidate request rate observed in the step (None outside a canary step)."""
        s = core.state
        if s.phase not in (Phase.CANARY, Phase.PAUSED) or s.step < 0:
            return None
        need, why = core.spec.step_needs()[s.step]
        step = core.spec.strategy.steps[s.step]
        need = max(need, step.min_requests)
        elapsed = self.clock() - s.phase_since
        rate = s.step_requests / elapsed if elapsed > 0 else 0.0
        left = max(0, need - s.step_requests)
        eta = left / rate if rate > 0 else None
        return {"requests": need, "seen": s.step_requests, "to_catch": why,
                "rate_per_s": round(rate, 3), "eta_s": None if eta is None else round(eta, 1)}

    def history(self, limit: int | None = None, all_rollouts: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            rollout = None if all_rollouts or self.core is None else self.core.rollout
            return self.store.history(rollout, limit)

    def verify(self) -> dict[str, Any]:
        ok, msg = self.store.verify()
        return {"ok": ok, "message": msg}

    def replay(self, rollout: int | None = None) -> dict[str, Any]:
        """Replay a rollout (default: the current one); ``NotFound`` for an unknown one."""
        with self._lock:
            rid = rollout if rollout is not None else self._need_core().rollout
            same, replayed, recorded = replay_rollout(self.store, rid)
        return {"rollout": rid, "identical": same, "replayed": len(replayed),
                "recorded": len(recorded)}

    def table(self) -> dict[str, Any] | None:
        """The routing table in force (a restarted router replica adopts it at once)."""
        with self._lock:
            return self._table(self.core) if self.core is not None else None

    # -- the tick ------------------------------------------------------------------------------

    def step(self) -> Decision | None:
        """One tick: collect, judge, decide, persist, act, then retire drained apps."""
        parts = self._collect()
        core = self.core
        apps = self._apps() if core is not None and (
            core.state.phase in ACTIVE or core.state.phase == Phase.PAUSED) else {}
        status = self._deploy_status(core, apps) if core is not None else (frozenset(), {})
        capacity = self._capacity(core, apps) if core is not None else {}
        with self._lock:
            self.ticks += 1
            if core is None or core is not self.core:
                return None
            # Request events reach the judges in arrival order across replicas: the core holds
            # each until no replica can still report an earlier one (the smallest watermark).
            events = [e for p in parts for e in p.events]
            watermark = min(p.watermark for p in parts) if parts else None
            shadow = sorted((e for p in parts for e in p.shadow), key=lambda e: e.t)
            labelled = sorted((e for p in parts for e in p.labelled), key=lambda e: e.t)
            requests, rejected = _request_counts(parts)
            lost = sum(p.dropped_events for p in parts)
            accounting = {**({"rejected": rejected} if rejected else {}),
                          **({"dropped_events": lost} if lost else {})}
            ready, failed = status
            actions, decision = core.tick(self.clock(), events, shadow, requests, ready,
                                          failed, labelled=labelled, watermark=watermark,
                                          accounting=accounting, capacity=capacity)
            self._apply(core, actions, decision)
            if parts and min(p.epoch for p in parts) < core.state.epoch:
                self._push(core)  # a router replica restarted with an older table
            self._retire_drained(core)
            return decision

    # -- actions -------------------------------------------------------------------------------

    def _apply(self, core: ControllerCore, actions: list[Action],
               decision: Decision | None = None) -> None:
        for a in actions:
            if a.kind == "routes":
                self._push(core)
            elif a.kind == "deploy" and a.version:
                self._deploy(core.spec, a.version, a.replicas)
            elif a.kind == "scale" and a.version:
                self._scale(core.spec, a.version, a.replicas)
            elif a.kind == "delete" and a.version:
                # Not now: requests routed with the previous table may still be on their way
                # to this version. It is deleted once ``drain_s`` has passed (and it is unused).
                self._retiring.setdefault(a.version, self.clock() + core.spec.drain_s)
            elif a.kind == "notify":
                self._notify(core, a.message)
        if decision is not None:
            self.store.mark_applied(core.rollout, decision.seq)

    def _notify(self, core: ControllerCore, message: str) -> None:
        event = {"t": self.clock(), "model": self.model, "rollout": core.rollout,
                 "phase": str(core.state.phase), "epoch": core.state.epoch, "message": message}
        self.notifications.append(event)
        del self.notifications[:-100]
        for i, n in enumerate(core.spec.notifiers):
            try:  # its environment may have changed since the start (a restart elsewhere)
                notifier = self._notifier(n)
            except ConfigError as e:
                log.warning("notifiers[%d] of rollout %s cannot notify: %s", i, core.rollout, e)
                continue
            notifier.notify(event)

    def _table(self, core: ControllerCore) -> dict[str, Any]:
        s = core.state
        return core.spec.routing_table(dict(s.weights), s.shadow, s.shadow_fraction,
                                       s.epoch).to_dict()

    def _push(self, core: ControllerCore) -> None:
        self.port.push_table(self.model, self._table(core))

    def _needed(self, core: ControllerCore) -> set[str]:
        s = core.state
        keep = {s.stable, *s.weights, *s.active()}
        if s.shadow:
            keep.add(s.shadow)
        if s.previous_stable:
            keep.add(s.previous_stable)
        return keep

    def _retire_drained(self, core: ControllerCore) -> None:
        """Delete apps whose drain period is over and that no table or candidate needs."""
        now, needed = self.clock(), self._needed(core)
        for version, at in list(self._retiring.items()):
            if version in needed:
                del self._retiring[version]  # needed again (retry, undo): keep it
            elif now >= at:
                self.port.delete_app(version_app_name(self.model, version))
                del self._retiring[version]

    def _deploy(self, spec: RolloutSpec, version: str, replicas: int | None = None) -> None:
        self._retiring.pop(version, None)  # needed again: not to be deleted
        # The port deploys only what is not there (or failed): a running app is not restarted.
        self.port.deploy_version(spec.version(version).for_model(self.model).resolved(),
                                 replicas)

    def _scale(self, spec: RolloutSpec, version: str, replicas: int | None) -> None:
        if version_app_name(self.model, version) not in self.port.applications():
            return  # deleted meanwhile (withdrawn): nothing to size
        self.port.scale_version(spec.version(version).for_model(self.model).resolved(),
                                replicas)

    def _apps(self) -> Mapping[str, AppStatus]:
        """Serve's applications, read once per tick ({} when Serve does not answer: deploys
        and moves that wait on it wait for the next tick)."""
        try:
            return self.port.applications()
        except Exception as e:
            log.debug("applications failed: %s", e)
            return {}

    def _capacity(self, core: ControllerCore, apps: Mapping[str, AppStatus]) -> dict[str, int]:
        """Running replicas of the rollout's versions (what a move waiting for capacity needs;
        empty outside the phases that move traffic)."""
        s = core.state
        if s.phase not in ACTIVE and s.phase != Phase.PAUSED:
            return {}
        out = {}
        for v in {s.stable, *s.active()}:
            st = apps.get(version_app_name(self.model, v))
            if st is not None and st.status != DEPLOY_FAILED and st.replicas >= 0:
                out[v] = st.replicas
        return out

    def _deploy_status(self, core: ControllerCore, apps: Mapping[str, AppStatus]
                       ) -> tuple[frozenset[str], dict[str, str]]:
        if core.state.phase != Phase.DEPLOYING:
            return frozenset(), {}
        ready, failed = set(), {}
        for v in core.state.active():
            st = apps.get(version_app_name(self.model, v))
            if st is None:
                continue
            if st.status == RUNNING:
                ready.add(v)
            elif st.status == DEPLOY_FAILED:
                failed[v] = (st.message or "deploy failed")[:500]
        return frozenset(ready), failed

    def _collect(self) -> list[Collected]:
        try:
            return [Collected.from_dict(r) for r in self.port.collect(self.model)]
        except Exception as e:  # no router yet, or one is restarting: try next tick
            log.debug("collect failed: %s", e)
            return []

    def _router_epoch(self) -> int:
        try:
            tables = self.port.router_tables(self.model)
            return max(int(t["epoch"]) for t in tables) if tables else 0
        except Exception:
            return 0

    def _resume(self) -> None:
        core = self.core
        assert core is not None
        row = self.store.get(core.rollout)
        if row is not None and row.applied_seq < core.state.seq:
            last = self.store.history(core.rollout, limit=1)
            if last:
                actions = [Action.from_dict(a) for a in last[-1]["actions"]]
                log.warning("re-applying %d actions of decision %s after a restart",
                            len(actions), core.state.seq)
                self._apply(core, actions)
                self.store.mark_applied(core.rollout, core.state.seq)
        try:
            self._push(core)
        except Exception as e:
            log.warning("could not push the table after restart: %s", e)
        # Apps a previous incarnation meant to delete: retire them again after a fresh drain.
        prefix = version_app_name(self.model, "")
        needed = self._needed(core)
        for app in self.port.applications():
            version = app[len(prefix):] if app.startswith(prefix) else None
            if version and version not in needed and self._is_ours(version):
                self._retiring.setdefault(version, self.clock() + core.spec.drain_s)

    def _is_ours(self, version: str) -> bool:
        """Only versions named in this model's rollouts are ever deleted by the controller."""
        for rid in self.store.rollouts(self.model):
            row = self.store.get(rid)
            spec = row.spec if row is not None else {}
            names = [spec.get("stable", {}), *spec.get("candidates", [])]
            if any(v.get("name") == version for v in names):
                return True
        return False

    def _need_core(self) -> ControllerCore:
        if self.core is None:
            raise Conflict(f"no rollout of {self.model} has been started")
        return self.core


def _request_counts(parts: list[Collected]) -> tuple[dict[str, int], dict[str, int]]:
    """Per version over all replicas: requests that reached the version (every outcome but
    rejected; what ``decide`` counts) and requests rejected as bad input (persisted with the
    tick, so the store accounts for every request the routers recorded)."""
    requests: dict[str, int] = defaultdict(int)
    rejected: dict[str, int] = defaultdict(int)
    for p in parts:
        for v, st in p.stats.items():
            requests[v] += st.requests - st.rejected
            if st.rejected:
                rejected[v] += st.rejected
    return dict(requests), dict(rejected)


def run_loop(
    controller: RolloutController,
    stop: threading.Event,
    monotonic: Clock = time.monotonic,
) -> None:
    """Call ``controller.step()`` every ``controller.tick_s`` until ``stop`` is set. A failed
    tick is logged and the next one runs on schedule; a start or a verb (``controller.wake``)
    brings the next tick forward, so an idle controller's longer wait delays no rollout."""
    while not stop.is_set():
        t0 = monotonic()
        controller.wake.clear()
        try:
            controller.step()
        except Exception:
            log.exception("controller tick failed")
        wait = max(0.0, controller.tick_s - (monotonic() - t0))
        while wait > 0 and not stop.is_set() and not controller.wake.is_set():
            controller.wake.wait(min(wait, 0.5))  # stop is seen within half a second
            wait = max(0.0, controller.tick_s - (monotonic() - t0))
