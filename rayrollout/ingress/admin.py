"""The admin API under ``/rollout/...`` on the router: the rollout controller's verbs over HTTP,
behind bearer tokens, and the status page. A Starlette application mounted by the router.

::

    GET  /rollout/  or /rollout/ui       the status page (HTML; loads without a token, its data
                                         calls send one)
    GET  /rollout/status                 the controller's status (with the verbs allowed now)
    GET  /rollout/verbs                  every verb: the phases it is accepted in, its params
    GET  /rollout/history?limit=N&all=1  the decision log (this rollout's; all=1: every rollout)
    GET  /rollout/verify                 check the log's hash chain
    GET  /rollout/replay?rollout=N       replay a rollout's recorded inputs through decide()
    POST /rollout/start                  body: a RolloutSpec as JSON
    POST /rollout/<verb>                 one route per verb of ``rayrollout.controller.phases``;
                                         body (optional): {"full", "candidate", "reason"}

Guarantees:

* Never open by default: with no token configured every route but the page answers 401.
* A token is checked against every configured token in constant time (no early exit); the
  NAME of the token that matched is the ``actor`` the decision log records.
* Every error is a JSON body ``{"error", "code"}`` with its status from ``rayrollout.errors``
  (a 405 names the allowed methods in ``Allow``); never an unhandled 500, and never counted as
  a rejected inference request.
* A 500 says nothing of its cause: ``{"error", "code": "internal_error", "error_id"}``; the
  router's log has the details under that id.
* Query numbers are ASCII digits, bounded (``limit`` at most ``MAX_HISTORY_LIMIT``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
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
    Unauthorized,
    UnavailableError,
)
from rayrollout.ingress.http import NO_STORE, JsonApp, json_response
from rayrollout.spec import RolloutSpec, RouterConfig, format_validation_error

log = logging.getLogger("rayrollout.admin")

MAX_HISTORY_LIMIT = 1000  # decision-log entries per page
_MAX_ID = 2**63 - 1  # SQLite's largest integer


class VerbBody(BaseModel):
    """Wire schema of a verb's optional JSON body."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    full: bool = False  # promote: to 100% now rather than to the next step
    candidate: str | None = Field(None, max_length=64)  # promote: which candidate
    reason: str = Field("", max_length=1000)  # pause, abort: recorded in the log


def parse_tokens(text: str) -> dict[str, str]:
    """``"name:token,name:token"`` -> ``{name: token}``; malformed or empty entries are skipped
    (with a warning that names the entry's position, never its token)."""
    out: dict[str, str] = {}
    for i, item in enumerate(text.split(",")):
        if not item.strip():
            continue
        name, sep, token = item.partition(":")
        if not sep or not name.strip() or not token.strip():
            log.warning("admin token entry %d is not name:token; ignored", i)
            continue
        out[name.strip()] = token.strip()
    return out


def _digest(token: str) -> bytes:
    # Comparing fixed-length digests keeps even the token's length out of the timing.
    return hashlib.sha256(token.encode()).digest()


@cache
def status_page() -> str:
    return (files("rayrollout.ingress") / "status_page.html").read_text(encoding="utf-8")


class AdminAPI:
    def __init__(self, cfg: RouterConfig, port: ServePort | None = None,
                 environ: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.port = port
        env = os.environ if environ is None else environ
        tokens = {**cfg.admin_tokens, **parse_tokens(env.get(cfg.admin_tokens_env, ""))}
        # Only digests are kept; an empty token could never be sent, so it is not a token.
        self._tokens = [(name, _digest(t)) for name, t in tokens.items() if t]
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

    def authenticate(self, request: Request) -> str:
        """The name of the token in ``Authorization: Bearer <token>``; Unauthorized if none
        matches. Every configured token is compared, whatever matched first."""
        if not self._tokens:
            raise Unauthorized(
                "the admin API is disabled: no admin token is configured. Set "
                f"admin_tokens {{name: token}} in the router config (router: in a rollout spec) "
                f"or {self.cfg.admin_tokens_env}='name:token' in the router's environment"
            )
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise Unauthorized("missing admin token: send 'Authorization: Bearer <token>'")
        sent = _digest(given)
        found: str | None = None
        for name, digest in self._tokens:
            match = hmac.compare_digest(sent, digest)
            if match and found is None:
                found = name
        if found is None:
            raise Unauthorized("invalid admin token")
        return found

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
        actor = self.authenticate(request)
        raw = await request.body()
        try:
            spec = RolloutSpec.model_validate_json(raw or b"null")
        except ValidationError as e:
            raise BadRequest(f"invalid rollout spec:\n{format_validation_error(e)}") from None
        if spec.model != self.model:
            raise BadRequest(
                f"model: {spec.model!r} is not the model this router serves ({self.model!r})"
            )
        log.info("start of a rollout by %s", actor)
        if self._controller is None:  # blocking: creates the controller if it is not there
            port = self._port()
            self._controller = await asyncio.to_thread(port.controller, self.model,
                                                       spec.store_path)
        return _json(await self._call("start", spec.model_dump(mode="json"), actor))

    def _verb(self, verb: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            actor = self.authenticate(request)
            body = _verb_body(await request.body())
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
