"""Mergeable per-version aggregates and the router's recorder. Pure code.

The recorder is on the request path: ``record()`` appends one tuple to a bounded deque and bumps
a few counters (about a microsecond or two). ``collect()`` hands the controller what came since the
previous ``collect()``: a delta of the aggregates and the drained events.

Events are recorded when their request completes, so a slow request's event comes after those
of faster requests that arrived later: completion order depends on latency. The judges need
arrival order (a latency-dependent order biases paired comparisons), so the recorder also
tracks the requests in flight: ``arrive()`` when one starts, ``leave()`` when it is done, and
every ``Collected`` carries a ``watermark``: no event still to come from this replica has an
arrival time below it. The controller releases events to the judges only below the smallest
watermark of all replicas, in arrival order (``ControllerCore``).

Aggregates merge by addition, so the controller can sum them over router replicas.
"""

from __future__ import annotations

import bisect
import heapq
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rayrollout.dataplane.events import LabelledEvent, Outcome, RequestEvent, ShadowEvent

# Latency bucket upper bounds in ms: 1-2-5 steps with 4 sub-steps, 0.1 ms .. 60 s.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    *(
        round(m * 10.0**e, 6)
        for e in range(-1, 5)
        for m in (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
    ),
    60_000.0,
)
MAX_CLASSES = 64  # class-count vectors are capped; larger indices land in the last slot


@dataclass
class VersionStats:
    """Counts for one version. Addition is the merge; subtraction gives a delta."""

    requests: int = 0
    ok: int = 0
    errors: int = 0
    timeouts: int = 0
    rejected: int = 0
    latency_sum_ms: float = 0.0
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    class_counts: list[int] = field(default_factory=lambda: [0] * MAX_CLASSES)
    shadow_compared: int = 0
    shadow_disagree: float = 0.0
    shadow_abs_diff: float = 0.0
    shadow_errors: int = 0
    shadow_dropped: int = 0
    retries: int = 0  # requests another version failed, answered by this one (a retry)
    retries_failed: int = 0  # such retries that failed here too

    def add(self, other: VersionStats, sign: int = 1) -> VersionStats:
        out = VersionStats()
        for k, v in self.__dict__.items():
            o = other.__dict__[k]
            if isinstance(v, list):
                out.__dict__[k] = [a + sign * b for a, b in zip(v, o, strict=True)]
            else:
                out.__dict__[k] = v + sign * o
        return out

    def __add__(self, other: VersionStats) -> VersionStats:
        return self.add(other)

    def __sub__(self, other: VersionStats) -> VersionStats:
        return self.add(other, -1)

    @property
    def failures(self) -> int:
        return self.errors + self.timeouts

    def latency_quantile(self, q: float) -> float:
        """Upper bound of the bucket holding quantile ``q`` (NaN when there is no data)."""
        n = sum(self.latency_counts)
        if n == 0:
            return math.nan
        target, acc = q * n, 0
        for i, c in enumerate(self.latency_counts):
            acc += c
            if acc >= target and c:
                return LATENCY_BOUNDS_MS[min(i, len(LATENCY_BOUNDS_MS) - 1)]
        return LATENCY_BOUNDS_MS[-1]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VersionStats:
        s = cls()
        s.__dict__.update({k: (list(v) if isinstance(v, list) else v) for k, v in d.items()})
        return s


def merge_stats(parts: list[dict[str, VersionStats]]) -> dict[str, VersionStats]:
    out: dict[str, VersionStats] = {}
    for part in parts:
        for v, s in part.items():
            out[v] = out[v] + s if v in out else s.add(VersionStats())
    return out


@dataclass
class Collected:
    """What one ``collect()`` returns: deltas since the previous call, and drained events."""

    replica: str
    stats: dict[str, VersionStats]
    events: list[RequestEvent]
    shadow: list[ShadowEvent]
    dropped_events: int  # events that fell off the bounded buffer since the last collect
    epoch: int
    labelled: list[LabelledEvent] = field(default_factory=list)
    feedback_unmatched: int = 0
    # Every event still to come from this replica arrived at or after this time (inf: unknown,
    # the replica does not track requests in flight: release everything).
    watermark: float = math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "stats": {k: s.to_dict() for k, s in self.stats.items()},
            "events": [list(e) for e in self.events],
            "shadow": [list(e) for e in self.shadow],
            "dropped_events": self.dropped_events,
            "epoch": self.epoch,
            "labelled": [list(e) for e in self.labelled],
            "feedback_unmatched": self.feedback_unmatched,
            "watermark": self.watermark,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Collected:
        return cls(
            replica=d["replica"],
            stats={k: VersionStats.from_dict(s) for k, s in d["stats"].items()},
            events=[RequestEvent(*e) for e in d["events"]],
            shadow=[ShadowEvent(*e) for e in d["shadow"]],
            dropped_events=d["dropped_events"],
            epoch=d["epoch"],
            labelled=[LabelledEvent(*e) for e in d.get("labelled", [])],
            feedback_unmatched=d.get("feedback_unmatched", 0),
            watermark=float(d.get("watermark", math.inf)),
        )


