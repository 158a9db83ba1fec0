"""The node-local channel: a router calls a version replica on its own node over a local
socket, with no Serve handle in the way.

A Serve handle call costs two processes their handle machinery, a gRPC (or Ray actor) round
trip and the thread hops of each replica: several milliseconds when the machine is otherwise
quiet, against tens of microseconds for a local socket. At low load that is most of what the
router adds to a request. So:

* **Server** (``ChannelServer``, in each version replica built on ``BatchedPredictor``: rayrollout's
  ``ModelVersion`` and users' ``TensorModel``s). Started on the replica's own event loop the first
  time a router asks for it (``channel_address``). It listens on a Unix socket: in Linux's
  abstract namespace (no file to leave behind), elsewhere a file in a private directory; on a
  platform without Unix sockets, on 127.0.0.1. Each connection must open with the replica's
  secret token, which a router gets only through Serve's handle; frames are raw tensors
  (``rayrollout.dataplane.frames``), never pickle. A request runs the replica's ``predict``,
  exactly as a handle call would (validation, batching, drills), one at a time per connection.
* **Client** (``Channels``, in the router). Used for a call sent alone (``Coalescer``: the
  version was idle at this router), and only to a replica on the router's own node: a lost node
  takes the router with it, so no call ever waits on a peer that vanished without a reset. Calls
  in groups (load) keep going by Serve's handle, so Serve's routing, backpressure and autoscaling
  see the load that matters; at most ``MAX_CONNECTIONS`` calls per version and router go by the
  channel at once.
* **Lean on both ends.** Both ends are ``asyncio.Protocol``s that cut frames out of what the
  socket gives (``FrameBuffer``), with no stream reader in between; repeated layouts cost no
  JSON (``rayrollout.dataplane.frames``).
* **Never worse than the handle.** A version without a channel (a user's deployment not built on
  ``BatchedPredictor``), a replica on another node, a refused connection, a reset, a malformed
  frame, an answer the channel cannot carry: the call goes by the handle as before (a prediction
  has no side effect). A model error is an answer: it fails the request as it would by handle.
  The address is found in the background and refreshed every ``REFRESH_S``, so replicas replaced
  or added are picked up; a replica shutting down closes its channel. A channel that refuses
  connections (a router that cannot reach it) is asked again only after ``RETRY_S``.

``RAYROLLOUT_CHANNEL=0`` turns the channel off: every call goes by Serve's handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from rayrollout.dataplane.frames import (
    FrameBuffer,
    FrameError,
    Unencodable,
    decode_arrays,
    frame,
    ok_frame,
    predict_frame,
)

log = logging.getLogger("rayrollout.channel")

Arrays = dict[str, np.ndarray]
Frame = tuple[dict[str, Any], bytearray]
HOST = "127.0.0.1"  # where the channel listens on a platform without Unix sockets
UNIX = hasattr(socket, "AF_UNIX")
MAX_CONNECTIONS = 8  # per version and router: calls sent alone rarely overlap
REFRESH_S = 30.0  # an address is looked up again after this long
RETRY_S = 30.0  # after lookups found no replica on this node, or its channel refused us
FAILED_RETRY_S = 2.0  # after a lookup failed (the version's replica is starting, say)
QUICK_LOOKUPS = 5  # lookups FAILED_RETRY_S apart while they find other nodes' replicas
HELLO_TIMEOUT_S = 5.0
MAX_BACKLOG = 4  # requests read ahead on one connection (a router sends one at a time)
MAX_UNAUTHENTICATED = 64  # connections at once that have not yet sent the token


def enabled() -> bool:
    return os.environ.get("RAYROLLOUT_CHANNEL", "1") != "0"


def _sockaddr(path: str) -> str:
    """A path as ``bind`` and ``connect`` take it: ``@name`` is in Linux's abstract namespace."""
    return "\0" + path[1:] if path.startswith("@") else path


def _unix_socket() -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    return s


async def open_socket(address: dict[str, Any]) -> socket.socket:
    """A non-blocking socket connected to the channel at ``address`` (its ``path``, or its
    ``port`` on ``HOST``), for ``loop.create_connection(..., sock=...)``. (Made here: uvloop
    does not take abstract paths.)"""
    path = address.get("path")
    if path is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        target: Any = (HOST, int(address["port"]))
    else:
        sock, target = _unix_socket(), _sockaddr(str(path))
    try:
        await asyncio.get_running_loop().sock_connect(sock, target)
    except BaseException:
        sock.close()
        raise
    return sock


