"""The rollout the rollback benchmark drives, its schedule, and its goals."""

from __future__ import annotations

from typing import Any

from benchmarks import _common as c

NAME = "rollback_latency"
STABLE, CANDIDATE = "v1", "v2"
GOAL_P99_MS = 250.0
# a candidate version call this slow, arriving around the rollback, was stranded: it waited for
# a replica of an app that was being deleted (normal version calls here take < 0.2 s)
STRANDED_MS = 2000.0
ANCHORS = [  # configured analysis intervals of other tools (their docs), not measurements
    (
        "Flagger",
        "analysis.interval (schedule interval, default 60 s) x analysis.threshold (failed checks "
        "before rollback, 5 in its examples): a rollback comes after >= 1 interval, ~5 min with "
        "the documented example",
    ),
    (
        "Argo Rollouts",
        "AnalysisTemplate metric interval (5m in its analysis docs' example) with failureLimit "
        "(3 in the example): the abort comes after one or more measurement intervals",
    ),
    (
        "Kayenta (Spinnaker ACA)",
        "canary analysis interval: 'the recommended interval is at least 30 minutes' "
        "(Spinnaker canary stage help)",
    ),
]


def schedule(rollbacks: int, promotions: int) -> list[str]:
    """``rollbacks`` aborts with ``promotions`` promote/undo cycles spread among them."""
    total = rollbacks + promotions
    at = {int((j + 1) * total / (promotions + 1)) for j in range(promotions)}
    return ["promote" if i in at else "abort" for i in range(total)]


def build_spec(
    model: str, store: str, weight: float, tick_s: float, router_replicas: int
) -> dict[str, Any]:
    def version(name: str) -> dict[str, Any]:
        return {"name": name, "runtime": "onnx", "artifact": str(c.ARTIFACTS / f"{name}.onnx")}

    return {
        "model": model,
        "stable": version(STABLE),
        "candidates": [version(CANDIDATE)],
        # one step that never ends by itself: only the benchmark's verbs move the rollout
        "strategy": {"steps": [{"weight": weight, "min_requests": 10**9}]},
        # errors only: v1 and v2 are both healthy, so no judge should roll back by itself
        "analysis": {"tick_s": tick_s, "checks": [{"kind": "errors"}]},
        "rollback_window_s": 3600,
        "router": {"deployment": {"num_replicas": router_replicas}},
        "store_path": store,
    }
