"""``FakeServePort``: Ray Serve in memory, for driving the control plane without Ray.

Apps are entries in a dict (the ingress is one of them, ``INGRESS_APP``, serving every model),
each model's router on every ingress replica is a ``FakeRouter`` object with a real ``Recorder``
(the data plane's pure aggregates), and controllers are plain ``RolloutController`` objects on
the same clock. A test moves the clock, records requests on the routers, calls
``controller.step()`` and looks at what the controller did to the "cluster": which apps exist,
which table every replica holds, what was deleted when. ``restart_controller`` rebuilds a
controller from its store, as Ray does after a crash.

What it models of Ray Serve, on purpose:

* deploying returns at once; an app becomes ``RUNNING`` when the test says so
  (``set_running``) or at once with ``auto_ready=True``; ``fail_deploy`` makes one fail;
* a table push reaches every replica and a replica keeps the larger epoch (``Router.set_routes``);
* ``collect`` drains every replica; ``reachable = False`` makes it fail like an unreachable router;
* controller calls cross a serialisation boundary: arguments and results are deep-copied, and
  errors come back as the caller sees them through Ray (``as_caller_error``).
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rayrollout.controller.controller import Clock, RolloutController
from rayrollout.controller.port import (
    DEPLOY_FAILED,
    DEPLOYING,
    RUNNING,
    AppStatus,
    ControllerHandle,
    as_caller_error,
    needs_deploy,
)
from rayrollout.controller.store import open_store
from rayrollout.dataplane.aggregates import Recorder
from rayrollout.dataplane.events import LabelledEvent, Outcome, RequestEvent, ShadowEvent
from rayrollout.dataplane.routing import RoutingTable
from rayrollout.errors import NotFound, UnavailableError
from rayrollout.names import INGRESS_APP, version_app_name
from rayrollout.notify import Notifier, RecordingNotifier
from rayrollout.spec import NotifierSpec, RouterConfig, VersionConfig


class FakeRouter:
    """One router replica of the control plane's view: a table with an epoch, and a real
    ``Recorder`` that tests fill with requests."""

    def __init__(self, table: RoutingTable, replica: str) -> None:
        self.table = table
        self.recorder = Recorder(replica)

    def set_routes(self, table: Mapping[str, Any]) -> int:
        new = RoutingTable.from_dict(dict(table))
        if new.epoch > self.table.epoch:
            self.table = new
        return self.table.epoch

    def collect(self, now: float) -> dict[str, Any]:
        return self.recorder.collect(self.table.epoch, now).to_dict()

    def request(
        self,
        t: float,
        version: str,
        latency_ms: float = 10.0,
        outcome: Outcome = Outcome.OK,
        prediction: float = math.nan,
    ) -> None:
        """Record one served request that arrived at ``t`` and is already done."""
        self.arrive(t)
        self.complete(t, version, latency_ms, outcome, prediction)

    def arrive(self, t: float) -> None:
        """A request arrived at ``t`` and is in flight (its event comes with ``complete``)."""
        self.recorder.arrive(t)

    def complete(
        self,
        t: float,
        version: str,
        latency_ms: float,
        outcome: Outcome = Outcome.OK,
        prediction: float = math.nan,
        weight: float | None = None,
    ) -> None:
        """The request that arrived at ``t`` completes now, as the router records it."""
        w = self.table.percent().get(version, 0.0) / 100.0 if weight is None else weight
        self.recorder.record(RequestEvent(t, version, w, latency_ms, outcome, prediction,
                                          "", True, self.table.epoch))
        self.recorder.leave(t)

    def shadow(self, t: float, primary: str, shadow: str, disagreement: float = 0.0) -> None:
        self.recorder.record_shadow(ShadowEvent(t, primary, shadow, disagreement, 0.0, 5.0, True))

    def label(self, event: LabelledEvent) -> None:
        self.recorder.record_label(event)


@dataclass
class FakeApp:
    status: str
    config: VersionConfig | RouterConfig
    message: str = ""
    deployed_at: float = 0.0
    target: int = 1  # replicas asked for (the floor of an autoscaling version)
    running: int = 0  # replicas running


@dataclass
class FakeServePort:
    """An in-memory ``ServePort``; see the module docstring."""

    clock: Clock
    auto_ready: bool = True
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    apps: dict[str, FakeApp] = field(default_factory=dict)
    routers: dict[str, list[FakeRouter]] = field(default_factory=dict)  # per model and replica
    router_configs: dict[str, RouterConfig] = field(default_factory=dict)  # models served
    ingress_replicas: int = 0  # replicas of the ingress (0: not deployed)
    controllers: dict[str, RolloutController] = field(default_factory=dict)
    store_paths: dict[str, str] = field(default_factory=dict)
    deleted: list[tuple[float, str]] = field(default_factory=list)  # (when, app)
    failing: dict[str, str] = field(default_factory=dict)  # app -> deploy error
    scaled: list[tuple[float, str, int]] = field(default_factory=list)  # (when, version, size)
    reachable: bool = True

    # -- applications ---------------------------------------------------------------------------

    def deploy_version(self, config: VersionConfig, replicas: int | None = None) -> None:
        name = version_app_name(config.model, config.name)
        if not needs_deploy(self.applications().get(name)):
            return
        if name in self.failing:
            self.apps[name] = FakeApp(DEPLOY_FAILED, config, self.failing[name], self.clock())
            return
        target = _target(config, replicas)
        status = RUNNING if self.auto_ready else DEPLOYING
        self.apps[name] = FakeApp(status, config, "", self.clock(), target,
                                  target if self.auto_ready else 0)
        self.scaled.append((self.clock(), config.name, target))

    def scale_version(self, config: VersionConfig, replicas: int | None) -> None:
        app = self.apps[version_app_name(config.model, config.name)]
        app.target = _target(config, replicas)
        if self.auto_ready or app.running > app.target:
            app.running = app.target  # removing replicas is immediate, adding them is not
        self.scaled.append((self.clock(), config.name, app.target))

    def set_replicas(self, model: str, version: str, running: int | None = None) -> None:
        """``running`` replicas of ``version`` are up (default: as many as it asked for)."""
        app = self.apps[version_app_name(model, version)]
        app.running = app.target if running is None else running

    def deploy_router(self, config: RouterConfig, route_prefix: str = "/",
                      replicas: int | None = None) -> None:
        """Serve the model on the ingress, deployed with ``replicas`` (default: the config's)
        if it is not there; the ingress grows to the replicas a model asks for."""
        if config.model in self.router_configs:
            return
        if route_prefix not in ("", "/") and config.path_prefix is None:
            config = config.model_copy(update={"path_prefix": route_prefix.rstrip("/")})
        n = replicas if replicas is not None else config.deployment.num_replicas
        if INGRESS_APP not in self.apps:
            self.apps[INGRESS_APP] = FakeApp(RUNNING, config, "", self.clock(), n, n)
            self.ingress_replicas = n
        elif n > self.ingress_replicas:  # new replicas serve every model, from their configs
            for m, cfg in self.router_configs.items():
                self.routers[m] += [FakeRouter(cfg.routing_table(0), f"{m}-router-{i}")
                                    for i in range(self.ingress_replicas, n)]
            self.ingress_replicas = n
        self.router_configs[config.model] = config
        self.routers[config.model] = [
            FakeRouter(config.routing_table(0), f"{config.model}-router-{i}")
            for i in range(self.ingress_replicas)
        ]

    def remove_router(self, model: str) -> None:
        self.router_configs.pop(model, None)
        self.routers.pop(model, None)

    def delete_app(self, name: str) -> None:
        if self.apps.pop(name, None) is not None:
            self.deleted.append((self.clock(), name))
        if name == INGRESS_APP:  # every model's routers go with it
            self.routers.clear()
            self.router_configs.clear()
            self.ingress_replicas = 0

    def applications(self) -> dict[str, AppStatus]:
        return {n: AppStatus(a.status, a.message, a.running) for n, a in self.apps.items()}

    def set_running(self, model: str, version: str) -> None:
        """A deploying version app finished starting (with every replica it asked for)."""
        app = self.apps[version_app_name(model, version)]
        app.status, app.running = RUNNING, app.target

    def fail_deploy(self, model: str, version: str, message: str) -> None:
        """Deploying ``version`` fails with ``message`` (now, if it is deploying)."""
        name = version_app_name(model, version)
        self.failing[name] = message
        app = self.apps.get(name)
        if app is not None and app.status == DEPLOYING:
            app.status, app.message = DEPLOY_FAILED, message

    def versions(self, model: str) -> set[str]:
        """The versions of ``model`` that have an app now."""
        prefix = version_app_name(model, "")
        return {n[len(prefix):] for n in self.apps if n.startswith(prefix)}

    # -- router replicas ------------------------------------------------------------------------

    def _replicas(self, model: str) -> list[FakeRouter]:
        rs = self.routers.get(model)
        if not rs or not self.reachable:
            raise UnavailableError(f"no router of model {model!r} can be reached")
        return rs

    def push_table(self, model: str, table: Mapping[str, Any]) -> list[int]:
        return [r.set_routes(copy.deepcopy(dict(table))) for r in self._replicas(model)]

    def collect(self, model: str) -> list[dict[str, Any]]:
        return [r.collect(self.clock()) for r in self._replicas(model)]

    def router_tables(self, model: str) -> list[dict[str, Any]]:
        return [r.table.to_dict() for r in self._replicas(model)]

    def restart_router(self, model: str, i: int = 0) -> None:
        """Replica ``i`` of the ingress restarts: ``model``'s router comes back with its
        config's table (epoch 0) and nothing recorded (the other models' routers of that
        replica are not this test's concern)."""
        cfg = self.router_configs[model]
        self.routers[model][i] = FakeRouter(cfg.routing_table(0), f"{model}-router-{i}-new")

    # -- the controller -------------------------------------------------------------------------

    def _notify(self, spec: NotifierSpec) -> Notifier:
        return self.notifier

    def controller(
        self, model: str, store_path: str | None = None, create: bool = True
    ) -> ControllerHandle:
        c = self.controllers.get(model)
        if c is None:
            if not create:
                raise NotFound(f"no rollout controller for model {model!r}")
            path = self.store_paths.get(model) or store_path or ":memory:"
            self.store_paths[model] = path
            c = RolloutController(model, open_store(path, model), self, self.clock, self._notify)
            self.controllers[model] = c
        return LocalControllerHandle(c)

    def restart_controller(self, model: str) -> RolloutController:
        """The controller process dies and comes back: a new object over the same store."""
        old = self.controllers.pop(model)
        path = self.store_paths[model]
        if path == ":memory:":
            raise ValueError("a controller with an in-memory store cannot be restarted")
        old.store.close()
        self.controller(model)
        return self.controllers[model]


def _target(config: VersionConfig, replicas: int | None) -> int:
    if replicas is not None:
        return replicas
    fixed = config.replicas
    if fixed is not None:
        return fixed
    auto = config.autoscaling_config or {}
    low = auto.get("initial_replicas", auto.get("min_replicas", 1))
    return int(low) if isinstance(low, int) else 1


class LocalControllerHandle:
    """Calls an in-process controller the way a Ray actor handle would: copies in and out,
    errors translated as the caller would see them."""

    def __init__(self, controller: RolloutController) -> None:
        self.controller = controller

    def call(self, method: str, *args: Any) -> Any:
        fn: Callable[..., Any] = getattr(self.controller, method)
        try:
            result = fn(*copy.deepcopy(args))
        except Exception as e:
            raise as_caller_error(e) from None
        return copy.deepcopy(result)

    async def acall(self, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.call, method, *args)
