"""``RayServePort``: the control plane's port (``rayrollout.controller.port.ServePort``) on a real
Ray Serve, and ``RayControllerHandle``, a controller actor seen through ``ControllerHandle``.

All Ray calls of the control plane are made here: deploying and deleting applications, reading
their status, adding models to the one ingress application and removing them (with the catalog
its replicas read as they start), broadcasting to every ingress replica, finding or creating the
controller actor. Ray's errors are translated at this boundary: a controller's own exception
comes back as itself, an actor that died as ``UnavailableError``, a missing actor as
``NotFound``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import ray
from ray import serve
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from rayrollout._version import __version__
from rayrollout.controller.port import DEPLOY_FAILED, AppStatus, as_caller_error, needs_deploy
from rayrollout.errors import NotFound, UnavailableError
from rayrollout.names import (
    INGRESS_APP,
    NAMESPACE,
    ROUTER_DEPLOYMENT,
    VERSION_DEPLOYMENT,
    controller_name,
)
from rayrollout.serving.actor import create_controller_actor
from rayrollout.serving.ingress import catalog_put, ingress_app
from rayrollout.serving.version import route_prefix, version_app
from rayrollout.spec import RouterConfig, RouterDeployment, VersionConfig

BROADCAST_TIMEOUT_S = 10.0
INGRESS_RUNNING_TIMEOUT_S = 120.0  # adding a model waits this long for a deploying ingress
_INGRESS_KEY = "ingress"  # catalog: the deployment options the port deployed the ingress with

log = logging.getLogger("rayrollout.port")


def _status_name(app: Any) -> str:
    return str(getattr(app.status, "value", app.status))


def _message(app: Any) -> str:
    """Serve's message about an app; for a failed one, with the error of each failed
    deployment (a replica's constructor raising: an artifact that cannot be fetched, a
    digest that does not match), as its last ``Type: message`` line."""
    msg = str(app.message or "")
    if _status_name(app) != DEPLOY_FAILED:
        return msg
    for name, dep in (getattr(app, "deployments", None) or {}).items():
        text = str(getattr(dep, "message", "") or "")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        telling = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b.*: ", ln)]
        if telling or lines:
            msg += f" {name}: {(telling or lines)[-1]}"
    return msg


class RayServePort:
    """The ``ServePort`` of a Ray cluster (the driver, a router replica or the controller)."""

    def __init__(self, broadcast_timeout_s: float = BROADCAST_TIMEOUT_S) -> None:
        self.timeout_s = broadcast_timeout_s
        self._routers: dict[str, Any] = {}
        self._ingress: dict[str, str] = {}  # app -> its ingress deployment

    # -- applications ---------------------------------------------------------------------------

    def deploy_version(self, config: VersionConfig, replicas: int | None = None) -> None:
        if not needs_deploy(self.applications().get(config.app_name)):
            return
        self._run_version(config, replicas)

    def scale_version(self, config: VersionConfig, replicas: int | None) -> None:
        # The same deployment version with another size: Serve adds or removes replicas.
        self._run_version(config, replicas)

    def _run_version(self, config: VersionConfig, replicas: int | None) -> None:
        target = serve.RunTarget(version_app(config, replicas), name=config.app_name,
                                 route_prefix=route_prefix(config))
        serve.run_many([target], wait_for_ingress_deployment_creation=False,
                       wait_for_applications_running=False)

    def deploy_router(self, config: RouterConfig, route_prefix: str = "/") -> None:
        """Serve ``config.model`` on the ingress: recorded in the catalog, then added to every
        running replica (the ingress is deployed first if it is not there); a model served
        already is left as it is. ``route_prefix`` other than ``/`` becomes the model's path
        prefix (``RouterConfig.path_prefix``) unless its config names one. Returns once every
        replica that answered serves the model; none answering is ``UnavailableError``."""
        if route_prefix not in ("", "/") and config.path_prefix is None:
            config = config.model_copy(update={"path_prefix": route_prefix.rstrip("/")})
        catalog_put(config.model, config)
        if needs_deploy(self.applications().get(INGRESS_APP)):
            self._run_ingress(config.deployment)  # its replicas read the model in the catalog
            return
        self._scale_ingress(config.deployment)
        self._wait_ingress_running()
        answers = self._broadcast_all("add_model", config.model_dump(mode="json"))
        log.info("model %r added to %d ingress replicas", config.model, len(answers))

    def remove_router(self, model: str) -> None:
        """Stop serving ``model`` on the ingress: a tombstone in the catalog (a replica started
        later does not serve it either), then removed from every running replica. Another
        model's traffic is not touched; the ingress itself stays."""
        catalog_put(model, None)
        if INGRESS_APP in self.applications():
            # no replica up: those that start read the tombstone
            with contextlib.suppress(UnavailableError):
                self._broadcast_all("remove_model", model)
        self._routers.pop(model, None)

    # -- the ingress ------------------------------------------------------------------------------

    def _run_ingress(self, d: RouterDeployment) -> None:
        """Deploy the ingress with no declared models (they all come from the catalog), at
        ``/``, versioned so that a later scale-up is a light update of the same replicas."""
        from ray.experimental import internal_kv

        digest = hashlib.sha256(json.dumps(
            [__version__, d.max_ongoing_requests, d.num_cpus]).encode()).hexdigest()[:16]
        serve.run(ingress_app([], RayServePort, d, version=digest), name=INGRESS_APP,
                  route_prefix="/")
        internal_kv._internal_kv_put(_INGRESS_KEY, d.model_dump_json(), overwrite=True,
                                     namespace=NAMESPACE)

    def _scale_ingress(self, d: RouterDeployment) -> None:
        """More ingress replicas when a model asks for more than the ingress has, if the port
        deployed it (an ingress of a config is sized by its config)."""
        from ray.experimental import internal_kv

        raw = internal_kv._internal_kv_get(_INGRESS_KEY, namespace=NAMESPACE)
        if raw is None:
            return
        have = RouterDeployment.model_validate_json(raw)
        if d.num_replicas > have.num_replicas:
            log.info("ingress: %d replicas (was %d)", d.num_replicas, have.num_replicas)
            self._run_ingress(have.model_copy(update={"num_replicas": d.num_replicas}))

    def _wait_ingress_running(self) -> None:
        deadline = time.monotonic() + INGRESS_RUNNING_TIMEOUT_S
        while True:
            st = self.applications().get(INGRESS_APP)
            if st is not None and st.status == "RUNNING":
                return
            if time.monotonic() > deadline:
                raise UnavailableError(f"the ingress is not running: {st}")
            time.sleep(0.2)

    def delete_app(self, name: str) -> None:
        serve.delete(name, _blocking=False)

    def applications(self) -> Mapping[str, AppStatus]:
        return {name: AppStatus(_status_name(st), _message(st), self._running(name, st))
                for name, st in serve.status().applications.items()}

    def _running(self, app: str, st: Any) -> int:
        """Running replicas of the app's ingress deployment (-1 when not known)."""
        deployments = getattr(st, "deployments", None) or {}
        name = self._ingress.get(app)
        if name is None:
            if VERSION_DEPLOYMENT in deployments:
                name = VERSION_DEPLOYMENT
            elif len(deployments) == 1:
                name = next(iter(deployments))
            else:  # the user's composed app: ask Serve which deployment is its ingress
                try:
                    name = serve.get_app_handle(app).deployment_name
                except Exception:
                    return -1
            self._ingress[app] = name
        dep = deployments.get(name)
        if dep is None:
            return -1
        states = getattr(dep, "replica_states", None) or {}
        return int(sum(n for s, n in states.items() if str(getattr(s, "value", s)) == "RUNNING"))

    # -- router replicas ------------------------------------------------------------------------

    def _router(self, model: str) -> Any:
        """The ingress's handle, as the routers of ``model`` are reached (kept per model)."""
        h = self._routers.get(model)
        if h is None:
            h = serve.get_deployment_handle(ROUTER_DEPLOYMENT, INGRESS_APP)
            self._routers[model] = h
        return h

    def _broadcast_all(self, method: str, *args: Any) -> list[Any]:
        return self._broadcast("", method, *args)

    def _broadcast(self, model: str, method: str, *args: Any) -> list[Any]:
        """The answers of every ingress replica that answered. A replica that died or did not
        answer in time is left out (its replacement gets the table from the controller, and
        what it recorded died with it); the others' answers are kept: a ``collect`` has
        drained them, and dropping them would lose their requests from the counts.
        ``UnavailableError`` when no replica answered."""
        try:
            answers = list(self._router(model).broadcast(method, *args)
                           .results(timeout_s=self.timeout_s, return_exceptions=True))
        except Exception as e:  # no ingress yet, or the broadcast itself timed out
            raise UnavailableError(
                f"the routers of {model or 'the ingress'!r} did not answer {method}: "
                f"{type(e).__name__}: {e}") from e
        ok = [a for a in answers if not isinstance(a, BaseException)]
        failed = [a for a in answers if isinstance(a, BaseException)]
        if failed and not ok:
            first = failed[0]
            raise UnavailableError(f"the routers of {model!r} did not answer {method}: "
                                   f"{type(first).__name__}: {first}") from first
        if failed:
            log.warning("%d of %d router replicas of %r did not answer %s: %s", len(failed),
                        len(answers), model, method, type(failed[0]).__name__)
        return ok

    def push_table(self, model: str, table: Mapping[str, Any]) -> list[int]:
        return [int(e) for e in self._broadcast(model, "set_routes", dict(table))]

    def collect(self, model: str) -> list[dict[str, Any]]:
        return self._broadcast(model, "collect", model)

    def router_tables(self, model: str) -> list[dict[str, Any]]:
        return self._broadcast(model, "get_routes", model)

    # -- the controller actor -------------------------------------------------------------------

    def controller(
        self, model: str, store_path: str | None = None, create: bool = True
    ) -> RayControllerHandle:
        if not create:
            try:
                actor = ray.get_actor(controller_name(model), namespace=NAMESPACE)
            except ValueError:
                raise NotFound(f"no rollout controller for model {model!r}: start a rollout "
                               "first") from None
            return RayControllerHandle(model, actor)
        created = create_controller_actor(model, store_path, RayServePort)
        return RayControllerHandle(model, created)


