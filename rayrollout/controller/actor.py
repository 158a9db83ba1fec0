"""``RolloutController``: the named, detached, restartable Ray actor that runs rollouts.

All Ray and Serve calls of the control plane are made here. Every tick (``analysis.tick_s``)
it collects the routers' aggregates and events, lets ``ControllerCore`` judge and decide (which
persists before returning), then carries out the actions: push a routing table to every router
replica, deploy or delete version apps, notify.

Restart safety: ``__init__`` reloads the rollout from the store; if the last decision's actions
were not marked applied, they are applied again. Every action is idempotent (a table push is
ignored by routers that already have its epoch; deploying a running app and deleting a deleted
one do nothing), so nothing is done twice in effect and no log entry is written twice.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from ray import serve

from rayrollout.aggregates import Collected
from rayrollout.config import router_app_name, version_app_name
from rayrollout.controller.core import ControllerCore, replay_rollout
from rayrollout.controller.phases import ACTIVE, Phase
from rayrollout.controller.state import Action, Command, Decision
from rayrollout.controller.store import Store
from rayrollout.errors import Conflict
from rayrollout.notify import make_notifier
from rayrollout.routing import RoutingTable
from rayrollout.spec import RolloutSpec

log = logging.getLogger("rayrollout.controller")

NAMESPACE = "rayrollout"


def controller_name(model: str) -> str:
    return f"rayrollout-controller-{model}"


def _status(app: Any) -> str:
    """An application's status name ("RUNNING", "DEPLOY_FAILED", ...)."""
    return str(getattr(app.status, "value", app.status))


def default_store_path(model: str) -> str:
    return str(Path.home() / ".rayrollout" / f"{model}.db")


