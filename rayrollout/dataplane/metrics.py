"""Every Prometheus metric rayrollout exports, with its labels and buckets. Pure declarations.

Labels stay low-cardinality: model, version, outcome. Never a request id or a user key.
The serving layer turns these into ``ray.util.metrics`` objects (exported through Ray's
metrics agent, so one scrape covers every router replica on the node); Ray prefixes names
with ``ray_``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rayrollout.dataplane.aggregates import LATENCY_BOUNDS_MS


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # "counter" | "gauge" | "histogram"
    description: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


# Prometheus buckets are a subset of the recorder's bounds, so re-observing a recorder bucket's
# upper bound lands in exactly the Prometheus bucket the original value would have.
_PROM_BOUNDS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
LATENCY_BUCKETS_MS: tuple[float, ...] = tuple(b for b in LATENCY_BOUNDS_MS if b in _PROM_BOUNDS)

REQUESTS = MetricSpec(
    "rayrollout_requests_total",
    "counter",
    "Requests by model, version and outcome (ok, error, timeout, rejected).",
    ("model", "version", "outcome"),
)
LATENCY = MetricSpec(
    "rayrollout_request_latency_ms",
    "histogram",
    "Router-measured latency of the version call, successful requests, milliseconds.",
    ("model", "version"),
    LATENCY_BUCKETS_MS,
)
SHADOW_COMPARED = MetricSpec(
    "rayrollout_shadow_comparisons_total",
    "counter",
    "Shadow responses compared with the primary's.",
    ("model", "version"),
)
SHADOW_DISAGREE = MetricSpec(
    "rayrollout_shadow_disagreements_total",
    "counter",
    "Sum of per-request disagreement fractions between shadow and primary.",
    ("model", "version"),
)
SHADOW_DROPPED = MetricSpec(
    "rayrollout_shadow_dropped_total",
    "counter",
    "Shadow calls dropped because the in-flight bound was reached.",
    ("model", "version"),
)
SHADOW_ERRORS = MetricSpec(
    "rayrollout_shadow_errors_total",
    "counter",
    "Shadow calls that failed.",
    ("model", "version"),
)
WEIGHT = MetricSpec(
    "rayrollout_routing_weight",
    "gauge",
    "Routing weight of a version in the table in force, percent.",
    ("model", "version"),
)
EPOCH = MetricSpec(
    "rayrollout_routing_epoch",
    "gauge",
    "Epoch of the routing table in force.",
    ("model",),
)
EVENTS_DROPPED = MetricSpec(
    "rayrollout_events_dropped_total",
    "counter",
    "Per-request events that fell off the router's bounded buffer before collection.",
    ("model",),
)

ALL: tuple[MetricSpec, ...] = (
    REQUESTS,
    LATENCY,
    SHADOW_COMPARED,
    SHADOW_DISAGREE,
    SHADOW_DROPPED,
    SHADOW_ERRORS,
    WEIGHT,
    EPOCH,
    EVENTS_DROPPED,
)
