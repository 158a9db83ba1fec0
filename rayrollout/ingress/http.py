"""What the router and the admin API share over HTTP: ``JsonApp`` (Starlette routes whose every
error is answered as JSON from the package's one exception tree) and strict JSON responses."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Router
from starlette.types import Message, Receive, Scope, Send

from rayrollout.errors import (
    MethodNotAllowed,
    ModelError,
    NotFound,
    PayloadTooLarge,
    RolloutError,
    error_body,
    error_headers,
    http_status,
)

log = logging.getLogger("rayrollout.http")

NO_STORE = {"cache-control": "no-store"}

OnError = Callable[[Request, RolloutError], None]


def json_response(content: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    """Strict JSON (no NaN or infinity), compact."""
    return Response(
        json.dumps(content, allow_nan=False, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def error_response(exc: RolloutError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=http_status(exc),
                        headers={**error_headers(exc), **(headers or {})})


def as_rollout_error(request: Request, exc: HTTPException) -> RolloutError:
    """Starlette's routing outcome as an error of our tree."""
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 405:
        allow = tuple(m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m)
        return MethodNotAllowed(f"{request.method} not allowed on {request.url.path}; use "
                                f"{' or '.join(a for a in allow if a != 'HEAD')}", allow)
    if exc.status_code == 404:
        return NotFound(f"no route for {where}")
    err = RolloutError(exc.detail or f"HTTP {exc.status_code} for {where}")
    err.code = f"http_{exc.status_code}"
    return err


class JsonApp:
    """An ASGI application of Starlette routes (``Route``, ``Mount``) in which every error is
    answered as JSON from the one exception tree.

    * ``/a/b/`` is served as ``/a/b`` (one route per resource, no redirect to follow);
    * a ``RolloutError`` gets ``http_status(exc)``, ``{"error", "code"}`` and the headers the
      status needs; ``on_error`` sees it first (the router counts 4xx as rejected);
    * Starlette's routing outcomes become ours: no route is ``NotFound`` (404), a route that
      exists for other methods ``MethodNotAllowed`` (405, ``Allow`` from the route);
    * anything else is logged with its traceback and answered 500 ``internal_error`` (if no
      response has started); it never escapes to the server.

    One thin layer over ``starlette.routing.Router`` rather than the ``Starlette`` application
    class with its three middleware layers: this runs on every inference request."""

    def __init__(self, routes: list[BaseRoute], on_error: OnError | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.router = Router(routes=routes, redirect_slashes=False)
        self.on_error = on_error
        self.headers = dict(headers or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.router(scope, receive, send)
            return
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        scope["app"] = self  # Starlette's routes then raise HTTPException for 404 and 405
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.router(scope, receive, watch)
        except Exception as e:
            if started:
                log.exception("%s %s failed after its response started", scope.get("method"),
                              path)
                return
            await self._answer(Request(scope), e)(scope, receive, send)

    def _answer(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            exc = as_rollout_error(request, exc)
        if isinstance(exc, RolloutError) and not _internal(exc):
            if self.on_error is not None:
                self.on_error(request, exc)
            return error_response(exc, self.headers)
        eid = error_id()
        log.error("%s %s failed (error id %s)", request.method, request.url.path, eid,
                  exc_info=exc)
        body = {"error": f"internal error (error id {eid}; the details are in the log)",
                "code": "internal_error", "error_id": eid}
        return JSONResponse(body, status_code=500, headers=self.headers)


def _internal(exc: RolloutError) -> bool:
    """A 500 of ours that is not a model's failure (a broken store, a bug): its message may
    name files and internals, so the client gets an error id and the log the details."""
    return http_status(exc) == 500 and not isinstance(exc, ModelError)


def error_id() -> str:
    """An id that ties an answer to the log entry holding the details."""
    return secrets.token_hex(6)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with ``PayloadTooLarge`` (413) once it is over ``limit`` bytes: by its
    declared length first, then while it streams in (a chunked body has none), so no more than
    ``limit`` bytes plus one chunk are ever held."""
    clen = request.headers.get("content-length", "")
    if clen.isascii() and clen.isdigit() and (len(clen) > 18 or int(clen) > limit):
        shown = clen if len(clen) <= 18 else f"a {len(clen)}-digit number of"
        raise PayloadTooLarge(f"body of {shown} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def short_error(e: BaseException) -> str:
    """The most telling line of an error: remote tracebacks end with ``Type: message``."""
    lines = [ln.strip() for ln in str(e).strip().splitlines()]
    telling = [ln for ln in lines if ":" in ln and any(c.isalpha() for c in ln)]
    best = telling[-1] if telling else (lines[0] if lines else "")
    return (best or e.__class__.__name__)[:300]