class RolloutController:
    def __init__(self, model: str, store_path: str, tick_s: float = 1.0) -> None:
        self.model = model
        self.store = Store(store_path)
        self.tick_s = tick_s
        self._lock = threading.RLock()
        self._router = serve.get_deployment_handle("Router", router_app_name(model))
        self.notifications: list[dict[str, Any]] = []
        self._retiring: dict[str, float] = {}  # version -> when its app may be deleted
        self.ticks = 0
        self.core = ControllerCore.load(self.store, model)
        if self.core is not None:
            self.tick_s = self.core.spec.analysis.tick_s
            self._resume()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rollout-loop", daemon=True)
        self._thread.start()

    # -- verbs ---------------------------------------------------------------------------------

    def start(self, spec: dict[str, Any], actor: str = "api") -> dict[str, Any]:
        """Start a rollout of ``spec``. Starting the same spec again is a no-op."""
        s = RolloutSpec.model_validate(spec)
        with self._lock:
            cur = self.core
            if cur is not None and cur.spec.digest() == s.digest() and (
                cur.state.phase in ACTIVE or cur.state.phase == Phase.PENDING
            ):
                return self.status()
            if cur is not None and (cur.state.phase in ACTIVE or cur.state.phase == Phase.PENDING):
                raise Conflict(f"a rollout of {self.model} is in phase {cur.state.phase}: "
                               "abort it or let it finish first")
            if cur is not None and cur.state.stable != s.stable.name:
                raise Conflict(f"spec.stable={s.stable.name!r} but {cur.state.stable!r} is "
                               "stable now")
            if cur is not None and cur.state.phase == Phase.PROMOTED and cur.state.previous_stable:
                self._apply(cur, [Action("delete", version=cur.state.previous_stable)])
            epoch = cur.state.epoch if cur is not None else self._router_epoch()
            self.tick_s = s.analysis.tick_s
            self._deploy(s, s.stable.name)
            self.core = ControllerCore.create(self.store, s, time.time(), epoch)
            log.info("rollout %s of %s started by %s", self.core.rollout, s.model, actor)
        return self.status()

    def command(
        self,
        verb: str,
        actor: str = "api",
        full: bool = False,
        candidate: str | None = None,
        reason: str = "",
    ) -> dict[str, Any]:
        """Apply a person's verb now (not at the next tick); IllegalTransition -> Conflict."""
        with self._lock:
            core = self._need_core()
            cmd = Command(verb, actor, full, candidate, reason)
            actions, decision = core.tick(time.time(), command=cmd)
            self._apply(core, actions, decision)
        return self.status()

    def status(self) -> dict[str, Any]:
        with self._lock:
            core = self.core
            if core is None:
                return {"model": self.model, "phase": "none", "rollout": None}
            s, spec = core.state, core.spec
            steps = [st.model_dump() for st in spec.strategy.steps]
            return {
                "model": self.model,
                "rollout": core.rollout,
                "attempt": s.attempt,
                "phase": str(s.phase),
                "step": s.step,
                "steps": steps,
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
                "shadow_compared": s.shadow_compared,
                "checks": {c: [r.to_dict() for r in rs] for c, rs in core.last_results.items()},
                "alpha": spec.analysis.alpha,
                "decisions": s.seq,
                "ticks": self.ticks,
                "now": time.time(),
            }

    def history(self, limit: int | None = None, all_rollouts: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            rollout = None if all_rollouts or self.core is None else self.core.rollout
            return self.store.history(rollout, limit)

    def verify(self) -> dict[str, Any]:
        ok, msg = self.store.verify()
        return {"ok": ok, "message": msg}

    def replay(self, rollout: int | None = None) -> dict[str, Any]:
        with self._lock:
            rid = rollout if rollout is not None else self._need_core().rollout
            same, replayed, recorded = replay_rollout(self.store, rid)
        return {"rollout": rid, "identical": same, "replayed": len(replayed),
                "recorded": len(recorded)}

    def stop(self) -> None:
        self._stop.set()

    def ping(self) -> str:
        return "ok"

    def table(self) -> dict[str, Any] | None:
        """The routing table in force (a restarted router replica adopts it at once)."""
        with self._lock:
            return self._table(self.core).to_dict() if self.core is not None else None

    def pid(self) -> int:
        """This incarnation's process id (a restart gives a new one)."""
        return os.getpid()

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.step()
            except Exception:
                log.exception("controller tick failed")
            self._stop.wait(max(0.0, self.tick_s - (time.monotonic() - t0)))

    def step(self) -> Decision | None:
        """One tick: collect, judge, decide, persist, act, then retire drained apps.

        The slow calls (collecting from the routers, reading app status) happen before the lock
        is taken, so a person's verb never waits behind them."""
        parts = self._collect()
        core = self.core
        status = self._app_status(core) if core is not None else (frozenset(), {})
        with self._lock:
            self.ticks += 1
            if core is None or core is not self.core:
                return None
            events = sorted((e for p in parts for e in p.events), key=lambda e: e.t)
            shadow = sorted((e for p in parts for e in p.shadow), key=lambda e: e.t)
            labelled = sorted((e for p in parts for e in p.labelled), key=lambda e: e.t)
            requests: dict[str, int] = defaultdict(int)
            for p in parts:
                for v, st in p.stats.items():
                    requests[v] += st.requests - st.rejected
            ready, failed = status
            actions, decision = core.tick(time.time(), events, shadow, dict(requests), ready,
                                          failed, labelled=labelled)
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
                self._deploy(core.spec, a.version)
            elif a.kind == "delete" and a.version:
                # Not now: requests routed with the previous table may still be on their way
                # to this version. It is deleted once ``drain_s`` has passed (and it is unused).
                self._retiring.setdefault(a.version, time.time() + core.spec.drain_s)
            elif a.kind == "notify":
                event = {"t": time.time(), "model": self.model, "rollout": core.rollout,
                         "phase": str(core.state.phase), "epoch": core.state.epoch,
                         "message": a.message}
                self.notifications.append(event)
                del self.notifications[:-100]
                for n in core.spec.notifiers:
                    make_notifier(n).notify(event)
        if decision is not None:
            self.store.mark_applied(core.rollout, decision.seq)

    def _table(self, core: ControllerCore) -> RoutingTable:
        s, spec = core.state, core.spec
        flags = {}
        for name in s.weights:
            try:
                flags[name] = dict(spec.version(name).flags)
            except KeyError:
                continue
        sh = spec.strategy.shadow
        return RoutingTable(
            model=self.model,
            epoch=s.epoch,
            weights=dict(s.weights),
            shadow=s.shadow,
            shadow_fraction=s.shadow_fraction,
            shadow_max_in_flight=sh.max_in_flight if sh else 64,
            flags={k: v for k, v in flags.items() if v},
        )

    def _push(self, core: ControllerCore) -> None:
        table = self._table(core).to_dict()
        self._router.broadcast("set_routes", table).results(timeout_s=10)

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
        now, needed = time.time(), self._needed(core)
        for version, at in list(self._retiring.items()):
            if version in needed:
                del self._retiring[version]  # needed again (retry, undo): keep it
            elif now >= at:
                serve.delete(version_app_name(self.model, version), _blocking=False)
                del self._retiring[version]

    def _deploy(self, spec: RolloutSpec, version: str) -> None:
        from rayrollout.serving.app import build_version

        self._retiring.pop(version, None)
        app = version_app_name(self.model, version)
        st = serve.status().applications.get(app)
        if st is not None and _status(st) not in ("DEPLOY_FAILED", "DELETING"):
            return  # already there (or on its way): deploying again would restart it
        cfg = spec.version(version).for_model(self.model)
        cfg = cfg.model_copy(update={"artifact": str(cfg.artifact_path())})
        target = serve.RunTarget(build_version(cfg), name=app, route_prefix=None)
        serve.run_many([target], wait_for_ingress_deployment_creation=False,
                       wait_for_applications_running=False)

    def _app_status(self, core: ControllerCore) -> tuple[frozenset[str], dict[str, str]]:
        if core.state.phase != Phase.DEPLOYING:
            return frozenset(), {}
        apps = serve.status().applications
        ready, failed = set(), {}
        for v in core.state.active():
            st = apps.get(version_app_name(self.model, v))
            if st is None:
                continue
            if _status(st) == "RUNNING":
                ready.add(v)
            elif _status(st) == "DEPLOY_FAILED":
                failed[v] = (st.message or "deploy failed")[:500]
        return frozenset(ready), failed

    def _collect(self) -> list[Collected]:
        try:
            results = self._router.broadcast("collect").results(timeout_s=10)
        except Exception as e:  # no router yet, or one is restarting: try next tick
            log.debug("collect failed: %s", e)
            return []
        return [Collected.from_dict(r) for r in results]

    def _router_epoch(self) -> int:
        try:
            tables = self._router.broadcast("get_routes").results(timeout_s=10)
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
        prefix = f"{self.model}-"
        needed = self._needed(core)
        for app in serve.status().applications:
            version = app[len(prefix):] if app.startswith(prefix) else None
            if version and version not in needed and self._is_ours(core, version):
                self._retiring.setdefault(version, time.time() + core.spec.drain_s)

    def _is_ours(self, core: ControllerCore, version: str) -> bool:
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
