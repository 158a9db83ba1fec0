"""Pieces of the router's inference path that guard it against its clients and its models.

* ``sticky_key``: the sticky-routing header, bounded. It becomes the statistical unit stored
  in every ``RequestEvent``, so a key longer than ``MAX_STICKY_KEY_CHARS`` characters is
  refused with 400 (counted as rejected) rather than kept: a client cannot grow the event
  buffers by sending long keys. Refusing, not hashing, keeps units readable in the decision
  log and keeps a client's key the one it sent; 256 characters hold any session id or UUID.
* ``call_version``: the call to a version with its timeout. A failure (an output holding NaN
  or infinity included: no JSON carries it) is a ``ModelError`` (500, counted against the
  version) whose message is generic with an error id; the details (artifact paths, runtime
  internals) go to the router's log under that id only.
* ``summary``: the first row's prediction and probability for the judges, always finite or
  NaN, so nothing downstream (the recorder's class counts) ever sees an infinity.
* ``Withdrawals``: fail fast. When a new table takes a version's traffic away (a rollback, a
  lost candidate), requests still waiting on it stop waiting instead of waiting out the
  request timeout: each such call ends as ``VersionWithdrawn`` (503, an ERROR outcome of the
  version) once it has waited ``WITHDRAWN_GRACE_S`` (at once if it already has). The grace
  lets a healthy version that merely lost its weight (the old stable at a promotion) answer
  what it already holds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import numpy as np

from rayrollout._compat import ASYNC_TIMEOUT
from rayrollout.dataplane.events import Outcome
from rayrollout.dataplane.passthrough import Answer, Forward
from rayrollout.dataplane.routing import RoutingTable
from rayrollout.errors import BadRequest, ModelError, ModelTimeout, RolloutError, UnavailableError
from rayrollout.ingress.http import error_id
from rayrollout.ingress.versions import VersionClient
from rayrollout.runtime import summarize_prediction

log = logging.getLogger("rayrollout.router")

MAX_STICKY_KEY_CHARS = 256
# How long a call to a withdrawn version may still have run before it stops waiting: longer
# than a healthy version takes to answer, far shorter than a request timeout.
WITHDRAWN_GRACE_S = 1.0
# ``asyncio.timeout`` (Python 3.11+): a call's deadline without a task of its own
INLINE_DEADLINE = sys.version_info >= (3, 11)


class VersionWithdrawn(UnavailableError):
    """The version lost its traffic while this request waited on it (503)."""

    code = "version_withdrawn"


def sticky_key(headers: Mapping[str, str], name: str) -> str | None:
    key = headers.get(name)
    if key is not None and len(key) > MAX_STICKY_KEY_CHARS:
        raise BadRequest(f"header {name} is {len(key)} characters long; at most "
                         f"{MAX_STICKY_KEY_CHARS}")
    return key


T = TypeVar("T")


class Withdrawals:
    """Per version, a future resolved when a new table takes the version's traffic away.

    ``signal(version, pinned, table)`` is what one call waits on beside its answer: a request
    drawn at random stops waiting when its version gets no weight; one pinned to its version
    (a tester's header) only when the version is no longer live at all. ``withdraw(old, new)``
    (``Router.set_routes``) resolves the futures of the versions ``new`` took traffic from.
    Futures live on the replica's event loop; a version's is made by its first caller."""

    def __init__(self) -> None:
        self._random: dict[str, asyncio.Future[None]] = {}
        self._pinned: dict[str, asyncio.Future[None]] = {}

    def signal(self, version: str, pinned: bool, table: RoutingTable) -> asyncio.Future[None]:
        """The future this call waits on; already done when ``table`` (the one in force now,
        which may be newer than the one the request was routed with) withdrew the version."""
        waiting, gone = ((self._pinned, version not in table.live) if pinned else
                         (self._random, table.weights.get(version, 0.0) <= 0))
        fut = waiting.get(version)
        if fut is None or fut.done():
            fut = asyncio.get_running_loop().create_future()
            if gone:
                fut.set_result(None)
            else:
                waiting[version] = fut
        return fut

    def withdraw(self, old: RoutingTable, new: RoutingTable) -> list[str]:
        """Resolve the futures of every version ``new`` takes traffic from; their names."""
        hit = []
        for v, w in old.weights.items():
            if w > 0 and new.weights.get(v, 0.0) <= 0:
                hit.append(v)
                _resolve(self._random.pop(v, None))
        for v in set(old.live) - set(new.live):
            _resolve(self._pinned.pop(v, None))
        return hit


def _resolve(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


async def _timed(version: str, call: Awaitable[T], timeout: float,
                 withdrawn: asyncio.Future[None] | None = None,
                 ) -> tuple[T | None, RolloutError | None, Outcome, float]:
    """Await a call to a version with its timeout: (result, the error to answer, outcome,
    latency in ms). A timeout or any failure of the version is a ``ModelError`` counted
    against it, whose message is generic with an error id (the details go to the log). When
    ``withdrawn`` resolves first, the call stops waiting once it is ``WITHDRAWN_GRACE_S`` old:
    ``VersionWithdrawn``, an ERROR of the version.

    On Python 3.11+ the call runs in the request's own task under an ``asyncio.timeout`` whose
    deadline a withdrawal brings forward (no task, no extra turn of the event loop per
    request); on 3.10, in a task of its own awaited beside ``withdrawn``."""
    t0 = time.perf_counter()
    err: RolloutError
    try:
        deadline = _inline if INLINE_DEADLINE else _in_task
        result = await deadline(version, call, timeout, withdrawn)
        return result, None, Outcome.OK, (time.perf_counter() - t0) * 1000.0
    except VersionWithdrawn as e:
        err, outcome = e, Outcome.ERROR
    except ASYNC_TIMEOUT:
        err = ModelTimeout(f"version {version!r} did not answer within {timeout:g} s")
        outcome = Outcome.TIMEOUT
    except Exception as e:  # the model, its replica (or the proxy) failed: this version's
        eid = error_id()
        log.warning("version %r failed (error id %s): %s: %s", version, eid,
                    type(e).__name__, e)
        err = ModelError(f"version {version!r} failed (error id {eid}; the details are in the "
                         "router's log)")
        outcome = Outcome.ERROR
    return None, err, outcome, (time.perf_counter() - t0) * 1000.0


def _withdrawn_error(version: str) -> VersionWithdrawn:
    return VersionWithdrawn(f"version {version!r} was withdrawn from routing while this "
                            "request waited for it")


async def _inline(version: str, call: Awaitable[T], timeout: float,
                  withdrawn: asyncio.Future[None] | None) -> T:
    """``call`` awaited here, under a deadline; ``TimeoutError`` or ``VersionWithdrawn``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    live, cut = True, False
    try:
        async with asyncio.timeout(timeout) as scope:  # type: ignore[attr-defined,unused-ignore]
            def withdraw(_: asyncio.Future[None]) -> None:
                # (run a turn of the loop after ``withdrawn`` resolved: the call may be over)
                nonlocal cut
                if not live or scope.expired():
                    return
                when = start + min(WITHDRAWN_GRACE_S, timeout)
                deadline = scope.when()
                if deadline is None or when <= deadline:
                    cut = True
                    scope.reschedule(when)  # (at once when the grace is already spent)

            if withdrawn is not None:
                withdrawn.add_done_callback(withdraw)
            try:
                result: T = await call
            finally:
                live = False
                if withdrawn is not None:
                    withdrawn.remove_done_callback(withdraw)
    except TimeoutError:
        if cut and scope.expired():  # the deadline the withdrawal set, not the call's error
            raise _withdrawn_error(version) from None
        raise
    return result


async def _in_task(version: str, call: Awaitable[T], timeout: float,
                   withdrawn: asyncio.Future[None] | None) -> T:
    """``call`` in a task of its own, awaited beside ``withdrawn`` (Python 3.10)."""
    t0 = time.perf_counter()
    task = asyncio.ensure_future(call)
    try:
        waiting: set[asyncio.Future[Any]] = {task} if withdrawn is None else {task, withdrawn}
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and withdrawn is not None and withdrawn.done():
            left = min(WITHDRAWN_GRACE_S, timeout) - (time.perf_counter() - t0)
            if left > 0:
                await asyncio.wait({task}, timeout=left)
            if not task.done():
                raise _withdrawn_error(version)
        if not task.done():
            raise TimeoutError
        return task.result()
    finally:
        if not task.done():  # timed out, withdrawn, or this request itself was cancelled
            task.cancel()


async def _checked(call: Awaitable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    outputs = await call
    bad = [k for k, v in outputs.items() if v.dtype.kind in "fc" and not np.isfinite(v).all()]
    if bad:  # no JSON can carry it, and a model that answers NaN has failed
        raise ValueError(f"output {bad[0]!r} holds NaN or infinity")
    return outputs


async def call_version(versions: VersionClient, version: str, arrays: dict[str, np.ndarray],
                       timeout: float, withdrawn: asyncio.Future[None] | None = None,
                       ) -> tuple[dict[str, np.ndarray] | None, Outcome, RolloutError | None,
                                  float]:
    """Call the version: (outputs, outcome, the error to answer, latency in ms)."""
    outputs, err, outcome, ms = await _timed(
        version, _checked(versions.predict(version, arrays)), timeout, withdrawn)
    return outputs, outcome, err, ms


async def forward_version(versions: VersionClient, version: str, request: Forward,
                          via: tuple[str, int] | None, timeout: float,
                          withdrawn: asyncio.Future[None] | None = None,
                          ) -> tuple[Answer | None, Outcome, RolloutError | None, float]:
    """Pass a request through to a version: (its answer, outcome, the error to answer when it
    gave none, latency in ms). An answer of 5xx is an error of the version; any other status
    is its answer (a 4xx is its own answer to bad input)."""
    answer, err, outcome, ms = await _timed(version, versions.forward(version, request, via),
                                            timeout, withdrawn)
    if answer is not None and answer.status >= 500:
        outcome = Outcome.ERROR
    return answer, outcome, err, ms


def summary(outputs: dict[str, np.ndarray] | None, task: str) -> tuple[float, float]:
    """The first row's prediction and its probability (NaN when there is none, or when the
    model gave a value that is not finite), for the judges' drift and accuracy checks."""
    pred = prob = math.nan
    if outputs is None:
        return pred, prob
    try:
        pred = float(summarize_prediction(outputs, task)[0])
        if not math.isfinite(pred):
            return math.nan, math.nan
        probs = outputs.get("probabilities")
        if probs is not None and pred >= 0:
            prob = float(probs[0][int(pred)])
    except (ValueError, IndexError, TypeError, OverflowError):
        pred = math.nan
    return pred, prob
