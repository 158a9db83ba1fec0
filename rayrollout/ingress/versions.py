"""How the router calls a model version: the ``VersionClient`` interface, and ``LocalVersions``,
which runs ``ModelRuntime`` objects in this process (for tests and for trying the router
without a cluster).

On a cluster ``rayrollout.serving.handles.ServeVersions`` implements it with one Serve
``DeploymentHandle`` per version application.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from rayrollout.errors import UnavailableError
from rayrollout.runtime import ModelRuntime


class VersionClient(Protocol):
    """Calls to the versions of one model. A version that cannot be reached raises
    ``UnavailableError``; a model failure raises whatever the version raised."""

    async def predict(self, version: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One request's arrays in, the model's outputs out (the version may batch requests)."""
        ...

    async def signature(self, version: str) -> dict[str, Any]:
        """The version's ``ModelSignature.to_dict()`` plus its ``task``."""
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
    ) -> None:
        self.runtimes = dict(runtimes)
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