class _ServerConn(asyncio.Protocol):
    """One router's connection to a replica: the token first, then requests answered in
    order, one at a time (reading pauses past ``MAX_BACKLOG`` waiting, and no request starts
    while answers go unread)."""

    def __init__(self, server: ChannelServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.frames = FrameBuffer(first="hello")  # nothing else, no body, before the token
        self.hello: asyncio.TimerHandle | None = None
        self.authed = False
        self.backlog: deque[Arrays] = deque()
        self.running: asyncio.Task[None] | None = None
        self.paused = False  # reading, while requests wait
        self.blocked = False  # writing, while the router does not read its answers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's are not subclasses)
        self.server.conns.add(self)
        if sum(not c.authed for c in self.server.conns) > MAX_UNAUTHENTICATED:
            self.refuse(f"more than {MAX_UNAUTHENTICATED} connections waiting to send a token")
            return
        self.hello = asyncio.get_running_loop().call_later(
            HELLO_TIMEOUT_S, self.refuse, "a connection that sent no token in time")

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            for head, body in self.frames.feed(data):
                if not self.authed:  # a hello: ``FrameBuffer`` takes nothing else first
                    token = head.get("token")
                    if not isinstance(token, str) or not hmac.compare_digest(
                            token.encode(), self.server.token.encode()):
                        raise FrameError("a connection that did not open with the replica's "
                                         "token")
                    self.authed = True
                    if self.hello is not None:
                        self.hello.cancel()
                    continue
                if head["t"] != "predict":
                    raise FrameError(f"a frame of type {head['t']!r} where a request belongs")
                self.backlog.append(decode_arrays(head["arrays"], body))
        except FrameError as e:
            self.refuse(str(e))
            return
        if len(self.backlog) > MAX_BACKLOG and self.transport is not None:
            self.transport.pause_reading()  # a peer that does not wait for its answers
            self.paused = True
        if self.backlog and self.running is None:
            self._next()

    def _next(self) -> None:
        if self.transport is None or self.transport.is_closing() or self.blocked:
            return
        if self.backlog:
            self.running = asyncio.get_running_loop().create_task(
                self._run(self.backlog.popleft()))
        elif self.paused:
            self.paused = False
            self.transport.resume_reading()

    async def _run(self, inputs: Arrays) -> None:
        try:
            answer = await self.server.answer(inputs)
        except asyncio.CancelledError:
            if self.transport is None:  # the router gave up on the call: nothing to answer
                raise
            answer = frame({"t": "error", "message": "CancelledError: the request was "
                                                     "cancelled on the replica"})
        finally:
            self.running = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)
            self._next()

    def pause_writing(self) -> None:  # answers pile up unread: no more requests are started
        self.blocked = True

    def resume_writing(self) -> None:
        self.blocked = False
        if self.running is None:
            self._next()

    def refuse(self, why: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.server.refused += 1
            log.warning("channel: a connection was closed: %s", why)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)
        if self.hello is not None:
            self.hello.cancel()
        if self.running is not None:  # the router gave up on the call (or went away)
            self.running.cancel()
        self.transport = None


class ChannelServer:
    """A local server answering ``predict`` frames with ``predict``'s outputs."""

    def __init__(self, predict: Callable[[Arrays], Awaitable[Arrays]]) -> None:
        self._predict = predict
        self.token = secrets.token_hex(32)
        self.served = 0  # requests answered (outputs or a model error)
        self.refused = 0  # connections closed for a bad token or a malformed frame
        self.address: dict[str, Any] | None = None  # ``path`` or ``port``
        self.conns: set[_ServerConn] = set()
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dir: str | None = None  # the private directory of a socket file
        self._starting = asyncio.Lock()

    async def start(self) -> dict[str, Any]:
        """Listen (once); where: ``{"path": ...}`` or, without Unix sockets, ``{"port": ...}``."""
        async with self._starting:  # two routers asking at once get the one server
            if self._server is None:
                await self._listen()
        assert self.address is not None
        return self.address

    async def _listen(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        if not UNIX:
            self._server = await loop.create_server(lambda: _ServerConn(self), HOST, 0)
            self.address = {"port": int(self._server.sockets[0].getsockname()[1])}
        else:
            if sys.platform.startswith("linux"):
                path = f"@rayrollout-channel-{secrets.token_hex(12)}"
            else:  # a file only this user can reach
                self._dir = tempfile.mkdtemp(prefix="rr-channel-")
                path = os.path.join(self._dir, "s")
            sock = _unix_socket()
            try:
                sock.bind(_sockaddr(path))
                self._server = await loop.create_unix_server(lambda: _ServerConn(self),
                                                             sock=sock)
            except BaseException:
                sock.close()
                raise
            self.address = {"path": path}

    async def answer(self, inputs: Arrays) -> bytes:
        self.served += 1
        try:
            outputs = await self._predict(inputs)
        except Exception as e:
            return frame({"t": "error", "message": f"{type(e).__name__}: {e}"[:4000]})
        try:
            return ok_frame(outputs)
        except Exception as e:  # Python objects, ragged lists: the handle carries them
            return frame({"t": "unsupported", "message": f"{type(e).__name__}: {e}"[:4000]})

    def close(self) -> None:
        """Stop listening and close every connection; callable from any thread."""
        if self._server is None or self._loop is None:
            return

        def shut() -> None:
            assert self._server is not None
            self._server.close()
            for c in list(self.conns):
                if c.transport is not None:
                    c.transport.close()
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)

        with contextlib.suppress(RuntimeError):  # its loop already closed
            self._loop.call_soon_threadsafe(shut)


