"""``FaultInjector``: makes a model version misbehave on purpose, exactly as its plan says.

The plan is a version's ``FaultSpec`` (``rayrollout.spec.faults``), seen here through the
``FaultPlan`` protocol (a runtime imports no spec). The injector wraps one request's predict:
``before()`` decides what the request gets (a delay, an error, a hang, a crash of the process),
``after()`` makes rows of the answer wrong, and ``run()`` does both around a predict call. It
holds no Ray and no threads of its own; time comes from the ``clock`` it is given and every
random draw from generators seeded by ``plan.seed``.

Guarantees:

* Deterministic: the same plan, the same sequence of requests (and row counts) and the same
  clock readings give the same misbehaviour, request by request and row by row.
* Nothing happens before ``start_after_s`` has passed since the replica started (``started``,
  reset by ``slow_start()``); the requests before it do not count towards
  ``crash_after_requests`` either.
* One uniform draw per request decides hang (``u < hang_fraction``), else error
  (``u < hang_fraction + error_rate``); a second decides the tail. So a request is delayed,
  then hangs or fails or is answered, and the rates hold separately.
* A crash happens at most once per injector (per replica process): the request after the
  ``crash_after_requests``-th, or the first request (or the timer of ``crash_timer()``) once
  ``crash_after_s`` has passed, calls ``exit`` (``os._exit``: no cleanup, like a segfault).
* Wrong rows: classification answers another class (``(c + k) % n_classes`` with ``k`` drawn
  in ``1 .. n_classes - 1``) in every integer label output, and swaps that row's columns ``c``
  and the new class in every per-class output, so labels and probabilities agree; regression
  adds ``1 + |y|`` to the first output (a relative error of at least 100%). The runtime's
  arrays are never modified in place.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rayrollout.errors import PredictError
from rayrollout.runtime.summary import summarize_prediction

log = logging.getLogger("rayrollout.faults")

CRASH_EXIT_CODE = 70  # what a crashed replica exits with (EX_SOFTWARE)

Outputs = dict[str, np.ndarray]
Predict = Callable[[Outputs], Awaitable[Outputs]]


class FaultPlan(Protocol):
    """The fields of ``rayrollout.spec.FaultSpec`` the injector reads."""

    @property
    def latency_ms(self) -> float: ...
    @property
    def tail_fraction(self) -> float: ...
    @property
    def tail_ms(self) -> float: ...
    @property
    def error_rate(self) -> float: ...
    @property
    def crash_after_requests(self) -> int | None: ...
    @property
    def crash_after_s(self) -> float | None: ...
    @property
    def hang_fraction(self) -> float: ...
    @property
    def wrong_fraction(self) -> float: ...
    @property
    def slow_start_s(self) -> float: ...
    @property
    def seed(self) -> int: ...
    @property
    def start_after_s(self) -> float: ...


class InjectedFault(PredictError):
    """The error a version with ``error_rate`` raises on purpose (a model failure, HTTP 500)."""


@dataclass(frozen=True)
class Misbehaviour:
    """What one request gets: a delay first, then a crash, a hang or an error (or an answer)."""

    delay_s: float = 0.0
    crash: bool = False
    hang: bool = False
    fail: bool = False


HEALTHY = Misbehaviour()


class FaultInjector:
    """Injects ``plan``'s faults into the predict calls of one replica (see the module doc)."""

    def __init__(self, plan: FaultPlan, task: str = "classification",
                 clock: Callable[[], float] = time.monotonic,
                 exit: Callable[[int], object] = os._exit) -> None:
        self.plan = plan
        self.task = task
        self._clock = clock
        self._exit = exit
        self._requests = random.Random(plan.seed)  # per-request draws
        self._rows = np.random.default_rng(plan.seed)  # per-row draws (wrong predictions)
        self.started = clock()
        self.requests = 0  # requests seen since the faults began
        self.crashed = False

    # -- the replica's life --------------------------------------------------------------------

    def slow_start(self, sleep: Callable[[float], object] = time.sleep) -> None:
        """Wait ``slow_start_s`` (the replica's constructor calls this, so the replica is not
        ready meanwhile); the replica counts as started when it returns."""
        if self.plan.slow_start_s > 0:
            sleep(self.plan.slow_start_s)
        self.started = self._clock()

    def live(self, now: float | None = None) -> bool:
        """Whether the faults have begun (``start_after_s`` after the replica started)."""
        t = self._clock() if now is None else now
        return t - self.started >= self.plan.start_after_s

    def crash_delay_s(self) -> float | None:
        """Seconds from now until ``crash_after_s`` is due (None when it is not set)."""
        if self.plan.crash_after_s is None or self.crashed:
            return None
        due = self.started + self.plan.start_after_s + self.plan.crash_after_s
        return max(due - self._clock(), 0.0)

    def crash_timer(self) -> threading.Timer | None:
        """Start a daemon timer that crashes the process when ``crash_after_s`` is due, even if
        no request comes; None when ``crash_after_s`` is not set."""
        delay = self.crash_delay_s()
        if delay is None:
            return None
        timer = threading.Timer(delay, self._crash_if_due)
        timer.daemon = True
        timer.start()
        return timer

    def _crash_if_due(self) -> None:
        if self.crash_delay_s() == 0.0:
            self._crash("crash_after_s")

    def _crash(self, why: str) -> None:
        self.crashed = True
        log.warning("injected fault: the replica exits now (%s)", why)
        self._exit(CRASH_EXIT_CODE)

    # -- one request ---------------------------------------------------------------------------

    def before(self) -> Misbehaviour:
        """What the next request gets. Counts the request once the faults have begun."""
        now = self._clock()
        if not self.live(now):
            return HEALTHY
        p = self.plan
        self.requests += 1
        u, tail = self._requests.random(), self._requests.random()
        delay_ms = p.latency_ms + (p.tail_ms if tail < p.tail_fraction else 0.0)
        crash = not self.crashed and (
            (p.crash_after_requests is not None and self.requests > p.crash_after_requests)
            or self.crash_delay_s() == 0.0
        )
        hang = u < p.hang_fraction
        fail = not hang and u < p.hang_fraction + p.error_rate
        return Misbehaviour(delay_ms / 1000.0, crash, hang, fail)

    def after(self, outputs: Outputs) -> Outputs:
        """``outputs`` with ``wrong_fraction`` of its rows made wrong (new arrays; the same
        object when no row is)."""
        if self.plan.wrong_fraction <= 0 or not outputs or not self.live():
            return outputs
        first = np.asarray(next(iter(outputs.values())))
        n = int(first.shape[0]) if first.ndim else 1
        rows = np.flatnonzero(self._rows.random(n) < self.plan.wrong_fraction)
        if rows.size == 0:
            return outputs
        if self.task == "regression":
            return _offset(outputs, rows)
        return _other_class(outputs, rows, self._rows)

    async def run(self, predict: Predict, inputs: Outputs) -> Outputs:
        """``predict(inputs)`` with this request's faults: delay, then crash, hang or raise
        ``InjectedFault``, else the answer with its wrong rows."""
        m = self.before()
        if m.delay_s > 0:
            await asyncio.sleep(m.delay_s)
        if m.crash:
            self._crash(f"after {self.requests - 1} requests" if self.plan.crash_after_requests
                        else "crash_after_s")
        if m.hang:  # never answers; the caller's timeout cancels it (Serve cancels it here)
            await asyncio.get_running_loop().create_future()
        if m.fail:
            raise InjectedFault("injected fault: this request fails on purpose (error_rate)")
        return self.after(await predict(inputs))


