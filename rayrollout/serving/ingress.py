"""``RouterIngress``: the ray-free ``Router`` as the Serve deployment of a router application.

It supplies the router's platform from Ray Serve (version handles, the control-plane port, the
replica's id, the handle transport's cap, the Prometheus exporter) and hands Serve the router's
Starlette application through ``serve.ingress``, built per replica after ``__init__`` so its
routes are bound to this replica's router. The port comes in as a factory (``router_app``'s
``port``), so this module does not import the port that deploys it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray import serve
from ray.serve import Application
from starlette.types import ASGIApp

from rayrollout.controller.port import ServePort
from rayrollout.ingress.platform import RouterPlatform
from rayrollout.ingress.router import Router
from rayrollout.names import ROUTER_DEPLOYMENT
from rayrollout.serving.exporter import MetricsExporter
from rayrollout.serving.handles import ServeVersions, handle_transport_limit
from rayrollout.serving.version import NO_ACCESS_LOG
from rayrollout.spec import RouterConfig


def _replica_id() -> str:
    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # outside a replica
        return ""


@serve.ingress()
class RouterIngress(Router):
    def __init__(self, config: dict[str, Any], port: Callable[[], ServePort]) -> None:
        cfg = RouterConfig.model_validate(config)
        platform = RouterPlatform(
            versions=ServeVersions(cfg.model),
            port=port(),
            replica=_replica_id(),
            transport_limit=handle_transport_limit(),
            exporter=MetricsExporter,
        )
        Router.__init__(self, cfg, platform)

    def __serve_build_asgi_app__(self) -> ASGIApp:
        return self.http


def router_app(config: RouterConfig, port: Callable[[], ServePort]) -> Application:
    """The HTTP ingress of one model; its replicas reach the controller through ``port()``."""
    d = config.deployment
    dep = serve.deployment(
        name=ROUTER_DEPLOYMENT,
        num_replicas=d.num_replicas,
        max_ongoing_requests=d.max_ongoing_requests,
        ray_actor_options={"num_cpus": d.num_cpus},
        logging_config=NO_ACCESS_LOG,
    )(RouterIngress)
    return dep.bind(config.model_dump(mode="json"), port)
