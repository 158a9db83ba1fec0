"""The node-local channel over real local sockets (no Ray), Unix and, where a platform has none,
TCP on loopback: a router's ``Channels`` against a replica's ``ChannelServer``. Calls go by the
channel once the address is found; every way the channel can fail sends the call back to the
handle (``None``); a model error is an answer; peers without the token, or with malformed
frames, are refused and the server keeps serving."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from rayrollout.dataplane.frames import frame, predict_frame
from rayrollout.serving import channel
from rayrollout.serving.channel import ChannelModelError, Channels, ChannelServer
from tests.channel_peer import open_stream, read_frame, refused_after

Arrays = dict[str, np.ndarray]
NODE = "node-a"


@pytest.fixture(autouse=True, params=["unix", "tcp"])
def transport(request: pytest.FixtureRequest, monkeypatch: Any) -> str:
    """Every test over a Unix socket, and over TCP (a platform without Unix sockets)."""
    monkeypatch.setattr(channel, "UNIX", request.param == "unix")
    return str(request.param)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


async def double(inputs: Arrays) -> Arrays:
    x = inputs["x"]
    if (x < 0).any():
        raise ValueError("negative input")
    return {"y": x * 2, "label": np.argmax(x, axis=1)}


class Replica:
    """A version replica's channel, and what a lookup of it answers."""

    def __init__(self, predict: Callable[[Arrays], Awaitable[Arrays]] = double,
                 node: str = NODE) -> None:
        self.server = ChannelServer(predict)
        self.node = node
        self.lookups = 0
        self.where: dict[str, Any] = {}

    async def start(self) -> None:
        self.where = await self.server.start()

    async def discover(self, version: str) -> dict[str, Any] | None:
        self.lookups += 1
        return {"node_id": self.node, **self.where, "token": self.server.token}


async def found(ch: Channels, version: str, x: Arrays) -> Arrays | None:
    """The first call looks the address up (and goes by handle); the next by the channel."""
    assert await ch.call(version, x) is None
    for _ in range(100):
        await asyncio.sleep(0.01)
        link = ch._links[version]
        if link.address is not None or link.never:
            break
    return await ch.call(version, x)


X = {"x": np.array([[1.0, 3.0, 2.0]], dtype=np.float32)}


def test_calls_go_by_the_channel_once_found() -> None:
    async def go() -> None:
        r = Replica()
        await r.start()
        ch = Channels(r.discover, NODE)
        out = await found(ch, "v1", X)
        assert out is not None
        np.testing.assert_array_equal(out["y"], X["x"] * 2)
        assert out["label"].tolist() == [1]
        for _ in range(5):
            assert (await ch.call("v1", X)) is not None
        assert r.server.served == 6 and ch.sent == 6 and r.lookups == 1
        assert len(ch._links["v1"].idle) == 1  # one connection, reused
        ch.close()
        r.server.close()

    run(go())


def test_a_model_error_is_an_answer_and_the_connection_stays() -> None:
    async def go() -> None:
        r = Replica()
        await r.start()
        ch = Channels(r.discover, NODE)
        await found(ch, "v1", X)
        with pytest.raises(ChannelModelError, match="ValueError: negative input"):
            await ch.call("v1", {"x": -X["x"]})
        assert (await ch.call("v1", X)) is not None
        assert ch.fallbacks == 0 and len(ch._links["v1"].idle) == 1
        r.server.close()

    run(go())


def test_a_replica_on_another_node_is_never_called() -> None:
    async def go() -> None:
        r = Replica(node="node-b")
        await r.start()
        ch = Channels(r.discover, NODE)
        assert await found(ch, "v1", X) is None
        for _ in range(3):
            assert await ch.call("v1", X) is None
        assert r.lookups == 1  # looked up again only after RETRY_S
        assert r.server.served == 0
        r.server.close()

    run(go())


def test_lookups_that_meet_another_nodes_replica_are_repeated_soon(monkeypatch: Any) -> None:
    """Serve's handle may pick a replica on another node first: the router asks again soon
    (a few times), and uses this node's replica once a lookup finds it."""
    monkeypatch.setattr(channel, "FAILED_RETRY_S", 0.05)

    async def go() -> None:
        r = Replica()
        await r.start()
        nodes = iter(["node-b", "node-b", NODE])

        async def discover(version: str) -> dict[str, Any] | None:
            r.node = next(nodes)
            return await r.discover(version)

        ch = Channels(discover, NODE)
        out = None
        for _ in range(100):
            out = await ch.call("v1", X)
            if out is not None:
                break
            await asyncio.sleep(0.02)
        assert out is not None and r.lookups == 3 and ch._links["v1"].misses == 0
        r.server.close()

    run(go())


def test_a_version_without_a_channel_is_not_asked_again() -> None:
    async def go() -> None:
        asked = []

        async def none(version: str) -> None:
            asked.append(version)

        ch = Channels(none, NODE)
        assert await found(ch, "v1", X) is None
        assert await ch.call("v1", X) is None
        assert asked == ["v1"] and ch._links["v1"].never

    run(go())


