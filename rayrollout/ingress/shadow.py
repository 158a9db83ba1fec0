"""``ShadowMirror``: sends a fraction of requests to the shadow version as well, never awaited by
the primary response, bounded in flight, and records how the shadow's answer compared."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np

from rayrollout.dataplane.aggregates import Recorder
from rayrollout.dataplane.compare import compare_outputs
from rayrollout.dataplane.events import ShadowEvent
from rayrollout.dataplane.passthrough import Forward, compare_predictions
from rayrollout.dataplane.routing import RoutingTable
from rayrollout.ingress.http import short_error
from rayrollout.ingress.versions import VersionClient

log = logging.getLogger("rayrollout.router")


class ShadowMirror:
    """At most ``table.shadow_max_in_flight`` shadow calls at once; one more is dropped and
    counted (``shadow_dropped``), never queued behind users' requests."""

    def __init__(self, versions: VersionClient, recorder: Recorder, timeout_s: float) -> None:
        self.versions = versions
        self.recorder = recorder
        self.timeout_s = timeout_s
        self.in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def mirror(self, table: RoutingTable, task: str, arrays: dict[str, np.ndarray],
               primary: dict[str, np.ndarray], version: str) -> None:
        """Start the shadow call of one served request (``primary``: what ``version`` said)."""
        shadow = table.shadow
        assert shadow is not None
        self._start(table, lambda: self._call(shadow, table.shadow_rtol, task, arrays, primary,
                                              version))

    def _start(self, table: RoutingTable, call: Callable[[], Coroutine[Any, Any, None]]
               ) -> None:
        """Start one shadow call, or drop and count it when the bound is reached."""
        assert table.shadow is not None
        if self.in_flight >= table.shadow_max_in_flight:
            self.recorder.shadow_dropped(table.shadow)
            return
        self.in_flight += 1
        t = asyncio.ensure_future(call())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _call(self, shadow: str, rtol: float, task: str, arrays: dict[str, np.ndarray],
                    primary: dict[str, np.ndarray], version: str) -> None:
        t, t0 = time.time(), time.perf_counter()
        try:
            out = await asyncio.wait_for(self.versions.predict(shadow, arrays), self.timeout_s)
            ms = (time.perf_counter() - t0) * 1000.0
            disagree, diff = compare_outputs(primary, out, task, rtol)
            self.recorder.record_shadow(ShadowEvent(t, version, shadow, disagree, diff, ms, True))
        except Exception as e:
            ms = (time.perf_counter() - t0) * 1000.0
            log.debug("shadow %s failed: %s", shadow, short_error(e))
            self.recorder.record_shadow(ShadowEvent(t, version, shadow, 1.0, math.nan, ms, False))
        finally:
            self.in_flight -= 1

    def mirror_http(self, table: RoutingTable, request: Forward, via: tuple[str, int] | None,
                    primary: float, version: str,
                    extract: Callable[[RoutingTable, str, bytes], float]) -> None:
        """Pass a served request through to the shadow as well; its prediction (read by its
        own extractor) is compared with the primary's. A shadow answer that is not a 2xx
        counts as a failed shadow call."""
        self._start(table, lambda: self._call_http(table, request, via, primary, version,
                                                   extract))

    async def _call_http(self, table: RoutingTable, request: Forward,
                         via: tuple[str, int] | None, primary: float, version: str,
                         extract: Callable[[RoutingTable, str, bytes], float]) -> None:
        shadow = table.shadow
        assert shadow is not None
        t, t0 = time.time(), time.perf_counter()
        ok, disagree, diff = False, 1.0, math.nan
        try:
            answer = await asyncio.wait_for(self.versions.forward(shadow, request, via),
                                            self.timeout_s)
            if 200 <= answer.status < 300:
                ok = True
                task = str(table.predictions.get(shadow, {}).get("task", "classification"))
                disagree, diff = compare_predictions(
                    primary, extract(table, shadow, answer.body), task, table.shadow_rtol)
        except Exception as e:
            log.debug("shadow %s failed: %s", shadow, short_error(e))
        finally:
            self.in_flight -= 1
        ms = (time.perf_counter() - t0) * 1000.0
        self.recorder.record_shadow(ShadowEvent(t, version, shadow, disagree, diff, ms, ok))
