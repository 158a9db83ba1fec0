"""The admin API under ``/rollout/...`` on the router: the rollout controller's verbs over HTTP,
behind scoped bearer tokens (``rayrollout.ingress.auth``), and the status page. A Starlette
application mounted by the router.

::

    GET  /rollout/  or /rollout/ui       the status page (HTML; loads without a token, its data
                                         calls send one)
    GET  /rollout/status                 read: the controller's status (and the verbs allowed)
    GET  /rollout/verbs                  read: every verb, the phases it is accepted in
    GET  /rollout/history?limit=N&all=1  read: the decision log (all=1: every rollout's)
    GET  /rollout/verify                 read: check the log's hash chain
    GET  /rollout/replay?rollout=N       read: replay a rollout's recorded inputs through decide()
    POST /rollout/start                  admin: body, a RolloutSpec as JSON
    POST /rollout/<verb>                 operate: one route per verb of
                                         ``rayrollout.controller.phases``; body (optional):
                                         {"full", "candidate", "reason"}

Guarantees:

* Never open by default: with no token configured every route but the page answers 401; a
  token without the route's scope gets 403. The NAME of the token that matched is the
  ``actor`` the decision log records.
* A spec started over HTTP cannot choose where the controller stores its state
  (``store_path`` or ``store_url``: 400); the router's own store does. What else it may reach
  (artifacts, webhook hosts) the controller checks for every start, whoever starts it.
* Every error is a JSON body ``{"error", "code"}`` with its status from ``rayrollout.errors``
  (a 405 names the allowed methods in ``Allow``); never an unhandled 500, and never counted as
  a rejected inference request.
* A 500 says nothing of its cause: ``{"error", "code": "internal_error", "error_id"}``; the
  router's log has the details under that id.
* Query numbers are ASCII digits, bounded (``limit`` at most ``MAX_HISTORY_LIMIT``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from functools import cache
from importlib.resources import files
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from rayrollout.controller.phases import VERBS
from rayrollout.controller.port import ControllerHandle, ServePort
from rayrollout.errors import (
    BadRequest,
    NotFound,
    UnavailableError,
)
from rayrollout.ingress.auth import Credentials, Scope
from rayrollout.ingress.http import NO_STORE, JsonApp, json_response, read_body
from rayrollout.spec import RolloutSpec, RouterConfig, format_validation_error

log = logging.getLogger("rayrollout.admin")

MAX_HISTORY_LIMIT = 1000  # decision-log entries per page
MAX_SPEC_BYTES = 1_000_000  # a rollout spec or a verb's body
_MAX_ID = 2**63 - 1  # SQLite's largest integer


class VerbBody(BaseModel):
    """Wire schema of a verb's optional JSON body."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    full: bool = False  # promote: to 100% now rather than to the next step
    candidate: str | None = Field(None, max_length=64)  # promote: which candidate
    reason: str = Field("", max_length=1000)  # pause, abort: recorded in the log


@cache
def status_page() -> str:
    return (files("rayrollout.ingress") / "status_page.html").read_text(encoding="utf-8")


