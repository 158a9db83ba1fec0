"""``RouterIngress``: the ray-free ``Gateway`` as the Serve deployment of the one ingress
application (``names.INGRESS_APP``), and the catalog of the models it serves.

Each replica builds a gateway over the models of its application's arguments and those in the
**catalog**: Ray's GCS key-value store (namespace ``names.NAMESPACE``, one key per model,
``names.catalog_key``), which outlives every replica. The port writes a model's router config
there when it adds the model to the ingress and a tombstone when it removes it, so a replica
started later (a restart, a new replica on another node) serves the same models as the others.
Every model's router takes its controller's current table before the replica serves a request
(``Router.adopt``).

It supplies each router's platform from Ray Serve (version handles, the control-plane port,
the replica's id, the handle transport's cap, the Prometheus exporter) and hands Serve the
gateway as its ASGI application through ``serve.ingress``. The port comes in as a factory
(``ingress_app``'s ``port``), so this module does not import the port that deploys it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ray import serve
from ray.serve import Application
from starlette.types import ASGIApp

from rayrollout.controller.port import ServePort
from rayrollout.ingress.gateway import Gateway
from rayrollout.ingress.platform import RouterPlatform
from rayrollout.ingress.router import Router
from rayrollout.names import CATALOG_PREFIX, INGRESS_APP, NAMESPACE, ROUTER_DEPLOYMENT, catalog_key
from rayrollout.serving.exporter import MetricsExporter
from rayrollout.serving.handles import ServeVersions, handle_transport_limit
from rayrollout.serving.version import NO_ACCESS_LOG
from rayrollout.spec import RouterConfig, RouterDeployment

log = logging.getLogger("rayrollout.ingress")

# -- the catalog ---------------------------------------------------------------------------------


def catalog_put(model: str, config: RouterConfig | None) -> None:
    """Record that the ingress serves ``model`` with ``config`` (None: that it no longer
    does; a tombstone, so a config that declares the model does not bring it back)."""
    from ray.experimental import internal_kv

    value = "null" if config is None else json.dumps(config.model_dump(mode="json"))
    internal_kv._internal_kv_put(catalog_key(model), value, overwrite=True, namespace=NAMESPACE)


def catalog_get(model: str) -> tuple[bool, dict[str, Any] | None]:
    """(whether the catalog knows ``model``, its router config or None for a tombstone)."""
    from ray.experimental import internal_kv

    raw = internal_kv._internal_kv_get(catalog_key(model), namespace=NAMESPACE)
    if raw is None:
        return False, None
    return True, json.loads(raw)


def catalog_read() -> dict[str, dict[str, Any] | None]:
    """Every model the catalog knows: its router config, or None when it was removed."""
    from ray.experimental import internal_kv

    out: dict[str, dict[str, Any] | None] = {}
    for key in internal_kv._internal_kv_list(CATALOG_PREFIX, namespace=NAMESPACE):
        model = key.decode()[len(CATALOG_PREFIX):]
        known, doc = catalog_get(model)
        if known:
            out[model] = doc
    return out


def served_models(declared: Sequence[dict[str, Any]],
                  catalog: dict[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The models a replica serves: those its application declares, unless the catalog holds
    a tombstone for them, then every other model the catalog holds."""
    names = {str(d.get("model")) for d in declared}
    out = [d for d in declared if catalog.get(str(d.get("model")), d) is not None]
    out += [doc for m, doc in sorted(catalog.items()) if doc is not None and m not in names]
    return out


def _replica_id() -> str:
    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # outside a replica
        return ""


def _load(model: str) -> dict[str, Any] | None:
    return catalog_get(model)[1]


@serve.ingress()
class RouterIngress:
    """One replica of the ingress: a ``Gateway`` and its control-plane methods."""

    def __init__(self, models: list[dict[str, Any]], port: Callable[[], ServePort]) -> None:
        self.port = port()
        self.replica = _replica_id()
        self.transport_limit = handle_transport_limit()
        try:
            catalog = catalog_read()
        except Exception as e:  # no GCS to ask (never on a cluster): the declared models
            log.warning("the model catalog cannot be read (%s): serving the declared models",
                        e)
            catalog = {}
        self.gateway = Gateway(served_models(models, catalog), self._router, _load)

    def _router(self, cfg: RouterConfig) -> Router:
        platform = RouterPlatform(
            versions=ServeVersions(cfg.model),
            port=self.port,
            replica=self.replica,
            transport_limit=self.transport_limit,
            exporter=MetricsExporter,
        )
        return Router(cfg, platform)

    def __serve_build_asgi_app__(self) -> ASGIApp:
        return self.gateway

    # -- control plane (the port's broadcasts) ---------------------------------------------------

    async def set_routes(self, table: dict[str, Any]) -> int:
        return await self.gateway.set_routes(table)

    async def get_routes(self, model: str) -> dict[str, Any]:
        return await self.gateway.get_routes(model)

    async def collect(self, model: str) -> dict[str, Any]:
        return await self.gateway.collect(model)

    async def add_model(self, config: dict[str, Any]) -> int:
        return await self.gateway.add_model(config)

    async def remove_model(self, model: str) -> bool:
        return await self.gateway.remove_model(model)

    async def models(self) -> list[str]:
        return self.gateway.models()

    async def replica_id(self) -> str:
        return self.replica


def ingress_app(models: Sequence[RouterConfig], port: Callable[[], ServePort],
                deployment: RouterDeployment | None = None,
                version: str | None = None) -> Application:
    """The one HTTP ingress of every model (application ``INGRESS_APP``): ``models`` are
    declared in its arguments, the rest come from the catalog. Its replicas reach the
    controllers through ``port()``. ``deployment`` sizes it (default: the largest of the
    models' sizes); ``version``, when given, is its Serve deployment version (redeployed with
    the same one and another replica count, it is scaled in place)."""
    d = deployment or _largest([m.deployment for m in models])
    dep = serve.deployment(
        name=ROUTER_DEPLOYMENT,
        num_replicas=d.num_replicas,
        max_ongoing_requests=d.max_ongoing_requests,
        ray_actor_options={"num_cpus": d.num_cpus},
        logging_config=NO_ACCESS_LOG,
    )(RouterIngress)
    if version is not None:
        dep = dep.options(version=version, _internal=True)
    return dep.bind([m.model_dump(mode="json") for m in models], port)


def _largest(sizes: Sequence[RouterDeployment]) -> RouterDeployment:
    """The ingress's size for several models: the most replicas, requests and CPUs any asks."""
    if not sizes:
        return RouterDeployment()
    return RouterDeployment(num_replicas=max(d.num_replicas for d in sizes),
                            max_ongoing_requests=max(d.max_ongoing_requests for d in sizes),
                            num_cpus=max(d.num_cpus for d in sizes))


__all__ = ["INGRESS_APP", "RouterIngress", "catalog_get", "catalog_put", "catalog_read",
           "ingress_app", "served_models"]
