"""Per-request records the router keeps for the judges, in arrival order.

Pure data: no Ray, no clock. The router appends one compact tuple per request to a bounded
buffer (a ``collections.deque``) and the controller drains them as columnar batches.

Guarantees:

* Every batch is in arrival order (``t`` non-decreasing within one router replica).
* ``weight`` is the probability, under the routing table in force for that request, that the
  request would be routed to ``version``. The sequential judges need it (STATISTICS.md 1.7):
  a request pinned by header or assigned by a sticky key carries ``weight`` as configured but
  ``randomised=False``, so judges can exclude it or treat its session as the unit.
* Outcomes are codes, not strings, so a batch is a handful of numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np


class Outcome(IntEnum):
    """What happened to one request. ``REJECTED`` is bad input: never a model failure."""

    OK = 0
    ERROR = 1  # the model raised, or the version failed: a model failure
    TIMEOUT = 2  # the version did not answer in time: a model failure
    REJECTED = 3  # bad input, answered with a 4xx before reaching the version


class RequestEvent(NamedTuple):
    """One request, as the router saw it. Tuples keep recording to about a microsecond."""

    t: float  # wall-clock seconds when the request arrived at the router
    version: str  # which version served it
    weight: float  # routing probability of ``version`` under the table in force
    latency_ms: float  # router-measured time for the version call
    outcome: int  # an ``Outcome``
    prediction: float  # class index or score summary; NaN when there is none
    unit: str  # statistical unit: the sticky key (session) or "" for a random choice
    randomised: bool  # True when the version was drawn at random with ``weight``
    epoch: int  # routing-table epoch the request was routed with


class ShadowEvent(NamedTuple):
    """One shadow comparison: the primary's answer against the shadow's for one request."""

    t: float
    primary: str
    shadow: str
    disagree: float  # 1.0/0.0 for classifiers; relative difference in [0, 1] for regressors
    abs_diff: float  # absolute difference of the compared outputs (NaN when not numeric)
    shadow_latency_ms: float
    shadow_ok: bool


class LabelledEvent(NamedTuple):
    """A request whose ground-truth label came back (joined later, keyed by request).

    ``weight`` is the routing probability of ``version`` (as in ``RequestEvent``); ``prob`` the
    model's probability for the label it predicted (``correct`` tells whether it was right),
    used for the Brier score; NaN when the model gives none.
    """

    t: float  # when the request arrived at the router (not when the label came back)
    version: str
    weight: float
    correct: bool
    prob: float
    epoch: int = -1  # routing-table epoch, -1 when unknown
    randomised: bool = True


@dataclass(frozen=True)
class EventBatch:
    """Columnar view of request events (numpy arrays of equal length)."""

    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    version: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    weight: np.ndarray = field(default_factory=lambda: np.zeros(0))
    latency_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    outcome: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    prediction: np.ndarray = field(default_factory=lambda: np.zeros(0))
    unit: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    randomised: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    epoch: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def from_events(cls, events: list[RequestEvent] | list[tuple[Any, ...]]) -> EventBatch:
        if not events:
            return cls()
        cols = list(zip(*events, strict=True))
        return cls(
            t=np.asarray(cols[0], dtype=float),
            version=np.asarray(cols[1], dtype=object),
            weight=np.asarray(cols[2], dtype=float),
            latency_ms=np.asarray(cols[3], dtype=float),
            outcome=np.asarray(cols[4], dtype=np.int8),
            prediction=np.asarray(cols[5], dtype=float),
            unit=np.asarray(cols[6], dtype=object),
            randomised=np.asarray(cols[7], dtype=bool),
            epoch=np.asarray(cols[8], dtype=np.int64),
        )

    @classmethod
    def concat(cls, batches: list[EventBatch]) -> EventBatch:
        """Merge batches from several router replicas, sorted by arrival time (stable)."""
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls()
        t = np.concatenate([b.t for b in batches])
        order = np.argsort(t, kind="stable")

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(b, name) for b in batches])[order]

        return cls(
            t=t[order],
            version=cat("version"),
            weight=cat("weight"),
            latency_ms=cat("latency_ms"),
            outcome=cat("outcome"),
            prediction=cat("prediction"),
            unit=cat("unit"),
            randomised=cat("randomised"),
            epoch=cat("epoch"),
        )
