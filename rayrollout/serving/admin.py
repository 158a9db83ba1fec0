"""The admin API under ``/rollout/...`` on the router: the rollout controller's verbs over HTTP,
behind bearer tokens, and the status page.

::

    GET  /rollout/  or /rollout/ui       the status page (HTML; loads without a token, its data
                                         calls send one)
    GET  /rollout/status                 the controller's status
    GET  /rollout/history?limit=N&all=1  the decision log (this rollout's; all=1: every rollout)
    GET  /rollout/verify                 check the log's hash chain
    GET  /rollout/replay?rollout=N       replay a rollout's recorded inputs through decide()
    POST /rollout/start                  body: a RolloutSpec as JSON
    POST /rollout/<verb>                 pause resume approve promote abort retry undo;
                                         body (optional): {"full", "candidate", "reason"}

Guarantees:

* Never open by default: with no token configured every route but the page answers 401.
* A token is checked against every configured token in constant time (no early exit); the
  NAME of the token that matched is the ``actor`` the decision log records.
* Errors are answered here as JSON (``{"error", "code"}``, status from ``rayrollout.errors``);
  they are never counted as rejected inference requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
from functools import cache
from importlib.resources import files
from typing import Any

import ray
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ray.exceptions import RayActorError, RayTaskError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from rayrollout.config import RouterConfig, format_validation_error
from rayrollout.controller.actor import NAMESPACE, controller_name
from rayrollout.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    RolloutError,
    Unauthorized,
    UnavailableError,
    error_body,
    http_status,
)
from rayrollout.spec import RolloutSpec

log = logging.getLogger("rayrollout.admin")

VERBS = frozenset({"pause", "resume", "approve", "promote", "abort", "retry", "undo"})
NO_STORE = {"cache-control": "no-store"}


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
    return (files("rayrollout.serving") / "status_page.html").read_text(encoding="utf-8")


class AdminAPI:
    def __init__(self, cfg: RouterConfig, environ: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.model = cfg.model
        env = os.environ if environ is None else environ
        tokens = {**cfg.admin_tokens, **parse_tokens(env.get(cfg.admin_tokens_env, ""))}
        # Only digests are kept; an empty token could never be sent, so it is not a token.
        self._tokens = [(name, _digest(t)) for name, t in tokens.items() if t]
        self._controller: Any = None

    # -- serve run of a rollout config ------------------------------------------------------------

    def start_rollout(self) -> Any:
        from rayrollout.api import controller_handle

        assert self.cfg.rollout is not None
        spec = RolloutSpec.model_validate(self.cfg.rollout)
        h = controller_handle(spec.model, spec.store_path)
        return ray.get(h.start.remote(spec.model_dump(mode="json"), "serve-run"))

    # -- HTTP --------------------------------------------------------------------------------------

    async def handle(self, request: Request, parts: list[str]) -> Response:
        """Answer ``/rollout/<parts>``; never raises."""
        try:
            return await self._route(request, parts)
        except RolloutError as e:
            headers = dict(NO_STORE)
            if isinstance(e, Unauthorized):
                headers["www-authenticate"] = 'Bearer realm="rayrollout"'
            return JSONResponse(error_body(e), status_code=http_status(e), headers=headers)
        except Exception as e:  # a bug or broken infrastructure: say so, keep the replica up
            log.exception("admin request %s %s failed", request.method, request.url.path)
            message = f"internal error: {type(e).__name__}: {e}"[:500]
            return JSONResponse(
                {"error": message, "code": "internal_error"},
                status_code=500,
                headers=NO_STORE,
            )

    async def _route(self, request: Request, parts: list[str]) -> Response:
        method = request.method
        if parts in ([], ["ui"]):
            _need(method, "GET")
            return self._page()
        if len(parts) != 1:
            raise NotFound(f"no admin route /rollout/{'/'.join(parts)}")
        what = parts[0]
        if what not in VERBS | {"status", "history", "verify", "replay", "start"}:
            raise NotFound(f"no admin route /rollout/{what}")
        actor = self.authenticate(request)
        q = request.query_params
        if what == "status":
            _need(method, "GET")
            return _json(await self._call("status"))
        if what == "history":
            _need(method, "GET")
            limit = _int_param(q.get("limit"), "limit")
            return _json(await self._call("history", limit, q.get("all", "0") in ("1", "true")))
        if what == "verify":
            _need(method, "GET")
            return _json(await self._call("verify"))
        if what == "replay":
            _need(method, "GET")
            return _json(await self._call("replay", _int_param(q.get("rollout"), "rollout")))
        _need(method, "POST")
        if what == "start":
            return _json(await self._start(await request.body(), actor))
        body = _verb_body(await request.body())
        log.info("%s by %s", what, actor)
        return _json(
            await self._call("command", what, actor, body.full, body.candidate, body.reason)
        )

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

    def _page(self) -> Response:
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

    # -- the controller ----------------------------------------------------------------------------

    async def _start(self, raw: bytes, actor: str) -> Any:
        from rayrollout.api import controller_handle

        try:
            spec = RolloutSpec.model_validate_json(raw or b"null")
        except ValidationError as e:
            raise BadRequest(f"invalid rollout spec:\n{format_validation_error(e)}") from None
        if spec.model != self.model:
            raise BadRequest(
                f"model: {spec.model!r} is not the model this router serves ({self.model!r})"
            )
        log.info("start of a rollout by %s", actor)
        if self._controller is None:  # blocking: creates the detached actor if it is not there
            self._controller = await asyncio.to_thread(
                controller_handle, self.model, spec.store_path
            )
        return await self._call("start", spec.model_dump(mode="json"), actor)

    async def _handle(self) -> Any:
        if self._controller is None:
            try:
                self._controller = await asyncio.to_thread(
                    ray.get_actor, controller_name(self.model), namespace=NAMESPACE
                )
            except ValueError:
                raise NotFound(
                    f"no rollout controller for model {self.model!r}: start a rollout first "
                    "(POST /rollout/start)"
                ) from None
        return self._controller

    async def _call(self, method: str, *args: Any) -> Any:
        """Call the controller; its exceptions come back as ours (409, 400, ...)."""
        h = await self._handle()
        try:
            return await getattr(h, method).remote(*args)
        except RayTaskError as e:
            # ``e.cause`` rather than ``as_instanceof_cause()``: the latter's message is the
            # remote traceback, and pydantic's ValidationError cannot be subclassed by Ray.
            cause = e.cause
            if isinstance(cause, RolloutError):
                raise cause from None
            if isinstance(cause, ValidationError):
                raise BadRequest(format_validation_error(cause)) from None
            raise
        except RayActorError as e:  # it died (and may be restarted): look it up afresh next time
            self._controller = None
            raise UnavailableError(
                f"the rollout controller of {self.model!r} is unavailable: {e.__class__.__name__}"
            ) from None


def _need(method: str, allowed: str) -> None:
    if method != allowed:
        raise MethodNotAllowed(f"{method} not allowed; use {allowed}")


def _int_param(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) < 1:
        raise BadRequest(f"{name}={value!r} must be a positive integer")
    return int(value)


def _verb_body(raw: bytes) -> VerbBody:
    if not raw.strip():
        return VerbBody()
    try:
        return VerbBody.model_validate_json(raw)
    except ValidationError as e:
        raise BadRequest(f"invalid body:\n{format_validation_error(e)}") from None


def _json(content: Any) -> Response:
    return Response(
        json.dumps(content, allow_nan=False, separators=(",", ":")),
        media_type="application/json",
        headers=NO_STORE,
    )