def test_a_failed_lookup_sends_by_handle() -> None:
    async def go() -> None:
        async def broken(version: str) -> None:
            raise RuntimeError("no replica yet")

        ch = Channels(broken, NODE)
        assert await found(ch, "v1", X) is None
        assert not ch._links["v1"].never  # looked up again later

    run(go())


def test_a_replica_gone_sends_by_handle_and_its_successor_is_found() -> None:
    async def go() -> None:
        r = Replica()
        await r.start()
        ch = Channels(r.discover, NODE)
        await found(ch, "v1", X)
        r.server.close()  # the replica shuts down: its connections are closed
        await asyncio.sleep(0.05)
        assert await ch.call("v1", X) is None  # by handle
        assert ch.fallbacks == 1 and ch._links["v1"].address is None
        successor = Replica()
        await successor.start()
        r.where, r.server = successor.where, successor.server  # what a lookup now finds
        out = await found(ch, "v1", X)
        assert out is not None and successor.server.served == 1
        successor.server.close()

    run(go())


def test_a_stale_token_is_refused_and_sends_by_handle() -> None:
    async def go() -> None:
        r = Replica()
        await r.start()
        ch = Channels(r.discover, NODE)
        await found(ch, "v1", X)
        link = ch._links["v1"]
        for c in link.idle:
            c.close()
        link.idle.clear()
        assert link.address is not None
        link.address = (*link.address[:2], "0" * 64)
        assert await ch.call("v1", X) is None
        await asyncio.sleep(0.05)
        assert r.server.refused == 1 and r.server.served == 1
        r.server.close()

    run(go())


def test_a_cancelled_call_closes_its_connection_and_the_next_opens_one() -> None:
    async def go() -> None:
        gate = asyncio.Event()

        async def slow(inputs: Arrays) -> Arrays:
            if inputs["x"][0, 0] == 9:
                await gate.wait()
            return await double(inputs)

        r = Replica(slow)
        await r.start()
        ch = Channels(r.discover, NODE)
        await found(ch, "v1", X)
        t = asyncio.ensure_future(ch.call("v1", {"x": np.full((1, 3), 9, np.float32)}))
        await asyncio.sleep(0.05)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        link = ch._links["v1"]
        assert link.busy == 0 and link.idle == []
        assert (await ch.call("v1", X)) is not None
        gate.set()
        r.server.close()

    run(go())