class RayControllerHandle:
    """A controller actor behind ``ControllerHandle``: ``call`` from plain code, ``acall`` from
    an event loop (a router replica)."""

    def __init__(self, model: str, actor: Any, timeout_s: float | None = None) -> None:
        self.model = model
        self.actor = actor
        self.timeout_s = timeout_s

    def _translate(self, e: Exception) -> BaseException:
        if isinstance(e, RayTaskError):
            # ``e.cause`` rather than ``as_instanceof_cause()``: the latter's message is the
            # remote traceback, and pydantic's ValidationError cannot be subclassed by Ray.
            return as_caller_error(e.cause if e.cause is not None else e)
        if isinstance(e, RayActorError | GetTimeoutError):
            return UnavailableError(
                f"the rollout controller of {self.model!r} is unavailable: {type(e).__name__}")
        return e

    def call(self, method: str, *args: Any) -> Any:
        try:
            return ray.get(getattr(self.actor, method).remote(*args), timeout=self.timeout_s)
        except Exception as e:
            raise self._translate(e) from None

    async def acall(self, method: str, *args: Any) -> Any:
        try:
            return await getattr(self.actor, method).remote(*args)
        except Exception as e:
            raise self._translate(e) from None

    def end(self) -> None:
        """End the actor for good: Ray does not restart it (a graceful ``__ray_terminate__``
        of a controller whose loop thread is busy can look like a crash, which Ray would
        restart)."""
        ray.kill(self.actor, no_restart=True)
