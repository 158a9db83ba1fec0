"""Export the router's aggregates as Prometheus metrics through Ray's metrics agent.

The request path only bumps plain counters in the ``Recorder``; every ``interval_s`` this
exporter turns what changed into ``ray.util.metrics`` updates, off the request path.

A version that leaves the routing table (a rolled-back or retired candidate) has its weight
gauge set to 0, not left at its last value. ``rayrollout_events_dropped_total`` follows the
recorder's cumulative ``events_dropped`` count, when the recorder keeps one.

Ray's metrics agent drops a gauge series that was not set again within two report intervals
(``metrics_report_interval_ms``), so the gauges are set again on every flush, and flushes come
at least twice per report interval (``refresh_interval_s``). The weight and epoch gauges are
one series per ingress replica (each shows the table that replica holds): read them with
``max``/``min``, never ``sum``; the controller's gauges (``controller_metrics``) are the
authoritative per-model values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from rayrollout.dataplane import metrics as spec
from rayrollout.dataplane.aggregates import LATENCY_BOUNDS_MS, Recorder, VersionStats
from rayrollout.dataplane.routing import RoutingTable

log = logging.getLogger("rayrollout.exporter")


DEFAULT_INTERVAL_S = 2.0  # between flushes (less when Ray reports more often than every 4 s)


def refresh_interval_s(default: float = DEFAULT_INTERVAL_S) -> float:
    """Seconds between flushes of this process's gauges: ``default``, or half of Ray's metrics
    report interval (at least 1 s, as Ray floors it) when that is shorter, so that every report
    carries every gauge and the agent never drops a live series as stale."""
    ray: Any = sys.modules.get("ray")  # a replica or an actor has it; a unit test need not
    try:
        report_s = max(float(ray._config.metrics_report_interval_ms()), 1000.0) / 1000.0
    except Exception:  # no Ray here: the default
        return default
    return min(default, report_s / 2)


_shared: dict[str, Any] = {}  # this process's Ray metric objects, by name
_shared_lock = threading.Lock()


def _make(m: spec.MetricSpec) -> Any:
    """The process's one Ray metric object named ``m.name``: every model's exporter in an
    ingress replica records through the same objects (its ``model`` tag tells them apart)."""
    with _shared_lock:
        made = _shared.get(m.name)
        if made is None:
            made = _shared[m.name] = _new(m)
        return made


def _new(m: spec.MetricSpec) -> Any:
    from ray.util import metrics as ray_metrics  # here: the bookkeeping is testable without Ray

    if m.kind == "counter":
        return ray_metrics.Counter(m.name, m.description, m.labels)
    if m.kind == "gauge":
        return ray_metrics.Gauge(m.name, m.description, m.labels)
    return ray_metrics.Histogram(m.name, m.description, list(m.buckets), m.labels)


class MetricsExporter:
    def __init__(
        self,
        model: str,
        recorder: Recorder,
        table: Callable[[], RoutingTable],
        interval_s: float | None = None,
        make: Callable[[spec.MetricSpec], Any] = _make,
    ) -> None:
        self.model = model
        self.recorder = recorder
        self.table = table
        self.interval_s = refresh_interval_s() if interval_s is None else interval_s
        self._m = {m.name: make(m) for m in spec.ROUTER}
        self._last: dict[str, VersionStats] = {}
        self._weighted: set[str] = set()  # versions whose weight gauge is set (not 0)
        self._dropped = 0  # events_dropped already exported
        self._task: asyncio.Task[None] | None = None

    def ensure_started(self) -> None:
        """Start the export loop on the running event loop (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                self.flush()
            except Exception:  # never let metrics break serving
                log.exception("metrics export failed")
            await asyncio.sleep(self.interval_s)

    def flush(self) -> None:
        model = self.model
        m = self._m
        for version, total in list(self.recorder.totals.items()):
            prev = self._last.get(version)
            d = total - prev if prev is not None else total.add(VersionStats())
            self._last[version] = total.add(VersionStats())
            tags = {"model": model, "version": version or "-"}
            for outcome, n in (
                ("ok", d.ok),
                ("error", d.errors),
                ("timeout", d.timeouts),
                ("rejected", d.rejected),
            ):
                if n:
                    m[spec.REQUESTS.name].inc(n, {**tags, "outcome": outcome})
            hist = m[spec.LATENCY.name]
            for i, c in enumerate(d.latency_counts):
                if c:
                    value = LATENCY_BOUNDS_MS[min(i, len(LATENCY_BOUNDS_MS) - 1)]
                    for _ in range(c):
                        hist.observe(value, tags)
            shadow_counts: tuple[tuple[spec.MetricSpec, float], ...] = (
                (spec.SHADOW_COMPARED, d.shadow_compared),
                (spec.SHADOW_DISAGREE, d.shadow_disagree),
                (spec.SHADOW_DROPPED, d.shadow_dropped),
                (spec.SHADOW_ERRORS, d.shadow_errors),
            )
            for ms, amount in shadow_counts:
                if amount:
                    m[ms.name].inc(amount, tags)
        self._export_table()
        self._export_dropped()

    def _export_table(self) -> None:
        m, model = self._m, self.model
        table = self.table()
        weights = table.percent()
        for version in sorted(self._weighted - weights.keys()):  # left the table: weight 0
            m[spec.WEIGHT.name].set(0.0, {"model": model, "version": version})
        for version, pct in weights.items():
            m[spec.WEIGHT.name].set(pct, {"model": model, "version": version})
        self._weighted = set(weights)
        m[spec.EPOCH.name].set(table.epoch, {"model": model})

    def _export_dropped(self) -> None:
        total = getattr(self.recorder, "events_dropped", None)  # cumulative, if kept
        if isinstance(total, int) and total > self._dropped:
            self._m[spec.EVENTS_DROPPED.name].inc(total - self._dropped, {"model": self.model})
            self._dropped = total

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
