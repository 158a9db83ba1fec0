"""The deployed event path run for real, request by request (cross-checks only: slow).

Each request is assigned to one of ``replicas`` router replicas. Per tick: the requests that
arrived before it call ``Recorder.arrive``; those that completed before it are recorded in
completion order (``record`` then ``leave``); every replica's ``collect(epoch, now)`` is
merged and ``ArrivalOrder.release(events, smallest watermark)`` gives what the judges see,
exactly as the controller does (``rayrollout.controller``). The result is a ``Delivery``,
which ``delivery.deliver(run, "watermark")`` must reproduce.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from benchmarks.detection.delivery import Delivery, completion_times, ticks
from benchmarks.detection.sessions import CANARY, STABLE
from benchmarks.detection.simulator import Run

if TYPE_CHECKING:
    from rayrollout.dataplane.events import RequestEvent


def _event(run: Run, i: int, epoch: int) -> RequestEvent:
    from rayrollout.dataplane.events import Outcome, RequestEvent

    c = bool(run.canary[i])
    w = float(run.w[i])
    unit = "" if run.key is None else str(run.key[i])
    return RequestEvent(float(run.t[i]), CANARY if c else STABLE, w if c else 1.0 - w,
                        float(run.latency[i]), int(Outcome.ERROR if run.error[i] else Outcome.OK),
                        float("nan"), unit, unit == "", epoch)


def real_watermark_delivery(run: Run, tick_s: float = 1.0, replicas: int = 2,
                            seed: int = 0) -> Delivery:
    from rayrollout.dataplane.aggregates import Recorder
    from rayrollout.dataplane.ordering import ArrivalOrder

    rep = np.random.default_rng(seed).integers(0, replicas, run.t.size)
    recs = [Recorder(f"router-{r}") for r in range(replicas)]
    order = ArrivalOrder()
    tick_t = ticks(run, tick_s)
    done = completion_times(run)
    by_done = np.argsort(done, kind="stable")
    arrived = np.searchsorted(run.t, tick_t, side="left")
    completed = np.searchsorted(done[by_done], tick_t, side="left")
    t_list = run.t.tolist()
    out_idx: list[np.ndarray] = []
    out_rel: list[np.ndarray] = []
    a0 = c0 = 0
    for k, now in enumerate(tick_t.tolist()):
        for i in range(a0, int(arrived[k])):
            recs[rep[i]].arrive(t_list[i])
        for i in by_done[c0:int(completed[k])].tolist():
            recs[rep[i]].record(_event(run, i, 1))
            recs[rep[i]].leave(t_list[i])
        a0, c0 = int(arrived[k]), int(completed[k])
        parts = [r.collect(1, now=now) for r in recs]
        released = order.release([e for p in parts for e in p.events],
                                 min(p.watermark for p in parts))
        if released:
            ts = np.fromiter((e.t for e in released), dtype=float, count=len(released))
            idx = np.searchsorted(run.t, ts)
            assert np.array_equal(run.t[idx], ts), "released events map back to requests"
            out_idx.append(idx)
            out_rel.append(np.full(idx.size, now))
    order_idx = np.concatenate(out_idx) if out_idx else np.zeros(0, np.int64)
    rel = np.concatenate(out_rel) if out_rel else np.zeros(0)
    rest = np.setdiff1d(np.arange(run.t.size), order_idx)  # never released: still held
    return Delivery(np.r_[order_idx, rest].astype(np.int64), np.r_[rel, np.full(rest.size, np.inf)])
