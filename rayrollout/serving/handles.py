"""``ServeVersions``: the router's ``VersionClient`` over Serve deployment handles, one per
version application, and the size cap of the handle transport in this process's Serve mode."""

from __future__ import annotations

from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from rayrollout.names import VERSION_DEPLOYMENT, version_app_name

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
    """Calls the ``ModelVersion`` deployment of each version app of ``model``."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._handles: dict[str, DeploymentHandle] = {}
        self._predict: dict[str, DeploymentHandle] = {}  # handle.predict, made once per version

    def _handle(self, version: str) -> DeploymentHandle:
        h = self._handles.get(version)
        if h is None:
            h = serve.get_deployment_handle(VERSION_DEPLOYMENT,
                                            version_app_name(self.model, version))
            self._handles[version] = h
        return h

    async def predict(self, version: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # ``handle.predict`` builds a new handle on every attribute access: keep the one made.
        h = self._predict.get(version)
        if h is None:
            h = self._predict[version] = self._handle(version).predict
        result: dict[str, np.ndarray] = await h.remote(inputs)
        return result

    async def signature(self, version: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._handle(version).signature.remote()
        return result
