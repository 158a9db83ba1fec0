"""``RayServePort``: the control plane's port (``rayrollout.controller.port.ServePort``) on a real
Ray Serve, and ``RayControllerHandle``, a controller actor seen through ``ControllerHandle``.

All Ray calls of the control plane are made here: deploying and deleting applications, reading
their status, broadcasting to every router replica, finding or creating the controller actor.
Ray's errors are translated at this boundary: a controller's own exception comes back as itself,
an actor that died as ``UnavailableError``, a missing actor as ``NotFound``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import ray
from ray import serve
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from rayrollout.controller.port import DEPLOY_FAILED, AppStatus, as_caller_error, needs_deploy
from rayrollout.errors import NotFound, UnavailableError
from rayrollout.names import (
    NAMESPACE,
    ROUTER_DEPLOYMENT,
    VERSION_DEPLOYMENT,
    controller_name,
    router_app_name,
)
from rayrollout.serving.actor import create_controller_actor
from rayrollout.serving.ingress import router_app
from rayrollout.serving.version import route_prefix, version_app
from rayrollout.spec import RouterConfig, VersionConfig

BROADCAST_TIMEOUT_S = 10.0

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

    def deploy_router(self, config: RouterConfig, route_prefix: str) -> None:
        if not needs_deploy(self.applications().get(config.app_name)):
            return
        serve.run(router_app(config, RayServePort), name=config.app_name,
                  route_prefix=route_prefix)

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
        h = self._routers.get(model)
        if h is None:
            h = serve.get_deployment_handle(ROUTER_DEPLOYMENT, router_app_name(model))
            self._routers[model] = h
        return h

    def _broadcast(self, model: str, method: str, *args: Any) -> list[Any]:
        """The answers of every router replica that answered. A replica that died or did not
        answer in time is left out (its replacement gets the table from the controller, and
        what it recorded died with it); the others' answers are kept: a ``collect`` has
        drained them, and dropping them would lose their requests from the counts.
        ``UnavailableError`` when no replica answered."""
        try:
            answers = list(self._router(model).broadcast(method, *args)
                           .results(timeout_s=self.timeout_s, return_exceptions=True))
        except Exception as e:  # no router app yet, or the broadcast itself timed out
            raise UnavailableError(
                f"the routers of {model!r} did not answer {method}: {type(e).__name__}: {e}"
            ) from e
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
        return self._broadcast(model, "collect")

    def router_tables(self, model: str) -> list[dict[str, Any]]:
        return self._broadcast(model, "get_routes")

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
