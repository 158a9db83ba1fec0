"""Arrival order across router replicas: which reported events the judges may see now.

Routers record a request when it completes and report a watermark (no event still to come
arrived before it). ``ArrivalOrder`` keeps the events reported but not yet releasable and
releases, sorted by arrival, those below the smallest watermark seen so far. Pure code: the
controller core uses it, and so does the detection benchmark's deployed path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from rayrollout.dataplane.events import RequestEvent


class ArrivalOrder:
    """``held`` events wait; ``watermark`` only moves forward (None: nothing known yet)."""

    def __init__(self, held: Iterable[RequestEvent] = (), watermark: float | None = None
                 ) -> None:
        self.held: list[RequestEvent] = list(held)
        self.watermark = watermark

    def release(self, events: Sequence[RequestEvent], watermark: float | None
                ) -> list[RequestEvent]:
        """Add ``events`` (any order) and return those that arrived before the watermark,
        sorted by arrival. ``watermark=None``: no router answered, release nothing new;
        ``inf``: the routers do not track requests in flight, release everything."""
        if watermark is not None:
            self.watermark = (watermark if self.watermark is None
                              else max(self.watermark, watermark))
        pool = [*self.held, *events]
        if self.watermark is None:
            self.held = pool
            return []
        wm = self.watermark
        self.held = [e for e in pool if e.t >= wm]
        return sorted((e for e in pool if e.t < wm), key=lambda e: e.t)

    def finite_watermark(self) -> float | None:
        """The watermark as JSON can hold it (None when unknown or infinite)."""
        w = self.watermark
        return w if w is not None and math.isfinite(w) else None
