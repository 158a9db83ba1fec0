"""The one port through which the control plane reaches Ray Serve.

The controller, the Python API and the admin API ask the platform for exactly these things and
nothing else; ``rayrollout.serving.port.RayServePort`` does them with Ray Serve, and
``rayrollout.controller.fake.FakeServePort`` in memory (tests drive a whole rollout with it,
tick by tick, with no Ray started).

Guarantees every implementation keeps (the contract tests check both):

* ``deploy_version`` returns without waiting for the app to run; deploying an app that is
  running or on its way does nothing (``needs_deploy`` says when it deploys).
* ``scale_version`` sizes a deployed version (its replica count, or the floor of an
  autoscaling one) without restarting its running replicas; ``applications`` reports how many
  replicas of each app's ingress run.
* ``delete_app`` of an app that is not there does nothing.
* Every model is served by the one ingress application (``names.INGRESS_APP``), each by its
  own router on every ingress replica. ``deploy_router`` adds a model to it (deploying the
  ingress if it is not there) and does nothing for a model it serves already;
  ``remove_router`` removes one. Neither restarts the ingress nor touches another model's
  router: its table, epoch and counts stay as they are.
* ``push_table`` reaches every router replica of the model; a replica keeps the table with the
  larger epoch, and the call returns the epoch each replica now has.
* ``collect`` drains every router replica once; it raises ``UnavailableError`` when no router
  can be reached (the controller then skips the tick's judging, never the routers' state).
* ``controller(model, create=False)`` raises ``NotFound`` when no controller runs for ``model``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from pydantic import ValidationError

from rayrollout.errors import BadRequest, RolloutError
from rayrollout.spec import RouterConfig, VersionConfig, format_validation_error

RUNNING = "RUNNING"
DEPLOYING = "DEPLOYING"
DEPLOY_FAILED = "DEPLOY_FAILED"
DELETING = "DELETING"


class AppStatus(NamedTuple):
    """A Serve application's status name (``RUNNING``, ``DEPLOYING``, ``DEPLOY_FAILED``,
    ``DELETING``, ...), Serve's message about it, and how many replicas of its ingress
    deployment are running (-1 when not known)."""

    status: str
    message: str = ""
    replicas: int = -1


def needs_deploy(app: AppStatus | None) -> bool:
    """Whether deploying an app with this status would start it: it is not there, its deploy
    failed, or it is being deleted. Anything else (running, on its way, unhealthy and being
    repaired by Serve) is left alone: deploying again would restart it."""
    return app is None or app.status in (DEPLOY_FAILED, DELETING)


def as_caller_error(exc: BaseException) -> BaseException:
    """How an exception raised inside the controller reaches its caller: ours as they are
    (``IllegalTransition`` stays a 409), an invalid spec as ``BadRequest`` naming the field and
    the value, anything else unchanged. Every ``ControllerHandle`` translates with this."""
    if isinstance(exc, RolloutError):
        return exc
    if isinstance(exc, ValidationError):
        return BadRequest(f"invalid rollout spec:\n{format_validation_error(exc)}")
    return exc


class ControllerHandle(Protocol):
    """Calls one model's controller, wherever it runs. The controller's own errors come back as
    themselves (``IllegalTransition``, ``NotFound``, ...); an invalid spec as ``BadRequest``;
    a controller that died as ``UnavailableError``."""

    def call(self, method: str, *args: Any) -> Any:
        """Call ``method`` and wait for its result (from plain code)."""
        ...

    async def acall(self, method: str, *args: Any) -> Any:
        """Call ``method`` from an event loop without blocking it."""
        ...


class ServePort(Protocol):
    """What the control plane asks of Ray Serve."""

    def deploy_version(self, config: VersionConfig, replicas: int | None = None) -> None:
        """Deploy one model version as its own application, sized ``replicas`` (None: as its
        config says; ``VersionSpec.serve_options``)."""
        ...

    def scale_version(self, config: VersionConfig, replicas: int | None) -> None:
        """Resize a deployed version in place (None: back to its config's size)."""
        ...

    def deploy_router(self, config: RouterConfig, route_prefix: str = "/") -> None:
        """Serve ``config.model`` on the ingress (deployed first if it is not there); a model
        served already is left as it is. A ``route_prefix`` other than ``/`` is the model's own
        path prefix on the ingress (``RouterConfig.path_prefix``), unless its config names
        one."""
        ...

    def remove_router(self, model: str) -> None:
        """Stop serving ``model`` on the ingress (nothing if it is not served)."""
        ...

    def delete_app(self, name: str) -> None:
        """Delete an application (without waiting)."""
        ...

    def applications(self) -> Mapping[str, AppStatus]:
        """Every application on the cluster and its status."""
        ...

    def push_table(self, model: str, table: Mapping[str, Any]) -> list[int]:
        """Broadcast a routing table to every router replica of ``model``."""
        ...

    def collect(self, model: str) -> list[dict[str, Any]]:
        """``Router.collect()`` of every router replica of ``model`` (``Collected`` dicts)."""
        ...

    def router_tables(self, model: str) -> list[dict[str, Any]]:
        """The routing table each router replica of ``model`` has now."""
        ...

    def controller(
        self, model: str, store_path: str | None = None, create: bool = True
    ) -> ControllerHandle:
        """The controller of ``model``: created (with its store at ``store_path``) if it is not
        running and ``create``; ``NotFound`` otherwise."""
        ...
