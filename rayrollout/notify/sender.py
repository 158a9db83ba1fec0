"""``Sender``: delivers notifications in the background, retried with backoff, never blocking.

The controller calls ``Notifier.notify`` inside its tick; a chat service that is slow or down
must not hold the tick, nor pile up memory. So a delivery is a job handed to a ``Sender``:

* ``submit`` returns at once with a ``Future`` (completed when the job is done: delivered,
  given up, or dropped; it never raises);
* jobs wait in one bounded queue (``max_pending``, counting jobs waiting to retry); a job
  submitted while it is full is **dropped**, counted in ``dropped`` and logged;
* a few daemon worker threads run the jobs. A job's ``attempt()`` returns ``DONE``, ``GIVE_UP``
  (a failure that will not pass: it is not tried again) or ``RETRY``; a retried job waits
  ``backoff(k)`` before attempt ``k + 1`` (exponential, with jitter from the sender's
  ``random.Random``), without holding a worker while it waits, and is tried at most
  ``max_attempts`` times in all.

Counters (``submitted``, ``delivered``, ``failed``, ``dropped``, ``retries``) say what happened;
``failed`` counts jobs that gave up or ran out of attempts.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum

log = logging.getLogger("rayrollout.notify")

MAX_DELAY_S = 30.0  # the longest wait between two attempts


class Outcome(Enum):
    DONE = "done"
    RETRY = "retry"
    GIVE_UP = "give_up"


def backoff(k: int, base_s: float, rng: random.Random, cap_s: float = MAX_DELAY_S) -> float:
    """Seconds to wait after failed attempt ``k`` (1, 2, ...): ``base_s x 2^(k-1)``, capped,
    with "equal jitter" (half fixed, half drawn), so retries of many senders spread out."""
    d = min(cap_s, base_s * 2.0 ** (k - 1))
    return d / 2.0 + rng.uniform(0.0, d / 2.0)


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    attempt: Callable[[int], Outcome] = field(compare=False)
    what: str = field(compare=False)
    max_attempts: int = field(compare=False)
    base_s: float = field(compare=False)
    future: Future[None] = field(compare=False)
    tries: int = field(default=0, compare=False)


class Sender:
    """A bounded background queue of delivery jobs with retries (see the module docstring)."""

    def __init__(self, workers: int = 2, max_pending: int = 256,
                 rng: random.Random | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if workers < 1 or max_pending < 1:
            raise ValueError("a sender needs at least one worker and one queue slot")
        self.workers, self.max_pending = workers, max_pending
        self.rng = rng or random.Random()
        self.monotonic = monotonic
        self.submitted = self.delivered = self.failed = self.dropped = self.retries = 0
        self._heap: list[_Job] = []
        self._running = 0  # jobs a worker is attempting now
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._threads: list[threading.Thread] = []

    def submit(self, attempt: Callable[[int], Outcome], what: str, max_attempts: int = 4,
               backoff_s: float = 0.5) -> Future[None]:
        """Queue a job; ``attempt(k)`` is called with the attempt number (1, 2, ...) and says
        how it went. Returns at once; a full queue drops the job (counted, logged)."""
        fut: Future[None] = Future()
        with self._cv:
            self.submitted += 1
            if len(self._heap) + self._running >= self.max_pending:
                self.dropped += 1
                dropped = self.dropped
                fut.set_result(None)
            else:
                dropped = 0
                heapq.heappush(self._heap, _Job(self.monotonic(), next(self._seq), attempt,
                                                what, max_attempts, backoff_s, fut))
                self._start()
                self._cv.notify()
        if dropped:
            log.warning("notification to %s dropped: %d deliveries already pending (%d "
                        "dropped so far)", what, self.max_pending, dropped)
        return fut

    def pending(self) -> int:
        """Jobs queued, waiting to retry, or being attempted."""
        with self._cv:
            return len(self._heap) + self._running

    def counts(self) -> dict[str, int]:
        with self._cv:
            return {"submitted": self.submitted, "delivered": self.delivered,
                    "failed": self.failed, "dropped": self.dropped, "retries": self.retries,
                    "pending": len(self._heap) + self._running}

    def _start(self) -> None:  # under the lock
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self.workers:
            t = threading.Thread(target=self._work, name="rayrollout-notify", daemon=True)
            t.start()
            self._threads.append(t)

    def _next(self) -> _Job:
        with self._cv:
            while True:
                if self._heap:
                    wait = self._heap[0].due - self.monotonic()
                    if wait <= 0:
                        self._running += 1
                        return heapq.heappop(self._heap)
                    self._cv.wait(wait)
                else:
                    self._cv.wait()

    def _work(self) -> None:
        while True:
            job = self._next()
            job.tries += 1
            try:
                outcome = job.attempt(job.tries)
            except Exception:  # a bug in a job must not kill the worker
                log.exception("notification to %s raised", job.what)
                outcome = Outcome.GIVE_UP
            self._finish(job, outcome)

    def _finish(self, job: _Job, outcome: Outcome) -> None:
        with self._cv:
            self._running -= 1
            if outcome == Outcome.RETRY and job.tries < job.max_attempts:
                self.retries += 1
                job.due = self.monotonic() + backoff(job.tries, job.base_s, self.rng)
                heapq.heappush(self._heap, job)
                self._cv.notify()
                return
            if outcome == Outcome.DONE:
                self.delivered += 1
            else:
                self.failed += 1
        if outcome == Outcome.RETRY:
            log.warning("notification to %s given up after %d attempts", job.what, job.tries)
        job.future.set_result(None)
