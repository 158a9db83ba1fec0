"""``ServeVersions``: the router's ``VersionClient`` over Serve deployment handles, one per
version application (its ingress deployment: rayrollout's ``ModelVersion``, or the ingress of
the user's own application), and the size cap of the handle transport in this process's Serve
mode.

The cheap path to a version:

* **The handle's router runs on the replica's own event loop** (``_run_router_in_separate_loop
  =False``), not on Serve's router thread: a call and its answer cross no thread.
* **Concurrent calls to a version are coalesced** (``rayrollout.ingress.coalesce``): a call
  that finds the version idle goes at once, alone (``predict``); calls that arrive while it is
  busy go together as one ``predict_many`` call, so Serve's per-call cost is paid once per
  group. A version whose ingress has no ``predict_many`` (a user's deployment not built on
  ``TensorModel``) gets its calls one by one.
* **A call sent alone goes by the node-local channel** where the version has a replica on
  the router's node (``rayrollout.serving.channel``): a loopback socket, no handle machinery.
  Groups, and every call the channel cannot carry, go by the handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import httpx
import numpy as np
from ray import serve
from ray.exceptions import ActorUnavailableError
from ray.serve.handle import DeploymentHandle

from rayrollout.dataplane.passthrough import Answer, Forward
from rayrollout.errors import UnavailableError
from rayrollout.ingress.coalesce import Coalescer
from rayrollout.names import version_app_name, version_route_prefix
from rayrollout.serving import channel
from rayrollout.serving.channel import Channels

log = logging.getLogger("rayrollout.router")

TRANSPORT_HEADROOM_BYTES = 64 * 1024  # pickle framing and Serve's request metadata
Arrays = dict[str, np.ndarray]
# Calls whose tensors hold at most this many bytes go over Serve's gRPC transport: far below
# its message cap (4 MiB by default), so their answers fit too
SMALL_PAYLOAD_BYTES = 64 * 1024


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


def too_large(e: BaseException) -> bool:
    """Whether ``e`` is gRPC refusing a message over its cap."""
    text = str(e)
    return "RESOURCE_EXHAUSTED" in text or "larger than max" in text


def missing_method(e: BaseException, name: str) -> bool:
    """Whether ``e`` is Serve saying the deployment has no method ``name`` (a user's ingress
    of another kind)."""
    return name in str(e) and "does not exist" in str(e)


def on_this_loop(handle: DeploymentHandle) -> None:
    """Start ``handle``'s router on the running event loop (Serve's ``CurrentLoopRouter``)
    rather than on its shared router thread, where Serve allows it."""
    if handle.is_initialized:
        return
    with contextlib.suppress(Exception):  # an older Serve, or no loop it accepts: the default
        handle._init(_run_router_in_separate_loop=False)


class ServeVersions:
    """Calls the ingress deployment of each version app of ``model``."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._client: httpx.AsyncClient | None = None
        self._handles: dict[str, DeploymentHandle] = {}
        # ``handle.predict`` builds a new handle on every attribute access: keep those made
        self._methods: dict[tuple[str, str, bool], DeploymentHandle] = {}
        self._grpc = os.environ.get("RAYROLLOUT_SMALL_CALLS_OVER_GRPC", "1") == "1"
        self._one_by_one: set[str] = set()  # versions without ``predict_many``
        self._large_answers: set[str] = set()  # versions whose answers gRPC could not carry
        self._coalescer: Coalescer[str, Arrays, Arrays] = Coalescer(self._send)
        self.channels: Channels | None = None
        import ray

        if channel.enabled() and ray.is_initialized():  # on a router replica
            self.channels = Channels(self._channel_address,
                                     ray.get_runtime_context().get_node_id())

    async def _handle(self, version: str) -> DeploymentHandle:
        """The handle of the version app's ingress deployment, found once. Serve looks the
        ingress up with a blocking call to its controller: made on a worker thread, never on
        the router's event loop; its router is then started on this loop."""
        h = self._handles.get(version)
        if h is None:
            h = await asyncio.to_thread(serve.get_app_handle,
                                        version_app_name(self.model, version))
            on_this_loop(h)
            self._handles[version] = h
        return h

    async def _method(self, version: str, name: str, small: bool = False) -> DeploymentHandle:
        """``handle.<name>`` of ``version``; ``small``: over Serve's gRPC transport (plain
        pickle, no Ray object store), for payloads well under its message cap."""
        key = (version, name, small and self._grpc)
        h = self._methods.get(key)
        if h is None:
            h = getattr(await self._handle(version), name)
            if key[2]:
                h = h.options(_by_reference=False, request_serialization="pickle",
                              response_serialization="pickle")
            self._methods[key] = h
        return h

    async def predict(self, version: str, inputs: Arrays) -> Arrays:
        return await self._coalescer.call(version, inputs)

    async def _send(self, version: str, items: list[Arrays]) -> list[Arrays | BaseException]:
        """One handle call for a group of requests to ``version``: over gRPC when the tensors
        are small, unless this version once answered more than gRPC carries (then, and from
        then on, by Ray's actor calls)."""
        small = (version not in self._large_answers
                 and sum(a.nbytes for x in items for a in x.values()) <= SMALL_PAYLOAD_BYTES)
        if small and len(items) == 1 and self.channels is not None:
            try:
                by_channel = await self.channels.call(version, items[0])
            except channel.ChannelModelError as e:
                return [e]
            if by_channel is not None:
                return [by_channel]
        try:
            return await self._call(version, items, small)
        except ActorUnavailableError as e:
            # The replica went away under the call (its node was lost, its process is gone):
            # Serve now holds it unavailable and picks another replica. A prediction has no
            # side effect, so the call is made once more; a version with no other replica
            # fails it again, and the request fails as before.
            log.warning("version %r: a replica was unavailable (%s); the call is sent once "
                        "more", version, e)
            return await self._call(version, items, small)
        except Exception as e:
            if not small or not too_large(e):
                raise
            log.warning("version %r answered more than the gRPC handle transport carries: its "
                        "calls go by Ray's actor calls from now on", version)
            self._large_answers.add(version)
        return await self._call(version, items, False)

    async def _call(self, version: str, items: list[Arrays], small: bool
                    ) -> list[Arrays | BaseException]:
        if len(items) == 1:
            one: Arrays = await (await self._method(version, "predict", small)).remote(items[0])
            return [one]
        if version not in self._one_by_one:
            try:
                many: list[Arrays | BaseException] = await (
                    await self._method(version, "predict_many", small)).remote(items)
                return many
            except Exception as e:
                if not missing_method(e, "predict_many"):
                    raise
                self._one_by_one.add(version)  # a user's ingress without it
        h = await self._method(version, "predict", small)
        return list(await asyncio.gather(*(h.remote(x) for x in items),
                                         return_exceptions=True))

    async def _channel_address(self, version: str) -> dict[str, Any] | None:
        """The channel of the replica of ``version`` Serve's handle picks (``Channels`` keeps it
        only when that replica is on this node), or ``None`` when the version's ingress has no
        channel (a user's deployment of another kind). The version's own handle: a second one
        would double what Serve's controller tracks and pushes for it."""
        try:
            info: dict[str, Any] = await (await self._handle(version)).channel_address.remote()
        except Exception as e:
            if missing_method(e, "channel_address"):
                return None
            raise
        return info

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