def test_at_most_max_connections_calls_at_once_then_by_handle(monkeypatch: Any) -> None:
    monkeypatch.setattr(channel, "MAX_CONNECTIONS", 2)

    async def go() -> None:
        gate = asyncio.Event()

        async def held(inputs: Arrays) -> Arrays:
            await gate.wait()
            return await double(inputs)

        r = Replica(held)
        await r.start()
        ch = Channels(r.discover, NODE)
        assert await ch.call("v1", X) is None
        await asyncio.sleep(0.05)
        calls = [asyncio.ensure_future(ch.call("v1", X)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert await ch.call("v1", X) is None  # both connections busy
        gate.set()
        assert all(out is not None for out in await asyncio.gather(*calls))
        r.server.close()

    run(go())


def test_an_answer_the_channel_cannot_carry_sends_the_version_by_handle() -> None:
    async def objects(inputs: Arrays) -> Arrays:
        return {"y": np.array(["a", None], dtype=object)}

    async def go() -> None:
        r = Replica(objects)
        await r.start()
        ch = Channels(r.discover, NODE)
        assert await found(ch, "v1", X) is None
        assert ch._links["v1"].never
        assert await ch.call("v1", X) is None
        assert r.server.served == 1
        r.server.close()

    run(go())


@pytest.mark.parametrize("payload", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not a frame
    struct.pack("!I", 2**31) + b"x" * 16,  # a header length far over the cap
    frame({"t": "predict", "arrays": []}),  # a request before the token
    frame({"t": "hello", "token": "guess"}) + predict_frame(X),
    frame({"t": "hello", "token": 7}),
    # a first frame that would make the replica hold a body before the token
    struct.pack("!I", 60) + b'{"t":"hello","token":"x","body":200000000}'.ljust(60),
    frame({"t": "hello", "token": "x" * 2000}),  # a first header over 1 KiB
])
def test_hostile_peers_are_refused_and_the_server_keeps_serving(payload: bytes) -> None:
    async def go() -> None:
        r = Replica()
        await r.start()
        assert await refused_after(r.where, payload) == b""  # closed, nothing answered
        assert r.server.refused == 1 and r.server.served == 0
        ch = Channels(r.discover, NODE)
        assert await found(ch, "v1", X) is not None
        r.server.close()

    run(go())


def test_a_peer_that_never_says_hello_is_dropped(monkeypatch: Any) -> None:
    monkeypatch.setattr(channel, "HELLO_TIMEOUT_S", 0.1)

    async def go() -> None:
        r = Replica()
        await r.start()
        assert await refused_after(r.where, b"") == b""
        assert r.server.refused == 1
        r.server.close()

    run(go())


def test_malformed_requests_after_the_token_are_refused() -> None:
    async def go() -> None:
        r = Replica()
        await r.start()
        hello = frame({"t": "hello", "token": r.server.token})
        bad = frame({"t": "predict", "arrays": [["x", "O", [1]]]}, b"\0" * 8)
        assert await refused_after(r.where, hello + bad) == b""
        reader, writer = await open_stream(r.where)
        writer.write(hello + predict_frame(X))
        head, _ = await read_frame(reader)  # a good peer is answered
        assert head["t"] == "ok"
        writer.close()
        assert r.server.refused == 1 and r.server.served == 1
        r.server.close()

    run(go())


def test_requests_sent_ahead_on_one_connection_are_answered_in_order() -> None:
    """The router waits for each answer; a peer that does not is still answered, in order."""
    async def go() -> None:
        r = Replica()
        await r.start()
        reader, writer = await open_stream(r.where)
        writer.write(frame({"t": "hello", "token": r.server.token}) + b"".join(
            predict_frame({"x": np.full((1, 3), i, np.float32)}) for i in range(10)))
        for i in range(10):
            head, body = await read_frame(reader)
            assert head["t"] == "ok"
            y = np.frombuffer(body[:12], np.float32)
            assert y.tolist() == [2.0 * i] * 3
        writer.close()
        assert r.server.served == 10
        r.server.close()

    run(go())


def test_a_channel_that_refuses_connections_is_asked_again_less_and_less(
        monkeypatch: Any) -> None:
    """An address nobody answers on (the replica gone before the lookup, or out of this
    router's reach): by handle, looked up again soon a few times, then every RETRY_S."""
    monkeypatch.setattr(channel, "FAILED_RETRY_S", 0.05)

    async def go() -> None:
        r = Replica()
        await r.start()
        r.server.close()  # nobody listens at the address a lookup finds
        await asyncio.sleep(0.05)
        ch = Channels(r.discover, NODE)
        for _ in range(200):
            assert await ch.call("v1", X) is None
            await asyncio.sleep(0.01)
        link = ch._links["v1"]
        assert link.refusals == channel.QUICK_LOOKUPS and r.lookups == channel.QUICK_LOOKUPS
        assert link.retry_at - asyncio.get_running_loop().time() > channel.RETRY_S - 5

    run(go())


def test_a_call_given_up_stops_its_request_on_the_replica() -> None:
    async def go() -> None:
        started, stopped = asyncio.Event(), asyncio.Event()

        async def endless(inputs: Arrays) -> Arrays:
            started.set()
            try:
                await asyncio.sleep(60)
            finally:
                stopped.set()
            return inputs

        r = Replica(endless)
        await r.start()
        ch = Channels(r.discover, NODE)
        assert await ch.call("v1", X) is None
        await asyncio.sleep(0.05)
        t = asyncio.ensure_future(ch.call("v1", X))
        await asyncio.wait_for(started.wait(), 5)
        t.cancel()
        await asyncio.wait_for(stopped.wait(), 5)  # the connection closed: predict cancelled
        r.server.close()

    run(go())


def test_connections_waiting_to_send_the_token_are_capped(monkeypatch: Any) -> None:
    monkeypatch.setattr(channel, "MAX_UNAUTHENTICATED", 2)

    async def go() -> None:
        r = Replica()
        await r.start()
        silent = [await open_stream(r.where) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert await refused_after(r.where, b"") == b""  # the third: closed at once
        assert r.server.refused == 1
        for _, w in silent:
            w.close()
        await asyncio.sleep(0.05)
        ch = Channels(r.discover, NODE)  # room again once they went
        assert await found(ch, "v1", X) is not None
        r.server.close()

    run(go())


def test_a_request_cancelled_inside_the_replica_is_answered_as_an_error() -> None:
    """Serve's batching may cancel a request's own future: the router gets an error at once,
    not a wait until its deadline."""
    async def cancelled(inputs: Arrays) -> Arrays:
        raise asyncio.CancelledError

    async def go() -> None:
        r = Replica(cancelled)
        await r.start()
        ch = Channels(r.discover, NODE)
        assert await ch.call("v1", X) is None
        await asyncio.sleep(0.05)
        with pytest.raises(ChannelModelError, match="cancelled on the replica"):
            await ch.call("v1", X)
        assert len(ch._links["v1"].idle) == 1  # the connection stays usable
        r.server.close()

    run(go())


def test_an_answer_that_will_not_encode_sends_the_version_by_handle() -> None:
    async def ragged(inputs: Arrays) -> Arrays:
        return {"y": [[1.0, 2.0], [3.0]]}  # type: ignore[dict-item]

    async def go() -> None:
        r = Replica(ragged)
        await r.start()
        ch = Channels(r.discover, NODE)
        assert await found(ch, "v1", X) is None and ch._links["v1"].never
        r.server.close()

    run(go())
