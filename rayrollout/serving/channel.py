"""The node-local channel: a router calls a version replica on its own node over a loopback
socket, with no Serve handle in the way.

A Serve handle call costs two processes their handle machinery, a gRPC (or Ray actor) round
trip and the thread hops of each replica: several milliseconds when the machine is otherwise
quiet, against ~0.2 ms for a loopback socket. At low load that is most of what the router adds
to a request. So:

* **Server** (``ChannelServer``, in each version replica built on ``BatchedPredictor``: rayrollout's
  ``ModelVersion`` and users' ``TensorModel``s). Started on the replica's own event loop the first
  time a router asks for it (``channel_address``), listening on 127.0.0.1 only. Each connection
  must open with the replica's secret token, which a router gets only through Serve's handle;
  frames are raw tensors (``rayrollout.dataplane.frames``), never pickle. A request runs the
  replica's ``predict``, exactly as a handle call would (validation, batching, drills).
* **Client** (``Channels``, in the router). Used for a call sent alone (``Coalescer``: the
  version was idle at this router), and only to a replica on the router's own node: a lost node
  takes the router with it, so no call ever waits on a peer that vanished without a reset. Calls
  in groups (load) keep going by Serve's handle, so Serve's routing, backpressure and autoscaling
  see the load that matters; at most ``MAX_CONNECTIONS`` calls per version and router go by the
  channel at once.
* **Never worse than the handle.** A version without a channel (a user's deployment not built on
  ``BatchedPredictor``), a replica on another node, a refused connection, a reset, a malformed
  frame, an answer the channel cannot carry: the call goes by the handle as before (a prediction
  has no side effect). A model error is an answer: it fails the request as it would by handle.
  The address is found in the background and refreshed every ``REFRESH_S``, so replicas replaced
  or added are picked up; a replica shutting down closes its channel.

``RAYROLLOUT_CHANNEL=0`` turns the channel off: every call goes by Serve's handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rayrollout.dataplane.frames import (
    PREFIX_BYTES,
    FrameError,
    Unencodable,
    decode_arrays,
    frame,
    header_length,
    ok_frame,
    parse_header,
    predict_frame,
)

log = logging.getLogger("rayrollout.channel")

Arrays = dict[str, np.ndarray]
HOST = "127.0.0.1"
MAX_CONNECTIONS = 8  # per version and router: calls sent alone rarely overlap
REFRESH_S = 30.0  # an address is looked up again after this long
RETRY_S = 30.0  # after lookups found no replica on this node
FAILED_RETRY_S = 2.0  # after a lookup failed (the version's replica is starting, say)
QUICK_LOOKUPS = 5  # lookups FAILED_RETRY_S apart while they find other nodes' replicas
HELLO_TIMEOUT_S = 5.0


def enabled() -> bool:
    return os.environ.get("RAYROLLOUT_CHANNEL", "1") != "0"


async def read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytearray]:
    head = parse_header(await reader.readexactly(header_length(
        await reader.readexactly(PREFIX_BYTES))))
    body = bytearray(await reader.readexactly(head["body"])) if head["body"] else bytearray()
    return head, body


class ChannelServer:
    """A loopback server answering ``predict`` frames with ``predict``'s outputs."""

    def __init__(self, predict: Callable[[Arrays], Awaitable[Arrays]]) -> None:
        self._predict = predict
        self.token = secrets.token_hex(32)
        self.served = 0  # requests answered (outputs or a model error)
        self.refused = 0  # connections closed for a bad token or a malformed frame
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        """Listen (once) on an ephemeral loopback port; the port."""
        if self._server is None:
            self._loop = asyncio.get_running_loop()
            self._server = await asyncio.start_server(self._serve, HOST, 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            with contextlib.suppress(OSError):
                writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                                           socket.TCP_NODELAY, 1)
            head, _ = await asyncio.wait_for(read_frame(reader), HELLO_TIMEOUT_S)
            token = head.get("token")
            if head["t"] != "hello" or not isinstance(token, str) or not hmac.compare_digest(
                    token.encode(), self.token.encode()):
                raise FrameError("a connection that did not open with the replica's token")
            while True:
                head, body = await read_frame(reader)
                if head["t"] != "predict":
                    raise FrameError(f"a frame of type {head['t']!r} where a request belongs")
                writer.write(await self._answer(decode_arrays(head.get("arrays"), body)))
                await writer.drain()  # a large answer waits for the router to read it
        except (FrameError, TimeoutError) as e:  # (TimeoutError before OSError, its base)
            self.refused += 1
            log.warning("channel: a connection was closed: %s", e or type(e).__name__)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass  # the router closed it, or went away
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, inputs: Arrays) -> bytes:
        self.served += 1
        try:
            outputs = await self._predict(inputs)
        except Exception as e:
            return frame({"t": "error", "message": f"{type(e).__name__}: {e}"[:4000]})
        try:
            return ok_frame(outputs)
        except Unencodable as e:
            return frame({"t": "unsupported", "message": str(e)})

    def close(self) -> None:
        """Stop listening and close every connection; callable from any thread."""
        if self._server is None or self._loop is None:
            return

        def shut() -> None:
            assert self._server is not None
            self._server.close()
            for w in list(self._writers):
                w.close()

        with contextlib.suppress(RuntimeError):  # its loop already closed
            self._loop.call_soon_threadsafe(shut)


class ChannelModelError(RuntimeError):
    """The version's model failed on a request sent by the channel (its message)."""


