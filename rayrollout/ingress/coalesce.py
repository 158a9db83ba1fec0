"""``Coalescer``: concurrent calls to the same version, sent as one call.

Each call through a Serve handle costs the router replica its handle machinery (replica choice,
request metadata, the actor call and its serialisation) and the version replica as much again
to receive it. Under load many requests to one version are in flight at once; grouping those
that arrive while the version is busy pays that cost once per group.

Rules, per key (a version):

* **Idle: no wait.** A call that finds nothing of its key in flight is sent at once, alone: at
  low load a request never waits for company that is not coming.
* **Busy: group.** A call that arrives while another of its key is in flight joins the pending
  group; the group is sent when it holds ``max_size`` calls, when its first call has waited
  ``max_wait_s``, or when a call of its key in flight completes, whichever comes first.
* **Each call its own result.** ``send(key, items)`` answers one result per item, in order; an
  item may be an exception, which fails that call alone. If ``send`` itself raises, every call of
  the group gets that error (the group shared the transport that failed).
* **Idle keys are forgotten.** A key with nothing in flight or waiting holds no state.
* **Cancellation is per call.** A cancelled call (its request timed out or went away) is dropped
  from a group not yet sent, and its result ignored when one was; a group sent is cancelled
  only once every one of its calls is.

A call sent alone while its key is idle is made by its caller, in its context (cancelling the
caller cancels it); groups are sent from a task of their own (a fresh context): no request's
cancellation reaches the call that carries its neighbours. Everything runs on one event loop;
no locks.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - an item
O = TypeVar("O")  # noqa: E741 - its result

MAX_GROUP = 32
MAX_WAIT_S = 0.002

Send = Callable[[K, list[I]], Awaitable[Sequence[O | BaseException]]]


class _Key(Generic[I, O]):
    """The state of one key: calls in flight, and the group waiting to be sent."""

    __slots__ = ("in_flight", "items", "timer", "waiters")

    def __init__(self) -> None:
        self.in_flight = 0
        self.items: list[I] = []
        self.waiters: list[asyncio.Future[O]] = []
        self.timer: asyncio.TimerHandle | None = None


class Coalescer(Generic[K, I, O]):
    def __init__(self, send: Send[K, I, O], max_size: int = MAX_GROUP,
                 max_wait_s: float = MAX_WAIT_S) -> None:
        if max_size < 1 or max_wait_s < 0:
            raise ValueError("max_size must be >= 1 and max_wait_s >= 0")
        self._send = send
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._keys: dict[K, _Key[I, O]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def in_flight(self, key: K) -> int:
        st = self._keys.get(key)
        return st.in_flight if st is not None else 0

    async def call(self, key: K, item: I) -> O:
        """``item``'s result, sent alone or in a group of its key."""
        st = self._keys.get(key)
        if st is None:
            st = self._keys[key] = _Key()
        if st.in_flight == 0 and not st.items:
            return await self._alone(key, st, item)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[O] = loop.create_future()
        st.items.append(item)
        st.waiters.append(fut)
        if len(st.items) >= self.max_size:
            self._flush(key, st)
        elif st.timer is None:
            st.timer = loop.call_later(self.max_wait_s, self._flush, key, st)
        return await fut

    async def _alone(self, key: K, st: _Key[I, O], item: I) -> O:
        """An idle key's call, sent at once by its caller (no task, no future of its own; a
        cancelled caller cancels it, as a direct call would be)."""
        st.in_flight += 1
        try:
            (result,) = await self._send(key, [item])
        finally:
            st.in_flight -= 1
            if st.items:  # calls came meanwhile: the version has room now
                self._flush(key, st)
            self._forget_if_idle(key, st)
        if isinstance(result, BaseException):
            raise result
        return result

    def _flush(self, key: K, st: _Key[I, O]) -> None:
        """Send the pending group of ``key`` (its calls still waiting)."""
        if st.timer is not None:
            st.timer.cancel()
            st.timer = None
        pairs = [(i, f) for i, f in zip(st.items, st.waiters, strict=True) if not f.done()]
        st.items, st.waiters = [], []
        if not pairs:  # every call of the group went away before it was sent
            self._forget_if_idle(key, st)
            return
        st.in_flight += 1
        task = contextvars.Context().run(asyncio.get_running_loop().create_task,
                                         self._run(key, st, pairs))
        self._tasks.add(task)  # a reference until it ends: the loop keeps only weak ones
        task.add_done_callback(self._tasks.discard)
        waiters = [f for _, f in pairs]

        def abandoned(_: asyncio.Future[O]) -> None:
            if not task.done() and all(f.cancelled() for f in waiters):
                task.cancel()  # every caller went away: so does their call

        for f in waiters:
            f.add_done_callback(abandoned)

    async def _run(self, key: K, st: _Key[I, O], pairs: list[tuple[I, asyncio.Future[O]]]
                   ) -> None:
        try:
            results = await self._send(key, [i for i, _ in pairs])
            if len(results) != len(pairs):
                raise RuntimeError(f"a group of {len(pairs)} calls got {len(results)} results")
        except BaseException as e:  # the group's transport failed: each call gets the error
            for _, f in pairs:
                if not f.done():
                    f.set_exception(e)
            if not isinstance(e, Exception):
                raise
        else:
            for (_, f), r in zip(pairs, results, strict=True):
                if f.done():
                    continue
                if isinstance(r, BaseException):
                    f.set_exception(r)
                else:
                    f.set_result(r)
        finally:
            st.in_flight -= 1
            if st.items:  # a call completed: the version has room, send who waits
                self._flush(key, st)
            self._forget_if_idle(key, st)

    def _forget_if_idle(self, key: K, st: _Key[I, O]) -> None:
        """Drop the state of a key with nothing in flight or waiting: a router outlives many
        versions, and a key is made again by its next call."""
        if st.in_flight == 0 and not st.items and self._keys.get(key) is st:
            del self._keys[key]
