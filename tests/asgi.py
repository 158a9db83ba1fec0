"""A synchronous HTTP client for an in-process ASGI app, on one event loop in a thread.

Starlette's ``TestClient`` wants the ``httpx2`` package; this uses httpx's own
``ASGITransport``. The app keeps one running loop across requests (as in a Serve replica), so
tasks it starts (shadow calls, the exporter) outlive the request that started them; ``run``
executes any other coroutine (``router.collect()``) on that same loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
from starlette.types import ASGIApp

T = TypeVar("T")


class AsgiClient:
    def __init__(self, app: ASGIApp, root_path: str = "", base_url: str = "http://test") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        self._client = httpx.AsyncClient(transport=transport, base_url=base_url + root_path,
                                         timeout=30)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self.run(self._client.request(method, url, **kw))

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def close(self) -> None:
        async def drain() -> None:
            await self._client.aclose()
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        self.run(drain())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> AsgiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
