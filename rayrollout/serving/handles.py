"""``ServeVersions``: the router's ``VersionClient`` over Serve deployment handles, one per
version application (its ingress deployment: rayrollout's ``ModelVersion``, or the ingress of
the user's own application), and the size cap of the handle transport in this process's Serve
mode."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from rayrollout.dataplane.passthrough import Answer, Forward
from rayrollout.errors import UnavailableError
from rayrollout.names import version_app_name, version_route_prefix

TRANSPORT_HEADROOM_BYTES = 64 * 1024  # pickle framing and Serve's request metadata


def handle_transport_limit() -> int | None:
    """Bytes of tensor data one handle call to a version can carry in this process's Serve mode:
    with the gRPC handle transport (``RAY_SERVE_USE_GRPC_BY_DEFAULT``, on with
    ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``) a message is capped at
    ``RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH`` (4 MiB by default); Ray's actor calls have no
    such cap (``None``)."""
    from ray.serve._private import constants

    if not getattr(constants, "RAY_SERVE_USE_GRPC_BY_DEFAULT", False):
        return None
    cap = int(getattr(constants, "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH", 4 * 1024 * 1024))
    return max(cap - TRANSPORT_HEADROOM_BYTES, 0)


class ServeVersions:
    """Calls the ingress deployment of each version app of ``model``."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._client: httpx.AsyncClient | None = None
        self._handles: dict[str, DeploymentHandle] = {}
        self._predict: dict[str, DeploymentHandle] = {}  # handle.predict, made once per version

    async def _handle(self, version: str) -> DeploymentHandle:
        """The handle of the version app's ingress deployment, found once. Serve looks the
        ingress up with a blocking call to its controller: made on a worker thread, never on
        the router's event loop."""
        h = self._handles.get(version)
        if h is None:
            h = await asyncio.to_thread(serve.get_app_handle,
                                        version_app_name(self.model, version))
            self._handles[version] = h
        return h

    async def predict(self, version: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # ``handle.predict`` builds a new handle on every attribute access: keep the one made.
        h = self._predict.get(version)
        if h is None:
            h = self._predict[version] = (await self._handle(version)).predict
        result: dict[str, np.ndarray] = await h.remote(inputs)
        return result

    async def signature(self, version: str) -> dict[str, Any]:
        result: dict[str, Any] = await (await self._handle(version)).signature.remote()
        return result

    async def forward(self, version: str, request: Forward, via: tuple[str, int] | None
                      ) -> Answer:
        """Through the Serve proxy the request came in by, to the version app's internal route
        prefix: the app sees the request as its own clients would send it."""
        if via is None:
            raise UnavailableError("no Serve proxy to pass the request through")
        if self._client is None:  # one pool per router replica, on its event loop
            self._client = httpx.AsyncClient(timeout=None, limits=httpx.Limits(
                max_connections=1000, max_keepalive_connections=100))
        host, port = via
        url = f"http://{host}:{port}{version_route_prefix(self.model, version)}{request.path}"
        if request.query:
            url += f"?{request.query}"
        r = await self._client.request(request.method, url, headers=list(request.headers),
                                       content=request.body)
        return Answer(r.status_code, tuple(r.headers.multi_items()), r.content)
