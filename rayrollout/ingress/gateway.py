"""``Gateway``: the one HTTP ingress of every model, each served by its own ``Router``.

The gateway holds ``{model: Router}`` and hands each request to its model's router; every
router keeps its own table, epoch, recorder, feedback join, shadow, admin API and exporter, so
one model's failures and metrics never mix with another's. It imports no Ray: routers are made
by an injected ``make_router``, and a model it does not hold is looked up through an injected
``load`` (``rayrollout.serving.ingress`` reads the catalog there).

::

    /v2/models/{model}/...   /v1/models/{model}/...    that model's router (unknown: 404 that
                                                       names the models served)
    GET /v1/models                                     every model, its epoch and versions
    GET /v2  /v2/health/live  /v2/health/ready         the server (ready: every model ready)
    /rollout/{model}/...                               that model's admin API and status page
    /rollout/...                                       the same, when exactly one model is
                                                       served; with several, GET /rollout
                                                       lists them
    {prefix}/...                                       a model's own path prefix
                                                       (``RouterConfig.prefix``): its router
                                                       sees the path without it; a pass-through
                                                       model's requests are passed on there

A pass-through model (``interface: http``) answers only its label feedback at
``/v1/models/{model}/feedback``; its other requests go under its prefix.

Control-plane methods (called on every replica by the port's broadcast):
``set_routes(table)`` (the model is ``table["model"]``; a model not held is loaded first),
``get_routes(model)``, ``collect(model)``, ``add_model(config)``, ``remove_model(model)``,
``models()``. Adding or removing a model touches no other model's router.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from rayrollout._compat import ASYNC_TIMEOUT
from rayrollout._version import __version__
from rayrollout.errors import NotFound, RolloutError, error_body, error_headers, http_status
from rayrollout.ingress.http import JsonApp, json_response
from rayrollout.ingress.router import READY_PROBE_TIMEOUT_S, Router, route_path
from rayrollout.spec import RouterConfig

log = logging.getLogger("rayrollout.gateway")

MakeRouter = Callable[[RouterConfig], Router]
Load = Callable[[str], dict[str, Any] | None]

_MODEL_PATH = re.compile(r"^/v[12]/models/([^/]+)(/.*)?$")
_ROLLOUT_PATH = re.compile(r"^/rollout(?:/([^/]+))?(/.*)?$")
_FEEDBACK = re.compile(r"^/v1/models/[^/]+/feedback/?$")


class Gateway:
    """See the module docstring. ``make_router`` builds a model's router (blocking: it takes
    the controller's table first); ``load(model)`` returns a model's router config from the
    platform's catalog, or None."""

    def __init__(self, configs: Iterable[RouterConfig | dict[str, Any]],
                 make_router: MakeRouter, load: Load | None = None) -> None:
        self.make_router = make_router
        self.load = load
        self.routers: dict[str, Router] = {}
        self._prefixes: list[tuple[str, Router]] = []
        self._adding: dict[str, asyncio.Future[Router]] = {}
        for c in configs:
            cfg = RouterConfig.model_validate(c)
            if cfg.model not in self.routers:
                self._install(make_router(cfg))
        self.http = JsonApp(self.routes())

    # -- models -------------------------------------------------------------------------------

    def _install(self, router: Router) -> None:
        """Serve ``router``'s model from the next request on (one dict assignment)."""
        prefix = router.cfg.prefix
        for other, r in self._prefixes:
            if prefix is not None and other == prefix and r.model != router.model:
                raise RolloutError(f"path prefix {prefix!r} of model {router.model!r} is "
                                   f"model {r.model!r}'s already")
        self.routers = {**self.routers, router.model: router}
        self._reindex()

    def _reindex(self) -> None:
        pairs = [(r.cfg.prefix, r) for r in self.routers.values() if r.cfg.prefix is not None]
        self._prefixes = sorted(((p, r) for p, r in pairs if p is not None),
                                key=lambda pr: -len(pr[0]))

    def models(self) -> list[str]:
        return sorted(self.routers)

    def _router(self, model: str) -> Router:
        r = self.routers.get(model)
        if r is None:
            raise self._unknown(model)
        return r

    def _unknown(self, model: str) -> NotFound:
        served = ", ".join(self.models()) or "none"
        return NotFound(f"unknown model {model[:100]!r}; this server serves: {served}")

    # -- control plane ----------------------------------------------------------------------

    async def add_model(self, config: dict[str, Any]) -> int:
        """Serve a model (a ``RouterConfig`` as a dict); a model served already is left as it
        is. Returns the epoch of its table."""
        cfg = RouterConfig.model_validate(config)
        return (await self._add(cfg)).table.epoch

    async def _add(self, cfg: RouterConfig) -> Router:
        r = self.routers.get(cfg.model)
        if r is not None:
            return r
        pending = self._adding.get(cfg.model)
        if pending is None:  # one router per model, however many callers ask at once
            pending = asyncio.ensure_future(asyncio.to_thread(self.make_router, cfg))
            self._adding[cfg.model] = pending
            try:
                r = await asyncio.shield(pending)
                if cfg.model not in self.routers:
                    self._install(r)
                    log.info("serving model %r", cfg.model)
            finally:
                self._adding.pop(cfg.model, None)
        else:
            await asyncio.shield(pending)
        return self.routers[cfg.model]

    async def remove_model(self, model: str) -> bool:
        """Stop serving ``model`` (its requests get 404 from now on); False if not served."""
        r = self.routers.get(model)
        if r is None:
            return False
        self.routers = {m: x for m, x in self.routers.items() if m != model}
        self._reindex()
        r.close()
        log.info("no longer serving model %r", model)
        return True

    async def _held_or_loaded(self, model: str) -> Router:
        r = self.routers.get(model)
        if r is not None:
            return r
        doc = await asyncio.to_thread(self.load, model) if self.load is not None else None
        if doc is None:
            raise self._unknown(model)
        return await self._add(RouterConfig.model_validate(doc))

    async def set_routes(self, table: dict[str, Any]) -> int:
        """Install ``table`` on the router of ``table["model"]`` (loading that model from the
        catalog first if this replica does not serve it yet); the epoch now in force."""
        model = table.get("model") if isinstance(table, dict) else None
        if not isinstance(model, str):
            raise NotFound("a routing table names its model")
        return await (await self._held_or_loaded(model)).set_routes(table)

    async def get_routes(self, model: str) -> dict[str, Any]:
        return await self._router(model).get_routes()

    async def collect(self, model: str) -> dict[str, Any]:
        return await self._router(model).collect()

    # -- HTTP ---------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        get = ["GET"]
        return [
            Route("/v1/models", self._list_models, methods=get),
            Route("/v2", self._server_metadata, methods=get),
            Route("/v2/health/live", self._live, methods=get),
            Route("/v2/health/ready", self._server_ready, methods=get),
            Route("/rollout", self._rollout_index, methods=get),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.http(scope, receive, send)
            return
        path = route_path(scope)
        for prefix, r in self._prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                child = {**scope, "root_path": scope.get("root_path", "") + prefix}
                await r.http(child, receive, send)
                return
        m = _MODEL_PATH.match(path)
        if m is not None:
            model = self.routers.get(m.group(1))
            if model is None:
                await self._not_found(m.group(1))(scope, receive, send)
            elif model.cfg.interface == "http" and not _FEEDBACK.match(path):
                await self._passed_through(model)(scope, receive, send)
            else:
                await model.http(scope, receive, send)
            return
        m = _ROLLOUT_PATH.match(path)
        if m is not None and m.group(1) is not None:
            admin = self.routers.get(m.group(1))
            if admin is not None:  # /rollout/{model}/...: the router serves it as it is
                await admin.http(scope, receive, send)
                return
        if m is not None and len(self.routers) == 1 and (m.group(1) or m.group(2)):
            await next(iter(self.routers.values())).http(scope, receive, send)  # the alias
            return
        if m is not None and m.group(1) is not None:
            await self._not_found(m.group(1), "/rollout/")(scope, receive, send)
            return
        await self.http(scope, receive, send)

    def _not_found(self, model: str, where: str = "") -> Response:
        e = self._unknown(model)
        return JSONResponse({**error_body(e), "models": self.models(),
                             **({"admin": [f"{where}{m}" for m in self.models()]}
                                if where else {})},
                            status_code=http_status(e), headers=error_headers(e))

    def _passed_through(self, r: Router) -> Response:
        e = NotFound(f"model {r.model!r} is passed through to its own HTTP application under "
                     f"{r.cfg.prefix}/...; here it answers only /v1/models/{r.model}/feedback")
        return JSONResponse(error_body(e), status_code=http_status(e))

    async def _list_models(self, request: Request) -> Response:
        return json_response({"models": [self.routers[m].describe() for m in self.models()]})

    async def _server_metadata(self, request: Request) -> Response:
        return JSONResponse({"name": "rayrollout", "version": __version__,
                             "extensions": ["binary_tensor_data"], "models": self.models()})

    async def _live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def _server_ready(self, request: Request) -> Response:
        """Ready when every model is (probed at once, each within its probe's bound)."""
        routers = list(self.routers.values())
        try:
            oks = await asyncio.wait_for(asyncio.gather(*(r.ready() for r in routers)),
                                         READY_PROBE_TIMEOUT_S + 1.0)
        except ASYNC_TIMEOUT:
            oks = [False] * len(routers)
        not_ready = sorted(r.model for r, ok in zip(routers, oks, strict=True) if not ok)
        ready = not not_ready
        return JSONResponse({"ready": ready, "not_ready": not_ready},
                            status_code=200 if ready else 503)

    async def _rollout_index(self, request: Request) -> Response:
        """``GET /rollout``: the status page when one model is served; else the models, each
        with the path of its admin API and status page."""
        if len(self.routers) == 1:
            return await next(iter(self.routers.values())).admin.page(request)
        return json_response({"models": [{"name": m, "admin": f"/rollout/{m}/"}
                                         for m in self.models()]},
                             headers={"cache-control": "no-store"})