class AdminAPI:
    def __init__(self, cfg: RouterConfig, port: ServePort | None = None,
                 environ: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.port = port
        self.credentials = Credentials.load(cfg.admin_tokens_env, cfg.tokens_file, environ)
        self._controller: ControllerHandle | None = None
        self.http = JsonApp(self.routes(), headers=NO_STORE)

    def routes(self) -> list[BaseRoute]:
        get, post = ["GET"], ["POST"]
        return [
            Route("/", self.page, methods=get),
            Route("/ui", self.page, methods=get),
            Route("/status", self._status, methods=get),
            Route("/verbs", self._verbs, methods=get),
            Route("/history", self._history, methods=get),
            Route("/verify", self._verify, methods=get),
            Route("/replay", self._replay, methods=get),
            Route("/start", self._start, methods=post),
            *(Route(f"/{verb}", self._verb(verb), methods=post) for verb in VERBS),
        ]

    # -- authentication ----------------------------------------------------------------------------

    def authenticate(self, request: Request, scope: Scope = Scope.READ) -> str:
        """The name of the token the request carries if it grants ``scope`` (401 / 403)."""
        return self.credentials.require(request.headers, scope)

    # -- routes ------------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        """The status page; it loads without a token (its data calls send one)."""
        nonce = secrets.token_urlsafe(16)
        csp = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        )
        return HTMLResponse(
            status_page().replace("{{NONCE}}", nonce),
            headers={
                **NO_STORE,
                "content-security-policy": csp,
                "referrer-policy": "no-referrer",
                "x-content-type-options": "nosniff",
                "x-frame-options": "DENY",
            },
        )

    async def _status(self, request: Request) -> Response:
        self.authenticate(request)
        return _json(await self._call("status"))

    async def _verbs(self, request: Request) -> Response:
        self.authenticate(request)
        return _json({"verbs": [v.to_dict() for v in VERBS.values()]})

    async def _history(self, request: Request) -> Response:
        self.authenticate(request)
        q = request.query_params
        limit = _int_param(q.get("limit"), "limit", MAX_HISTORY_LIMIT)
        return _json(await self._call("history", limit, q.get("all", "0") in ("1", "true")))

    async def _verify(self, request: Request) -> Response:
        self.authenticate(request)
        return _json(await self._call("verify"))

    async def _replay(self, request: Request) -> Response:
        self.authenticate(request)
        return _json(await self._call("replay",
                                      _int_param(request.query_params.get("rollout"), "rollout")))

    async def _start(self, request: Request) -> Response:
        actor = self.authenticate(request, Scope.ADMIN)
        raw = await read_body(request, MAX_SPEC_BYTES)
        try:
            spec = RolloutSpec.model_validate_json(raw or b"null")
        except ValidationError as e:
            raise BadRequest(f"invalid rollout spec:\n{format_validation_error(e)}") from None
        if spec.model != self.model:
            raise BadRequest(
                f"model: {spec.model!r} is not the model this router serves ({self.model!r})"
            )
        if spec.store_target() is not None:
            field = "store_url" if spec.store_url is not None else "store_path"
            raise BadRequest(f"{field}: a rollout started over HTTP cannot choose its store; "
                             "the router config's store_path or store_url does")
        log.info("start of a rollout by %s", actor)
        if self._controller is None:  # blocking: creates the controller if it is not there
            port = self._port()
            self._controller = await asyncio.to_thread(port.controller, self.model,
                                                       self.cfg.store_target())
        return _json(await self._call("start", spec.model_dump(mode="json"), actor))

    def _verb(self, verb: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            actor = self.authenticate(request, Scope.OPERATE)
            body = _verb_body(await read_body(request, MAX_SPEC_BYTES))
            log.info("%s by %s", verb, actor)
            return _json(await self._call("command", verb, actor, body.full, body.candidate,
                                          body.reason))

        return endpoint

    # -- the controller ----------------------------------------------------------------------------

    def _port(self) -> ServePort:
        if self.port is None:
            raise UnavailableError("this router has no control plane to reach a controller")
        return self.port

    async def _handle(self) -> ControllerHandle:
        if self._controller is None:
            port = self._port()
            try:
                self._controller = await asyncio.to_thread(
                    port.controller, self.model, None, False)
            except NotFound:
                raise NotFound(
                    f"no rollout controller for model {self.model!r}: start a rollout first "
                    "(POST /rollout/start)"
                ) from None
        return self._controller

    async def _call(self, method: str, *args: Any) -> Any:
        """Call the controller; its exceptions come back as ours (409, 400, ...)."""
        h = await self._handle()
        try:
            return await h.acall(method, *args)
        except UnavailableError:  # it died (and may be restarted): look it up afresh next time
            self._controller = None
            raise


def _int_param(value: str | None, name: str, most: int = _MAX_ID) -> int | None:
    """A positive integer of ASCII digits, at most ``most``; a 400 naming ``name`` otherwise
    (never an echo of the whole value: it may be 5,000 digits)."""
    if value is None or value == "":
        return None
    shown = repr(value[:20]) + ("..." if len(value) > 20 else "")
    if not (value.isascii() and value.isdigit()) or len(value) > 19 or int(value) < 1:
        raise BadRequest(f"{name}={shown} must be a positive integer (ASCII digits)")
    if int(value) > most:
        raise BadRequest(f"{name}={shown} must be at most {most}")
    return int(value)


def _verb_body(raw: bytes) -> VerbBody:
    if not raw.strip():
        return VerbBody()
    try:
        return VerbBody.model_validate_json(raw)
    except ValidationError as e:
        raise BadRequest(f"invalid body:\n{format_validation_error(e)}") from None


def _json(content: Any) -> Response:
    return json_response(content, headers=NO_STORE)