def _offset(outputs: Outputs, rows: np.ndarray) -> Outputs:
    """Regression: the first output's ``rows`` moved by ``1 + |y|``."""
    out = dict(outputs)
    name = next(iter(outputs))
    a = np.array(outputs[name], copy=True)
    a[rows] = a[rows] + (1 + np.abs(a[rows]))
    out[name] = a
    return out


def _other_class(outputs: Outputs, rows: np.ndarray, rng: np.random.Generator) -> Outputs:
    """Classification: ``rows`` answer another class in every label and per-class output."""
    old = summarize_prediction(outputs, "classification")[rows].astype(np.int64)
    per_class = [k for k, v in outputs.items()
                 if np.ndim(v) == 2 and np.shape(v)[1] > 1 and np.shape(v)[0] > rows.max()]
    n = int(np.shape(outputs[per_class[0]])[1]) if per_class else 0
    # labels only: the number of classes is unknown, so the next class up
    new = (old + rng.integers(1, n, size=rows.size)) % n if n > 1 else old + 1
    out = dict(outputs)
    for k, v in outputs.items():
        a = np.asarray(v)
        if a.ndim == 1 and a.dtype.kind in "iu":
            a = a.copy()
            a[rows] = new.astype(a.dtype)
            out[k] = a
        elif k in per_class and np.shape(a)[1] == n:
            a = a.copy()
            ok = (old >= 0) & (old < n)  # a label outside the columns has nothing to swap
            r, c_old, c_new = rows[ok], old[ok], new[ok]
            a[r, c_old], a[r, c_new] = a[r, c_new], a[r, c_old]
            out[k] = a
    return out