class ChannelModelError(RuntimeError):
    """The version's model failed on a request sent by the channel (its message)."""


class _Unusable(Exception):
    """The channel could not carry this call: send it by the handle."""


Address = tuple[str, Any, str]  # ("path" or "port", where, token)


class _ClientConn(asyncio.Protocol):
    """A router's connection to a replica's channel: one call at a time."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.frames = FrameBuffer()
        self.waiter: asyncio.Future[Frame] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's are not subclasses)

    def call(self, request: bytes) -> asyncio.Future[Frame]:
        if self.transport is None:
            raise ConnectionResetError("the channel closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        try:
            got = self.frames.feed(data)
            if len(got) > 1 or (got and (self.waiter is None or self.waiter.done())):
                raise FrameError("an answer nobody asked for")
        except FrameError as e:
            self._fail(e)
            return
        if got:
            waiter, self.waiter = self.waiter, None
            assert waiter is not None
            waiter.set_result(got[0])

    def _fail(self, e: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(e)
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            reset = ConnectionResetError("the channel closed")
            reset.__cause__ = exc
            self.waiter.set_exception(reset)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()


@dataclass
class _Link:
    """One version's channel from this router: the replica's address and idle connections."""

    address: Address | None = None
    found_at: float = 0.0
    retry_at: float = 0.0
    never: bool = False  # no replica of this version has a channel
    misses: int = 0  # lookups in a row that found a replica on another node
    refusals: int = 0  # connections in a row the address refused
    busy: int = 0
    idle: list[_ClientConn] = field(default_factory=list)
    lookup: asyncio.Task[None] | None = None


Discover = Callable[[str], Awaitable[dict[str, Any] | None]]


def _address(info: dict[str, Any]) -> Address:
    token = str(info["token"])
    if info.get("path") is not None:
        return "path", str(info["path"]), token
    return "port", int(info["port"]), token


class Channels:
    """The router's channels to its versions' replicas on this node.

    ``discover(version)`` asks a replica of the version (the one Serve's handle picks) for its
    ``channel_address``: a dict with ``node_id``, ``path`` (or ``port``) and ``token``, or
    ``None`` when the version has no channel. A replica on another node is not used; the lookup
    is repeated (``QUICK_LOOKUPS`` times ``FAILED_RETRY_S`` apart, then every ``RETRY_S``),
    since Serve may pick this node's replica next time."""

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
        if link.never:
            return None
        now = time.monotonic()
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
        conn: _ClientConn | None = None
        try:
            conn = self._idle(link) or await self._connect(link)
            head, body = await conn.call(request)
            if head["t"] == "ok":
                outputs = decode_arrays(head["arrays"], body)
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
        except (OSError, FrameError) as e:
            # the replica went away (or was replaced); look again, and send this by handle
            log.info("channel to a replica of a version closed (%s: %s); calls go by handle "
                     "until it is found again", type(e).__name__, e)
            self._forget(link)
            raise _Unusable from None
        finally:
            link.busy -= 1
            if conn is not None:  # cancelled mid-call, or failed: its state is unknown
                conn.close()

    @staticmethod
    def _idle(link: _Link) -> _ClientConn | None:
        """An idle connection still open; ``ConnectionResetError`` when the ones kept were
        closed by the replica (it went away, or was replaced)."""
        closed = False
        while link.idle:
            conn = link.idle.pop()
            if conn.usable:
                return conn
            closed = True
        if closed:
            raise ConnectionResetError("the replica closed its channel")
        return None

    @staticmethod
    def _put_back(link: _Link, conn: _ClientConn) -> None:
        if conn.address == link.address and conn.usable:
            link.idle.append(conn)
        else:  # the version's replica changed meanwhile
            conn.close()

    async def _connect(self, link: _Link) -> _ClientConn:
        assert link.address is not None
        key, where, token = address = link.address
        conn = _ClientConn(address)
        try:
            sock = await open_socket({key: where})
            try:
                await asyncio.get_running_loop().create_connection(lambda: conn, sock=sock)
            except BaseException:
                sock.close()
                raise
        except OSError as e:  # nobody listens there (any more), or this router cannot reach it
            link.refusals += 1  # looked up again soon a few times, then every RETRY_S
            log.info("a version's channel refused a connection (%s); calls go by handle", e)
            self._forget(link, FAILED_RETRY_S if link.refusals < QUICK_LOOKUPS else RETRY_S)
            raise _Unusable from None
        link.refusals = 0
        assert conn.transport is not None
        conn.transport.write(frame({"t": "hello", "token": token}))
        return conn

    @staticmethod
    def _forget(link: _Link, retry_s: float = 0.0) -> None:
        """Drop the address (looked up again after ``retry_s``) and the idle connections."""
        link.address = None
        link.retry_at = time.monotonic() + retry_s
        for c in link.idle:
            c.close()
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
        address = _address(info)
        if address != link.address:
            self._forget(link)
            link.address = address
        link.found_at = time.monotonic()

    def close(self) -> None:
        for link in self._links.values():
            self._forget(link)
            if link.lookup is not None:
                link.lookup.cancel()
