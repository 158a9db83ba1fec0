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
* One controller acts per model (fencing): the constructor takes the model's lease in the
  store (``RolloutStore.acquire``) and every write carries its token; a tick begins by checking
  that the lease is still its own, and so does a table push that is not part of a decision it
  just committed. Once a newer controller holds the lease (``Fenced``), this one stops for good:
  no push, deploy, delete or log entry; its loop ends, its status says so, verbs raise
  ``Fenced`` (409).
* Health every tick: Serve's applications are read once per tick in every phase that has
  something to watch, and what they say of the stable's and the candidates' apps is an input
  of ``decide`` (recorded with the tick, so a replay reproduces a rollback for a lost replica).
* Reconciliation: routers at a newer epoch than the store are reported to ``decide`` (an input
  too), which moves the epoch above theirs, instead of pushing tables they would ignore.
* A verb call with an id (``request``) is applied once: the same id again is answered with
  the status (the Python API retries a verb whose answer a controller restart lost).
* PromQL checks read their sources off the lock and off the tick: each check's queries are
  started every ``interval_s`` on a small thread pool (``rayrollout.sources.Poller``) and a
  tick takes only the readings that have finished, never waiting for one (a read ends by its
  source's timeout). The readings go to the core as tick inputs and are recorded with them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from rayrollout.analysis.judges.promql import DEFAULT_URL, PromQLJudge
from rayrollout.controller.capacity import app_health, running
from rayrollout.controller.core import ControllerCore, replay_rollout
from rayrollout.controller.decide import allowed_verbs
from rayrollout.controller.explain import deadline, waiting_for
from rayrollout.controller.phases import ACTIVE, FINAL, TERMINAL, Phase
from rayrollout.controller.port import DELETING, DEPLOY_FAILED, RUNNING, AppStatus, ServePort
from rayrollout.controller.state import Action, Command, Decision
from rayrollout.controller.store import RolloutStore
from rayrollout.dataplane.aggregates import Collected
from rayrollout.errors import ConfigError, Conflict, Fenced, NotCarriedOut, UnavailableError
from rayrollout.names import version_app_name
from rayrollout.notify import Notifier, make_notifier
from rayrollout.sources import MetricSource, Poller, PromQLSource, check_url, take_reading
from rayrollout.spec import NotifierSpec, RolloutSpec
from rayrollout.spec.reach import check_artifacts

log = logging.getLogger("rayrollout.controller")

Clock = Callable[[], float]
SourceFactory = Callable[[str, float], MetricSource]  # (url, timeout_s) -> a source
IDLE_TICK_S = 2.0  # between ticks of a controller with no rollout that can still move
RECENT_REQUESTS = 1000  # verb call ids remembered in memory (older ones are found in the log)
REQUEST_LOOKBACK = 500  # log entries of the rollout searched for a verb call id after a restart
# Phases in which Serve's apps are read every tick (deploys, capacity, health).
WATCHED = ACTIVE | {Phase.PROMOTED}


def default_owner() -> str:
    """A readable name of this incarnation for the store's lease: host and process id."""
    return f"{socket.gethostname()}/pid {os.getpid()}"


class RolloutController:
    def __init__(
        self,
        model: str,
        store: RolloutStore,
        port: ServePort,
        clock: Clock = time.time,
        notifier: Callable[[NotifierSpec], Notifier] = make_notifier,
        owner: str | None = None,
        store_info: Mapping[str, Any] | None = None,
        sources: SourceFactory = PromQLSource,
        inline_reads: bool = False,
    ) -> None:
        """``sources`` makes the source of a PromQL check from its url and timeout (one per
        pair, kept); ``inline_reads`` reads them within the tick (tests with fake sources)."""
        self.model = model
        self.store = store
        self.port = port
        self.clock = clock
        self._notifier = notifier
        self._lock = threading.RLock()
        self.notifications: list[dict[str, Any]] = []
        self._retiring: dict[str, float] = {}  # version -> when its app may be deleted
        self.wake = threading.Event()  # set by a start, a verb or a fencing: tick now
        self.ticks = 0
        # What the status says of the store (the actor adds where it is and any warning).
        self.store_info: dict[str, Any] = dict(store_info or {"where": store.where})
        self.owner = owner or default_owner()
        self.fenced: dict[str, Any] | None = None  # set once a newer controller holds the lease
        self._requests: dict[str, int] = {}  # verb call id -> the decision that applied it
        self._make_source = sources
        self._sources: dict[tuple[str, float], MetricSource] = {}
        self._poller = Poller(inline=inline_reads)
        # The lease first: from now on an older incarnation can write nothing.
        self.token = store.acquire(model, self.owner)
        log.info("controller of %s: lease taken by %s (token %d)", model, self.owner, self.token)
        self.core = ControllerCore.load(self.store, model, self.token)
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
            self._check_lease()
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
            try:
                self.core = ControllerCore.create(self.store, s, self.clock(), epoch, self.token)
            except Fenced as e:
                self._fence(e)
                raise
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
        for where, checks in (("checks", s.analysis.checks), ("guards", s.analysis.guards)):
            for i, c in enumerate(checks):
                if c.kind.startswith("promql_"):
                    try:
                        check_url(str(c.params.get("url", DEFAULT_URL)))
                    except ConfigError as e:
                        raise ConfigError(f"analysis.{where}[{i}].params.url: {e}") from None
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
        request: str | None = None,
    ) -> dict[str, Any]:
        """Apply a person's verb now (not at the next tick); a refused one raises
        ``IllegalTransition`` (409) and changes nothing. ``request``: the caller's id for this
        call; a call whose id was already applied (a retry after a lost answer) returns the
        status and applies nothing. ``Fenced`` (409) once a newer controller took over."""
        self._check_fenced()
        apps = self._apps() if self.core is not None else None
        capacity = self._capacity(self.core, apps or {}) if self.core is not None else {}
        with self._lock:
            core = self._need_core()
            if request and self._applied(core, request):
                log.info("verb %s (call %s) was applied already: not again", verb, request)
                return self.status()
            cmd = Command(verb, actor, full, candidate, reason, request or "")
            try:
                actions, decision = core.tick(self.clock(), command=cmd, capacity=capacity)
            except Fenced as e:
                self._fence(e)
                raise
            if request and decision is not None:
                self._requests[request] = decision.seq
                while len(self._requests) > RECENT_REQUESTS:
                    del self._requests[next(iter(self._requests))]
            try:
                self._apply(core, actions, decision)
            except Fenced as e:
                self._fence(e)
                raise
            except UnavailableError as e:
                raise NotCarriedOut(f"{verb} was decided and stored (decision {core.state.seq}),"
                                    f" but carrying it out failed: {e}; it is carried out again "
                                    "on a later tick or restart") from e
        self.wake.set()
        return self.status()

    def _applied(self, core: ControllerCore, request: str) -> bool:
        """Whether a verb call with this id was applied (in memory, else in the rollout's log:
        a restarted controller remembers what its predecessor applied)."""
        if request in self._requests:
            return True
        return any(e.get("request") == request
                   for e in self.store.history(core.rollout, REQUEST_LOOKBACK))

    def status(self) -> dict[str, Any]:
        """The rollout as the status page, the CLI and the Python API show it; ``allowed_verbs``
        are the verbs ``decide`` would accept now, ``final`` says the outcome is known."""
        with self._lock:
            core = self.core
            who = {"controller": {"owner": self.owner, "token": self.token},
                   "fenced": self.fenced, "store": dict(self.store_info)}
            if core is None:
                return {"model": self.model, "phase": "none", "rollout": None,
                        "allowed_verbs": [], "final": True, **who}
            s, spec = core.state, core.spec
            now = self.clock()
            return {
                **who,
                "model": self.model,
                "rollout": core.rollout,
                "attempt": s.attempt,
                "phase": str(s.phase),
                "final": s.phase in FINAL,
                "allowed_verbs": [] if self.fenced else allowed_verbs(s, spec),
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
                "down": dict(s.down),
                "phase_since": s.phase_since,
                "step_requests": s.step_requests,
                "step_need": self._step_need(core),
                "shadow_compared": s.shadow_compared,
                "checks": {c: [r.view() for r in rs] for c, rs in core.last_results.items()},
                "waiting_for": waiting_for(s, spec, core.last_results, now),
                "progress_deadline": deadline(s, spec, now),
                "alpha": spec.analysis.alpha,
                "notifiers": [n.shown() for n in spec.notifiers],  # URLs as scheme://host only
                "decisions": s.seq,
                "ticks": self.ticks,
                "now": now,
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
        """One tick: check the lease, collect, judge, decide, persist, act, then retire drained
        apps. A fenced controller does nothing (and its loop has ended)."""
        if self.fenced is not None or not self._lease_held():
            return None  # collecting would drain events the controller in charge needs
        parts = self._collect()
        core = self.core
        readings = self._read_sources(core)
        apps = self._apps() if core is not None and core.state.phase in WATCHED else None
        status = self._deploy_status(core, apps or {}) if core is not None else (frozenset(), {})
        capacity = self._capacity(core, apps or {}) if core is not None else {}
        with self._lock:
            self.ticks += 1
            if core is None or core is not self.core or self.fenced is not None:
                return None
            try:
                return self._step(core, parts, status, capacity, apps, readings)
            except Fenced as e:
                self._fence(e)
                return None

    def _step(self, core: ControllerCore, parts: list[Collected],
              status: tuple[frozenset[str], dict[str, str]], capacity: dict[str, int],
              apps: Mapping[str, AppStatus] | None,
              readings: dict[str, dict[str, list[dict[str, Any]]]] | None = None,
              ) -> Decision | None:
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
        if apps is not None:
            self._redeploy_missing(core, apps)
        s = core.state
        health = None
        if apps is not None and s.phase in WATCHED:
            health = app_health(apps, {v: version_app_name(self.model, v)
                                       for v in {s.stable, *s.active()}})
        top = max((p.epoch for p in parts), default=None)
        ahead = top if top is not None and top > s.epoch else None
        if ahead is not None:
            log.warning("the routers of %s hold epoch %d but the store's state is at epoch "
                        "%d (lost commits, or an older copy of the store): reconciling",
                        self.model, ahead, s.epoch)
        actions, decision = core.tick(self.clock(), events, shadow, requests, ready,
                                      failed, labelled=labelled, watermark=watermark,
                                      accounting=accounting, capacity=capacity,
                                      health=health, router_epoch=ahead, readings=readings)
        self._apply(core, actions, decision)
        pushed = any(a.kind == "routes" for a in actions)
        if parts and min(p.epoch for p in parts) < core.state.epoch and not pushed:
            # A router replica restarted with an older table: not part of a decision just
            # committed, so only while the lease is still this controller's.
            self._check_lease()
            self._push(core)
        self._retire_drained(core)
        return decision

    # -- actions -------------------------------------------------------------------------------

    def _apply(self, core: ControllerCore, actions: list[Action],
               decision: Decision | None = None) -> None:
        for a in actions:
            if a.kind == "routes":
                self._push(core)
            elif a.kind == "deploy" and a.version:
                self._request_deploy(core.spec, a.version, a.replicas)
            elif a.kind == "scale" and a.version:
                self._scale(core.spec, a.version, a.replicas)
            elif a.kind == "delete" and a.version:
                # Not now: requests routed with the previous table may still be on their way
                # to this version. It is deleted once ``drain_s`` has passed (and it is unused).
                self._retiring.setdefault(a.version, self.clock() + core.spec.drain_s)
            elif a.kind == "notify":
                self._notify(core, a.message)
        if decision is not None:
            self.store.mark_applied(core.rollout, decision.seq, token=self.token)

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

    def _apps(self) -> Mapping[str, AppStatus] | None:
        """Serve's applications, read once per tick (None when Serve does not answer: deploys
        and moves that wait on it wait for the next tick, and nothing is judged of health)."""
        try:
            return self.port.applications()
        except Exception as e:
            log.debug("applications failed: %s", e)
            return None

    def _capacity(self, core: ControllerCore, apps: Mapping[str, AppStatus]) -> dict[str, int]:
        """Running replicas of the rollout's versions (what a move waiting for capacity needs;
        empty outside the phases that move traffic). Read from the same ``AppStatus`` as
        health (``capacity.running``): an app that is gone, failed or being deleted has none."""
        s = core.state
        if s.phase not in ACTIVE:
            return {}
        out = {}
        for v in {s.stable, *s.active()}:
            n = running(apps.get(version_app_name(self.model, v)))
            if n is not None:
                out[v] = n
        return out

    def _redeploy_missing(self, core: ControllerCore, apps: Mapping[str, AppStatus]) -> None:
        """While deploying, a version whose app is not there (its deploy request was refused
        or lost) or is being deleted (a retry right after a rollback) is asked for again;
        deploying is idempotent, so an app on its way is left alone."""
        if core.state.phase != Phase.DEPLOYING:
            return
        for v in core.state.active():
            app = apps.get(version_app_name(self.model, v))
            if app is not None and app.status != DELETING:
                continue
            self._request_deploy(core.spec, v, core.state.sizes.get(v))

    def _request_deploy(self, spec: RolloutSpec, version: str, replicas: int | None) -> None:
        """A deploy Serve refuses (busy, restarting) is logged, not raised: the decision that
        asked for it is stored, and ``_redeploy_missing`` asks again on the next tick."""
        try:
            self._deploy(spec, version, replicas)
        except Exception as e:
            log.warning("deploying %s of %s was not accepted (%s: %s); asked again on the next "
                        "tick", version, self.model, type(e).__name__, e, exc_info=True)

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

    def _read_sources(self, core: ControllerCore | None
                      ) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Start the reads of PromQL checks that are due and return the readings that have
        finished (per candidate and check), without waiting for any. Reads belong to one
        rollout attempt: those of an earlier one, or of a withdrawn candidate, are dropped."""
        wanted: set[Any] = set()
        s = core.state if core is not None else None
        if core is not None and s is not None and s.phase in ACTIVE:
            now = self.clock()
            for cand in s.active():
                for name, j in core.judges.get(cand, {}).items():
                    if not isinstance(j, PromQLJudge):
                        continue
                    key = (core.rollout, s.attempt, cand, name)
                    wanted.add(key)
                    queries = j.queries(self.model, s.stable, cand)
                    self._poller.poll(key, now, j.interval_s,
                                      self._reader(j.url, j.timeout_s, queries, now))
        self._poller.keep(wanted)
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for done, reading in self._poller.harvest():
            assert isinstance(done, tuple)
            out.setdefault(done[2], {}).setdefault(done[3], []).append(reading)
        return out

    def _reader(self, url: str, timeout_s: float, queries: dict[str, str], at: float
                ) -> Callable[[], dict[str, Any]]:
        """The read of one check's queries (run on the poller's pool)."""
        try:
            source = self._sources.get((url, timeout_s))
            if source is None:
                source = self._sources[(url, timeout_s)] = self._make_source(url, timeout_s)
        except ConfigError as e:  # the host list changed since the start
            problem = {"t": at, "error": "unavailable", "role": "candidate",
                       "detail": f"no source for {url[:100]}: {e}"[:300]}
            return lambda: problem
        return lambda: take_reading(source, queries, at)

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
        try:
            self._resume_actions(core)
        except Fenced as e:  # a newer controller took over meanwhile: it resumes, not this one
            self._fence(e)
            return
        # Apps a previous incarnation meant to delete: retire them again after a fresh drain.
        prefix = version_app_name(self.model, "")
        needed = self._needed(core)
        for app in self.port.applications():
            version = app[len(prefix):] if app.startswith(prefix) else None
            if version and version not in needed and self._is_ours(version):
                self._retiring.setdefault(version, self.clock() + core.spec.drain_s)

    def _resume_actions(self, core: ControllerCore) -> None:
        """Re-apply the last decision if it was not marked applied, then push the table: only
        while this controller holds the lease (``Fenced`` otherwise), and the table only if the
        routers are not ahead of the store (the first tick reconciles them, logged)."""
        row = self.store.get(core.rollout)
        if row is not None and row.applied_seq < core.state.seq:
            last = self.store.history(core.rollout, limit=1)
            if last:
                actions = [Action.from_dict(a) for a in last[-1]["actions"]]
                log.warning("re-applying %d actions of decision %s after a restart",
                            len(actions), core.state.seq)
                self._check_lease()
                self._apply(core, actions)
                self.store.mark_applied(core.rollout, core.state.seq, token=self.token)
        routers = self._router_epoch()
        if routers > core.state.epoch:
            log.warning("the routers of %s hold epoch %d, the store's state epoch %d: the first "
                        "tick reconciles them", self.model, routers, core.state.epoch)
            return
        self._check_lease()
        try:
            self._push(core)
        except Exception as e:
            log.warning("could not push the table after restart: %s", e)
    def _is_ours(self, version: str) -> bool:
        """Only versions named in this model's rollouts are ever deleted by the controller."""
        for rid in self.store.rollouts(self.model):
            row = self.store.get(rid)
            spec = row.spec if row is not None else {}
            names = [spec.get("stable", {}), *spec.get("candidates", [])]
            if any(v.get("name") == version for v in names):
                return True
        return False

    # -- fencing -------------------------------------------------------------------------------

    def _lease_held(self) -> bool:
        """Whether the store's lease of the model is still this controller's; a lost one fences
        it. A store that cannot be read raises (the tick fails and is tried again)."""
        if self.store.holds(self.model, self.token):
            return True
        self._fence(Fenced(f"the controller lease of {self.model!r} in the store "
                           f"{self.store.where} is no longer token {self.token} ({self.owner}): "
                           "a newer controller holds it"))
        return False

    def _check_lease(self) -> None:
        """``Fenced`` unless this controller still holds the lease (before an action that no
        decision it just committed covers)."""
        self._check_fenced()
        if not self._lease_held():
            self._check_fenced()

    def _check_fenced(self) -> None:
        if self.fenced is not None:
            raise Fenced(f"this controller of {self.model!r} ({self.owner}) was replaced by a "
                         f"newer one and no longer acts: {self.fenced['reason']}")

    def _fence(self, e: Fenced) -> None:
        """Stop acting for good: the loop ends, verbs raise ``Fenced``, the status says why."""
        if self.fenced is None:
            log.error("controller of %s (%s, token %d) is fenced and stops: %s",
                      self.model, self.owner, self.token, e)
            self.fenced = {"at": self.clock(), "reason": str(e), "token": self.token}
        self.wake.set()

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
    """Call ``controller.step()`` every ``controller.tick_s`` until ``stop`` is set or the
    controller is fenced (a newer one holds the store's lease). A failed
    tick is logged and the next one runs on schedule; a start or a verb (``controller.wake``)
    brings the next tick forward, so an idle controller's longer wait delays no rollout."""
    while not stop.is_set() and controller.fenced is None:
        t0 = monotonic()
        controller.wake.clear()
        try:
            controller.step()
        except Exception:
            log.exception("controller tick failed")
        if controller.fenced is not None:
            return  # a newer controller holds the lease: this one never acts again
        wait = max(0.0, controller.tick_s - (monotonic() - t0))
        while wait > 0 and not stop.is_set() and not controller.wake.is_set():
            controller.wake.wait(min(wait, 0.5))  # stop is seen within half a second
            wait = max(0.0, controller.tick_s - (monotonic() - t0))