class _Unusable(Exception):
    """The channel could not carry this call: send it by the handle."""


@dataclass
class _Conn:
    address: tuple[int, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class _Link:
    """One version's channel from this router: the replica's address and idle connections."""

    address: tuple[int, str] | None = None  # (port, token)
    found_at: float = 0.0
    retry_at: float = 0.0
    never: bool = False  # no replica of this version has a channel
    misses: int = 0  # lookups in a row that found a replica on another node
    busy: int = 0
    idle: list[_Conn] = field(default_factory=list)
    lookup: asyncio.Task[None] | None = None


Discover = Callable[[str], Awaitable[dict[str, Any] | None]]


class Channels:
    """The router's channels to its versions' replicas on this node.

    ``discover(version)`` asks a replica of the version (the one Serve's handle picks) for its
    ``channel_address``: a dict with ``node_id``, ``port`` and ``token``, or ``None`` when the
    version has no channel. A replica on another node is not used; the lookup is repeated
    (``QUICK_LOOKUPS`` times ``FAILED_RETRY_S`` apart, then every ``RETRY_S``), since Serve may
    pick this node's replica next time."""

    def __init__(self, discover: Discover, node_id: str) -> None:
        self._discover = discover
        self.node_id = node_id
        self._links: dict[str, _Link] = {}
        self.sent = 0  # calls answered by a channel
        self.fallbacks = 0  # calls the channel could not carry (sent by handle instead)

    async def call(self, version: str, inputs: Arrays) -> Arrays | None:
        """``inputs``' outputs by the channel, or ``None`` when the channel cannot carry the call
        now (send it by the handle). ``ChannelModelError``: the model failed on it."""
        link = self._links.get(version)
        if link is None:
            link = self._links[version] = _Link()
        now = time.monotonic()
        if link.never:
            return None
        if (link.address is None and now >= link.retry_at) or (
                link.address is not None and now - link.found_at >= REFRESH_S):
            self._look_up(version, link)
        if link.address is None or (not link.idle and link.busy >= MAX_CONNECTIONS):
            return None
        try:
            outputs = await self._send(link, inputs)
        except _Unusable:
            self.fallbacks += 1
            return None
        self.sent += 1
        return outputs

    async def _send(self, link: _Link, inputs: Arrays) -> Arrays:
        try:
            request = predict_frame(inputs)
        except Unencodable:
            raise _Unusable from None
        link.busy += 1
        conn: _Conn | None = None
        try:
            conn = link.idle.pop() if link.idle else await self._connect(link)
            conn.writer.write(request)
            head, body = await read_frame(conn.reader)
            if head["t"] == "ok":
                outputs = decode_arrays(head.get("arrays"), body)
            elif head["t"] == "error":
                self._put_back(link, conn)
                conn = None
                raise ChannelModelError(str(head.get("message", "the model failed")))
            elif head["t"] == "unsupported":  # an answer of Python objects: by handle for good
                link.never = True
                raise _Unusable
            else:
                raise FrameError(f"an answer of type {head['t']!r}")
            self._put_back(link, conn)
            conn = None
            return outputs
        except (OSError, asyncio.IncompleteReadError, FrameError) as e:
            # the replica went away (or was replaced); look again, and send this by handle
            log.info("channel to a replica of a version closed (%s: %s); calls go by handle "
                     "until it is found again", type(e).__name__, e)
            self._forget(link)
            raise _Unusable from None
        finally:
            link.busy -= 1
            if conn is not None:  # cancelled mid-call, or failed: its state is unknown
                conn.writer.close()

    @staticmethod
    def _put_back(link: _Link, conn: _Conn) -> None:
        if conn.address == link.address:
            link.idle.append(conn)
        else:  # the version's replica changed meanwhile
            conn.writer.close()

    @staticmethod
    async def _connect(link: _Link) -> _Conn:
        assert link.address is not None
        port, token = address = link.address
        reader, writer = await asyncio.open_connection(HOST, port)
        with contextlib.suppress(OSError):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.write(frame({"t": "hello", "token": token}))
        return _Conn(address, reader, writer)

    def _forget(self, link: _Link) -> None:
        link.address = None
        link.retry_at = 0.0  # look again at the next call
        for c in link.idle:
            c.writer.close()
        link.idle.clear()

    def _look_up(self, version: str, link: _Link) -> None:
        """Find the version's replica on this node, in the background (one lookup at a time)."""
        if link.lookup is not None and not link.lookup.done():
            return
        link.retry_at = time.monotonic() + RETRY_S
        link.lookup = asyncio.get_running_loop().create_task(self._find(version, link))

    async def _find(self, version: str, link: _Link) -> None:
        try:
            info = await self._discover(version)
        except Exception as e:
            log.info("version %r: no channel address (%s: %s); calls go by handle",
                     version, type(e).__name__, e)
            link.retry_at = time.monotonic() + FAILED_RETRY_S
            return
        if info is None:
            link.never = True
            return
        if info.get("node_id") != self.node_id:  # by handle; Serve may pick another replica
            link.misses += 1  # next time: soon a few times, then every RETRY_S
            if link.misses < QUICK_LOOKUPS:
                link.retry_at = time.monotonic() + FAILED_RETRY_S
            return
        link.misses = 0
        address = (int(info["port"]), str(info["token"]))
        if address != link.address:
            self._forget(link)
            link.address = address
        link.found_at = time.monotonic()

    def close(self) -> None:
        for link in self._links.values():
            self._forget(link)
            if link.lookup is not None:
                link.lookup.cancel()
