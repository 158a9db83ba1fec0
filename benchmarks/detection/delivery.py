"""When, and in which order, the judges get each request: the event paths of the controller.

A ``Delivery`` lists run indices in the order the judges see them, with the tick that
releases each (the decision time if that batch makes a guard cross). Three paths:

* ``tick``: arrival order, each request in the batch of the tick after its arrival (what the
  simulator assumed before the deployed path: as if a request were recorded on arrival);
* ``watermark`` (the deployed path): a request completes at ``t + latency`` and is recorded by
  its router then; every tick each router reports its events and a watermark (the earliest
  arrival still in flight, or now), and the controller releases, sorted by arrival, the
  events that arrived before the smallest watermark (``rayrollout.dataplane.ordering``);
* ``completion`` (before the ordering fix): each tick's collected events, i.e. those that
  completed during the tick, sorted by arrival within the tick.

The vectorised ``watermark`` emulation needs no replica assignment: the smallest watermark of
all routers is the earliest arrival in flight anywhere. ``real_watermark_delivery`` runs the
real ``Recorder`` of each router replica and the real ``ArrivalOrder`` request by request
(slow: cross-checks only); the tests check both give the same delivery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchmarks.detection.simulator import Run

MODES = ("tick", "watermark", "completion")


@dataclass(frozen=True)
class Delivery:
    order: np.ndarray  # run indices in delivery order (int64)
    release: np.ndarray  # per delivered event: tick time that releases it (inf: never)

    def batches(self) -> list[tuple[float, np.ndarray]]:
        """(tick time, run indices in delivery order) of each non-empty released batch."""
        ok = np.isfinite(self.release)
        rel, order = self.release[ok], self.order[ok]
        cuts = np.flatnonzero(np.diff(rel)) + 1
        return [(float(rel[lo]), order[lo:hi])
                for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, rel.size], strict=True)]


def ticks(run: Run, tick_s: float) -> np.ndarray:
    """Tick times from just after the first request to the horizon (inclusive)."""
    lo = math.floor(float(run.t[0]) / tick_s) + 1 if run.t.size else 1
    hi = math.ceil(run.horizon_s / tick_s)
    return np.arange(lo, hi + 1) * tick_s


def completion_times(run: Run) -> np.ndarray:
    return run.t + run.latency / 1000.0


def watermarks(run: Run, tick_t: np.ndarray) -> np.ndarray:
    """Smallest watermark of all routers at each tick: the earliest arrival of a request in
    flight (arrived before the tick, completing at or after it), or the tick time."""
    reach = np.maximum.accumulate(completion_times(run))  # non-decreasing in arrival order
    first = np.searchsorted(reach, tick_t, side="left")  # first request completing >= tick
    t_first = np.where(first < run.t.size, run.t[np.minimum(first, run.t.size - 1)], np.inf)
    return np.minimum(tick_t, t_first)


def deliver(run: Run, mode: str, tick_s: float = 1.0) -> Delivery:
    if mode not in MODES:
        raise ValueError(f"delivery mode must be one of {MODES}, got {mode!r}")
    n = run.t.size
    idx = np.arange(n, dtype=np.int64)
    if mode == "tick":
        return Delivery(idx, (np.floor(run.t / tick_s) + 1.0) * tick_s)
    tick_t = ticks(run, tick_s)
    if mode == "watermark":
        wm = watermarks(run, tick_t)
        k = np.searchsorted(wm, run.t, side="right")  # first tick whose watermark passed t
        rel = np.where(k < tick_t.size, tick_t[np.minimum(k, tick_t.size - 1)], np.inf)
        return Delivery(idx, rel)
    rel = (np.floor(completion_times(run) / tick_s) + 1.0) * tick_s
    rel = np.where(rel <= tick_t[-1], rel, np.inf) if tick_t.size else rel
    order = np.lexsort((run.t, rel))
    return Delivery(order.astype(np.int64), rel[order])


def cached_delivery(run: Run, mode: str, tick_s: float = 1.0) -> Delivery:
    key = ("delivery", mode, tick_s)
    if key not in run.cache:
        run.cache[key] = deliver(run, mode, tick_s)
    d: Delivery = run.cache[key]
    return d
