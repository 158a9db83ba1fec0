"""Every Prometheus metric rayrollout exports, with its labels and buckets. Pure declarations.

Labels stay low-cardinality: model, version, outcome, check, phase, decision kind, store
operation. Never a request id or a user key. The serving layer turns these into
``ray.util.metrics`` objects (exported through Ray's metrics agent, so one scrape covers every
process on the node); Ray prefixes names with ``ray_``.

Two exporters, two kinds of series:

* ``ROUTER``: each ingress replica exports its own (``rayrollout.serving.exporter``). Counters
  and the histogram add up across replicas (``sum``); the router gauges (weight, epoch) are one
  series per replica, each showing the table that replica holds: read them with ``max``/``min``.
* ``CONTROLLER``: the model's one controller actor exports them
  (``rayrollout.serving.controller_metrics``): the authoritative rollout state of each model.
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

# -- the controller ------------------------------------------------------------------------

TICK_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
STORE_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

CONTROLLER_PHASE = MetricSpec(
    "rayrollout_controller_phase",
    "gauge",
    "1 for the rollout's current phase, 0 for every other phase (phase=none: no rollout).",
    ("model", "phase"),
)
CONTROLLER_STEP = MetricSpec(
    "rayrollout_controller_step",
    "gauge",
    "Index of the current canary step (-1 before the first step).",
    ("model",),
)
CONTROLLER_WEIGHT = MetricSpec(
    "rayrollout_controller_weight",
    "gauge",
    "Routing weight of a version in the controller's state, percent (0 once it left).",
    ("model", "version"),
)
CONTROLLER_ROLE = MetricSpec(
    "rayrollout_controller_role",
    "gauge",
    "1 for a version's role in the rollout (stable, candidate, previous_stable), 0 for the "
    "others: join on version to group the routers' series by role.",
    ("model", "version", "role"),
)
CONTROLLER_EPOCH = MetricSpec(
    "rayrollout_controller_epoch",
    "gauge",
    "Epoch of the routing table the controller's state holds.",
    ("model",),
)
CHECK_EVIDENCE = MetricSpec(
    "rayrollout_check_evidence",
    "gauge",
    "A sequential check's evidence against the candidate, log10 of its e-value (E = 10^x).",
    ("model", "version", "check"),
)
CHECK_THRESHOLD = MetricSpec(
    "rayrollout_check_threshold",
    "gauge",
    "log10 of the e-value at which a sequential check FAILs (its share of alpha).",
    ("model", "check"),
)
CHECK_VERDICT = MetricSpec(
    "rayrollout_check_verdict",
    "gauge",
    "A check's last verdict of a candidate: 0 PASS, 1 INCONCLUSIVE, 2 ERROR, 3 FAIL.",
    ("model", "version", "check"),
)
DECISIONS = MetricSpec(
    "rayrollout_decisions_total",
    "counter",
    "Decisions logged, by kind (the phase entered, step, update, or the entry's own kind).",
    ("model", "kind"),
)
TICK_SECONDS = MetricSpec(
    "rayrollout_tick_seconds",
    "histogram",
    "Duration of one controller tick (collect, judge, decide, persist, act), seconds.",
    ("model",),
    TICK_BUCKETS_S,
)
STORE_SECONDS = MetricSpec(
    "rayrollout_store_seconds",
    "histogram",
    "Duration of one rollout-store call by the controller, by operation, seconds.",
    ("model", "op"),
    STORE_BUCKETS_S,
)

ROUTER: tuple[MetricSpec, ...] = (
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
CONTROLLER: tuple[MetricSpec, ...] = (
    CONTROLLER_PHASE,
    CONTROLLER_STEP,
    CONTROLLER_WEIGHT,
    CONTROLLER_ROLE,
    CONTROLLER_EPOCH,
    CHECK_EVIDENCE,
    CHECK_THRESHOLD,
    CHECK_VERDICT,
    DECISIONS,
    TICK_SECONDS,
    STORE_SECONDS,
)
ALL: tuple[MetricSpec, ...] = ROUTER + CONTROLLER


def exported_series(m: MetricSpec) -> tuple[str, ...]:
    """The Prometheus series names ``m`` appears under once Ray exports it: ``ray_`` + its
    name, and a histogram's ``_bucket``, ``_count`` and ``_sum``."""
    name = "ray_" + m.name
    if m.kind == "histogram":
        return (name + "_bucket", name + "_count", name + "_sum")
    return (name,)