class Recorder:
    """Cumulative aggregates plus a bounded event buffer, owned by one router replica.

    Not thread-safe by design: the router runs on one asyncio event loop.
    """

    def __init__(self, replica: str = "", max_events: int = 200_000) -> None:
        self.replica = replica
        self.totals: dict[str, VersionStats] = {}
        self._last: dict[str, VersionStats] = {}
        self._events: deque[RequestEvent] = deque(maxlen=max_events)
        self._shadow: deque[ShadowEvent] = deque(maxlen=max_events)
        self._labelled: deque[LabelledEvent] = deque(maxlen=max_events)
        self._unmatched = 0
        self.events_dropped = 0  # running total of events pushed out of a full buffer
        self._appended = 0
        self._drained = 0
        self._in_flight: list[float] = []  # a heap of arrival times of requests in flight
        self._left: dict[float, int] = {}  # arrival times that left, not yet off the heap

    def _stats(self, version: str) -> VersionStats:
        s = self.totals.get(version)
        if s is None:
            s = self.totals[version] = VersionStats()
        return s

    def arrive(self, t: float) -> None:
        """A request that will be recorded (or rejected) arrived at ``t``, its event's ``t``."""
        heapq.heappush(self._in_flight, t)

    def leave(self, t: float) -> None:
        """The request that arrived at ``t`` is done: recorded, rejected or failed."""
        self._left[t] = self._left.get(t, 0) + 1

    def watermark(self, now: float) -> float:
        """The earliest arrival time of a request still in flight, or ``now`` when none is:
        every event still to come has ``t`` at or after it."""
        heap, left = self._in_flight, self._left
        while heap and left.get(heap[0], 0):
            t = heapq.heappop(heap)
            if left[t] == 1:
                del left[t]
            else:
                left[t] -= 1
        return heap[0] if heap else now

    def record(self, ev: RequestEvent) -> None:
        s = self._stats(ev.version)
        s.requests += 1
        o = ev.outcome
        if o == Outcome.OK:
            s.ok += 1
            s.latency_sum_ms += ev.latency_ms
            s.latency_counts[bisect.bisect_left(LATENCY_BOUNDS_MS, ev.latency_ms)] += 1
            p = ev.prediction
            if 0 <= p < math.inf:  # not NaN, negative or infinite: no class
                s.class_counts[min(int(p), MAX_CLASSES - 1)] += 1
        elif o == Outcome.REJECTED:
            s.rejected += 1
            return  # bad input: counted, never an event for the judges
        elif o == Outcome.TIMEOUT:
            s.timeouts += 1
        else:
            s.errors += 1
        if len(self._events) == self._events.maxlen:
            self.events_dropped += 1
        self._events.append(ev)
        self._appended += 1

    def retried(self, fallback: str, ok: bool) -> None:
        """A request another version failed was retried on ``fallback``. Not an event: the
        failure stays the other version's, and the retry is no draw of the routing."""
        st = self._stats(fallback)
        st.retries += 1
        st.retries_failed += not ok

    def reject(self, version: str) -> None:
        """Bad input that never reached a version (``version`` may be "" if none was chosen)."""
        s = self._stats(version)
        s.requests += 1
        s.rejected += 1

    def record_shadow(self, ev: ShadowEvent) -> None:
        s = self._stats(ev.shadow)
        if ev.shadow_ok:
            s.shadow_compared += 1
            s.shadow_disagree += ev.disagree
            if ev.abs_diff == ev.abs_diff:
                s.shadow_abs_diff += ev.abs_diff
        else:
            s.shadow_errors += 1
        self._shadow.append(ev)

    def record_label(self, ev: LabelledEvent | None) -> None:
        """A label that came back for a served request (``None``: the request was unknown)."""
        if ev is None:
            self._unmatched += 1
        else:
            self._labelled.append(ev)

    def relabel(self, old: LabelledEvent, new: LabelledEvent) -> bool:
        """Replace ``old`` (the very event recorded) by ``new`` if it has not been collected
        yet; False once it has gone to the judges (they cannot take evidence back)."""
        for i, ev in enumerate(self._labelled):
            if ev is old:
                self._labelled[i] = new
                return True
        return False

    def shadow_dropped(self, shadow: str) -> None:
        self._stats(shadow).shadow_dropped += 1

    def collect(self, epoch: int, now: float | None = None) -> Collected:
        """Deltas since the previous ``collect()``, every buffered event (in the order they
        were recorded), and the watermark at ``now`` (default: the wall clock, the clock the
        router stamps arrivals with)."""
        watermark = self.watermark(time.time() if now is None else now)
        delta = {}
        for v, s in self.totals.items():
            prev = self._last.get(v)
            delta[v] = s - prev if prev is not None else s.add(VersionStats())
        self._last = {v: s.add(VersionStats()) for v, s in self.totals.items()}
        events = list(self._events)
        self._events.clear()
        shadow = list(self._shadow)
        self._shadow.clear()
        lost = self._appended - self._drained - len(events)
        self._drained = self._appended
        labelled = list(self._labelled)
        self._labelled.clear()
        unmatched, self._unmatched = self._unmatched, 0
        return Collected(self.replica, delta, events, shadow, lost, epoch, labelled, unmatched,
                         watermark)
