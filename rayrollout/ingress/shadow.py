"""``ShadowMirror``: sends a fraction of requests to the shadow version as well, never awaited by
the primary response, bounded in flight, and records how the shadow's answer compared."""

from __future__ import annotations

import asyncio
import logging
import math
import time

import numpy as np

from rayrollout.dataplane.aggregates import Recorder
from rayrollout.dataplane.compare import compare_outputs
from rayrollout.dataplane.events import ShadowEvent
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
        if self.in_flight >= table.shadow_max_in_flight:
            self.recorder.shadow_dropped(shadow)
            return
        self.in_flight += 1
        t = asyncio.ensure_future(self._call(shadow, table.shadow_rtol, task, arrays, primary,
                                             version))
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
