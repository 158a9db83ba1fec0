"""How the router calls a model version: the ``VersionClient`` interface, and ``LocalVersions``,
which runs ``ModelRuntime`` objects (and, for pass-through versions, ASGI apps) in this process
(for tests and for trying the router without a cluster).

On a cluster ``rayrollout.serving.handles.ServeVersions`` implements it with one Serve
``DeploymentHandle`` per version application.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from rayrollout.dataplane.passthrough import Answer, Forward
from rayrollout.errors import UnavailableError
from rayrollout.runtime import ModelRuntime

# An ASGI application (a pass-through version in this process).
ASGIApp = Any


class VersionClient(Protocol):
    """Calls to the versions of one model. A version that cannot be reached raises
    ``UnavailableError``; a model failure raises whatever the version raised."""

    async def predict(self, version: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One request's arrays in, the model's outputs out (the version may batch requests)."""
        ...

    async def signature(self, version: str) -> dict[str, Any]:
        """The version's ``ModelSignature.to_dict()`` plus its ``task``."""
        ...

    async def forward(self, version: str, request: Forward, via: tuple[str, int] | None
                      ) -> Answer:
        """Pass one HTTP request through to a version that speaks its own HTTP and return its
        answer as it is (any status). ``via`` is the Serve proxy the request came in by."""
        ...


class LocalVersions:
    """``VersionClient`` over runtimes in this process: ``{version: runtime}``, each with its
    task. ``delay_s`` makes every call to a version take that long (timeouts, in-flight bounds);
    ``calls`` counts predict calls per version."""

    def __init__(
        self,
        runtimes: Mapping[str, ModelRuntime],
        tasks: Mapping[str, str] | None = None,
        delay_s: Mapping[str, float] | None = None,
        apps: Mapping[str, ASGIApp] | None = None,
    ) -> None:
        self.runtimes = dict(runtimes)
        self.apps = dict(apps or {})
        self.tasks = dict(tasks or {})
        self.delay_s = dict(delay_s or {})
        self.calls: dict[str, int] = {}

    def _runtime(self, version: str) -> ModelRuntime:
        rt = self.runtimes.get(version)
        if rt is None:
            raise UnavailableError(f"version {version!r} is not deployed")
        return rt

    async def predict(self, version: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rt = self._runtime(version)
        self.calls[version] = self.calls.get(version, 0) + 1
        if self.delay_s.get(version):
            await asyncio.sleep(self.delay_s[version])
        return rt.predict(inputs)

    async def signature(self, version: str) -> dict[str, Any]:
        rt = self._runtime(version)
        return {**rt.signature.to_dict(), "task": self.tasks.get(version, "classification")}

    async def forward(self, version: str, request: Forward, via: tuple[str, int] | None
                      ) -> Answer:
        import httpx

        app = self.apps.get(version)
        if app is None:
            raise UnavailableError(f"version {version!r} is not deployed")
        self.calls[version] = self.calls.get(version, 0) + 1
        if self.delay_s.get(version):
            await asyncio.sleep(self.delay_s[version])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://version") as client:
            url = request.path + (f"?{request.query}" if request.query else "")
            r = await client.request(request.method, url, headers=list(request.headers),
                                     content=request.body)
        return Answer(r.status_code, tuple(r.headers.multi_items()), r.content)
