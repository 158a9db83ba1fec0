"""What the router and the admin API share over HTTP: strict JSON responses and the exception
handlers that answer every error from the package's one exception tree.

* A ``RolloutError`` is answered with ``http_status(exc)`` and ``{"error", "code"}``, with the
  headers the status needs (``Allow`` on a 405, a Bearer challenge on a 401).
* Starlette's own routing errors become ours first: no route is ``NotFound`` (404), a route
  that exists for other methods is ``MethodNotAllowed`` (405, ``Allow`` listing them).
* Anything else is a bug or broken infrastructure: logged with its traceback and answered 500
  ``internal_error`` by ``CatchAll``; it never escapes to the server and never kills a replica.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rayrollout.errors import (
    MethodNotAllowed,
    NotFound,
    RolloutError,
    error_body,
    error_headers,
    http_status,
)

log = logging.getLogger("rayrollout.http")

NO_STORE = {"cache-control": "no-store"}

OnError = Callable[[Request, RolloutError], None]
Handler = Callable[[Request, Exception], Awaitable[Response]]


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


def exception_handlers(
    on_error: OnError | None = None, headers: Mapping[str, str] | None = None
) -> dict[Any, Handler]:
    """Starlette ``exception_handlers`` mapping our tree (and Starlette's routing errors) to
    responses; ``on_error`` sees every error first (the router counts 4xx as rejected)."""

    async def ours(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RolloutError)
        if on_error is not None:
            on_error(request, exc)
        return error_response(exc, headers)

    async def starlette_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return await ours(request, as_rollout_error(request, exc))

    return {RolloutError: ours, HTTPException: starlette_error}


class TrailingSlash:
    """ASGI middleware: ``/a/b/`` is served as ``/a/b`` (one route per resource, no redirect a
    client would have to follow)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        await self.app(scope, receive, send)


class CatchAll:
    """ASGI middleware: an exception no handler took is logged and answered 500 JSON (if no
    response has started), and does not propagate to the server."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.headers = dict(headers or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as e:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                return
            body = {"error": f"internal error: {type(e).__name__}: {e}"[:500],
                    "code": "internal_error"}
            await JSONResponse(body, status_code=500, headers=self.headers)(scope, receive, send)


def short_error(e: BaseException) -> str:
    """The most telling line of an error: remote tracebacks end with ``Type: message``."""
    lines = [ln.strip() for ln in str(e).strip().splitlines()]
    telling = [ln for ln in lines if ":" in ln and any(c.isalpha() for c in ln)]
    best = telling[-1] if telling else (lines[0] if lines else "")
    return (best or e.__class__.__name__)[:300]
