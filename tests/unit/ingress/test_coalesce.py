"""The coalescer: one call per group of concurrent calls to a key, each call its own result."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any

import pytest

from rayrollout.ingress.coalesce import Coalescer


class Version:
    """A fake version: records each group it gets; fails the items ``bad``; answers a group
    when ``gate`` is set (set by default)."""

    def __init__(self, bad: frozenset[int] = frozenset(), fail_all: bool = False) -> None:
        self.groups: list[list[int]] = []
        self.bad = bad
        self.fail_all = fail_all
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, key: str, items: list[int]) -> Sequence[int | BaseException]:
        self.groups.append(list(items))
        await self.gate.wait()
        if self.fail_all:
            raise ConnectionError("replica died")
        return [ValueError(f"bad {i}") if i in self.bad else i * 10 for i in items]


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def gated(max_size: int = 32, max_wait_s: float = 60.0, bad: frozenset[int] = frozenset()
          ) -> tuple[Version, Coalescer[str, int, int]]:
    """A version that answers only once its gate is opened, and a coalescer in front of it."""
    v = Version(bad)
    v.gate.clear()
    return v, Coalescer(v.send, max_size=max_size, max_wait_s=max_wait_s)


async def busy(c: Coalescer[str, int, int]) -> asyncio.Future[int]:
    """Call 0 sent: the version is busy with it."""
    first = asyncio.ensure_future(c.call("v1", 0))
    await settle()
    return first


async def settle() -> None:
    """Let every ready task run (calls join their groups, sent groups reach the version)."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_an_idle_key_sends_at_once_alone() -> None:
    async def go() -> None:
        v = Version()
        c: Coalescer[str, int, int] = Coalescer(v.send, max_size=8, max_wait_s=60.0)
        assert await c.call("v1", 1) == 10  # a wait of 60 s would time the test out
        assert await c.call("v1", 2) == 20
        assert v.groups == [[1], [2]]
        assert c.in_flight("v1") == 0
    run(go())


def test_calls_that_arrive_while_busy_go_as_one_group_in_order() -> None:
    async def go() -> None:
        v, c = gated()
        first = await busy(c)
        rest = [asyncio.ensure_future(c.call("v1", i)) for i in range(1, 6)]
        await settle()
        assert v.groups == [[0]]  # the others wait for the version (no timer fired)
        v.gate.set()  # the first completes: the waiting group goes, as one call
        assert await asyncio.gather(first, *rest) == [0, 10, 20, 30, 40, 50]
        assert v.groups == [[0], [1, 2, 3, 4, 5]]
    run(go())


def test_a_group_is_bounded_in_size() -> None:
    async def go() -> None:
        v, c = gated(max_size=3)
        calls = [asyncio.ensure_future(c.call("v1", i)) for i in range(8)]
        await settle()
        assert v.groups[:3] == [[0], [1, 2, 3], [4, 5, 6]]  # full groups go at once
        v.gate.set()
        assert await asyncio.gather(*calls) == [i * 10 for i in range(8)]
        assert all(len(g) <= 3 for g in v.groups)
        assert sorted(i for g in v.groups for i in g) == list(range(8))
    run(go())


def test_a_group_waits_at_most_max_wait() -> None:
    async def go() -> None:
        v, c = gated(max_wait_s=0.01)
        first = await busy(c)  # never answered until the gate opens
        waiting = [asyncio.ensure_future(c.call("v1", i)) for i in (1, 2)]
        for _ in range(200):  # the timer, not the first call's answer, sends the group
            await asyncio.sleep(0.005)
            if len(v.groups) == 2:
                break
        assert v.groups == [[0], [1, 2]]
        assert not first.done()
        v.gate.set()
        assert await asyncio.gather(first, *waiting) == [0, 10, 20]
    run(go())


def test_a_failing_item_fails_only_itself() -> None:
    async def go() -> None:
        v, c = gated(bad=frozenset({2}))
        first = await busy(c)
        calls = [asyncio.ensure_future(c.call("v1", i)) for i in (1, 2, 3)]
        v.gate.set()
        got = await asyncio.gather(first, *calls, return_exceptions=True)
        assert got[:2] == [0, 10] and got[3] == 30
        assert isinstance(got[2], ValueError) and str(got[2]) == "bad 2"
        assert v.groups == [[0], [1, 2, 3]]
    run(go())


def test_a_failed_send_fails_its_group_only() -> None:
    async def go() -> None:
        v = Version(fail_all=True)
        c: Coalescer[str, int, int] = Coalescer(v.send)
        with pytest.raises(ConnectionError):
            await c.call("v1", 1)
        v.fail_all = False
        assert await c.call("v1", 2) == 20  # the key is usable again
        assert c.in_flight("v1") == 0
    run(go())


def test_keys_do_not_group_together() -> None:
    async def go() -> None:
        v, c = gated()
        calls = [asyncio.ensure_future(c.call(k, i)) for i, k in enumerate("aabb")]
        await settle()
        assert v.groups == [[0], [2]]  # one idle call per key went at once
        v.gate.set()
        assert await asyncio.gather(*calls) == [0, 10, 20, 30]
        assert sorted(v.groups) == [[0], [1], [2], [3]]
    run(go())


def test_a_cancelled_call_leaves_its_group() -> None:
    async def go() -> None:
        v, c = gated()
        first = await busy(c)
        gone = asyncio.ensure_future(c.call("v1", 1))
        kept = asyncio.ensure_future(c.call("v1", 2))
        await settle()
        gone.cancel()
        v.gate.set()
        assert await asyncio.gather(first, kept) == [0, 20]
        assert v.groups == [[0], [2]]  # the cancelled call was never sent
    run(go())


def test_a_group_whose_callers_all_left_is_cancelled() -> None:
    async def go() -> None:
        _, c = gated()
        call = asyncio.ensure_future(c.call("v1", 0))
        await settle()
        assert c.in_flight("v1") == 1
        call.cancel()
        await settle()
        assert c.in_flight("v1") == 0  # the send was cancelled with its only caller
    run(go())


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        Coalescer(Version().send, max_size=0)


def test_a_key_with_nothing_in_flight_holds_no_state() -> None:
    async def go() -> None:
        v, c = gated()
        first = await busy(c)
        later = [asyncio.ensure_future(c.call("v1", i)) for i in (1, 2)]
        await settle()
        assert c.in_flight("v1") == 1 and "v1" in c._keys
        v.gate.set()
        assert await first == 0 and await asyncio.gather(*later) == [10, 20]
        await settle()
        assert c.in_flight("v1") == 0 and c._keys == {}
        v.bad = frozenset({3})
        with pytest.raises(ValueError, match="bad 3"):
            await c.call("v2", 3)
        assert c._keys == {}

    run(go())
