"""What the soak runs: the rollout cycle, the rollout specs, and the memory-growth threshold."""

from __future__ import annotations

from typing import Any

from benchmarks import _common as c

NAME = "soak"
FIRST_STABLE = "v1"
# (stable, candidate, expected outcome): a promotion, a regression rolled back, a promotion back
CYCLE: tuple[tuple[str, str, str], ...] = (
    ("v1", "v2", "promote"),
    ("v2", "v2-regressed", "rollback"),
    ("v2", "v1", "promote"),
)
# Growth beyond noise: the end of a process's RSS over its start by more than both of these.
# 10 %: a Python worker's RSS moves by a few percent with no leak (allocator arenas, the GC's
# generations, Ray's own buffers). 16 MiB: about 700 bytes a request over the default run's
# 24,000 requests, so a leak of a few small objects per request still crosses it.
GROWTH_REL = 0.10
GROWTH_ABS_MIB = 16.0


def cycle_at(i: int) -> tuple[str, str, str]:
    """The ``i``-th rollout of the run (0-based): the cycle repeated."""
    return CYCLE[i % len(CYCLE)]


def next_index(i: int, stable: str) -> int:
    """The next rollout of the cycle after rollout ``i`` whose stable is ``stable`` (a promotion
    that did not happen leaves the stable where it was: that rollout is tried again)."""
    for j in range(i + 1, i + 1 + len(CYCLE)):
        if cycle_at(j)[0] == stable:
            return j
    raise ValueError(f"no rollout of the cycle has {stable!r} as stable")


def version(name: str) -> dict[str, Any]:
    return {"name": name, "runtime": "onnx", "artifact": str(c.ARTIFACTS / f"{name}.onnx")}


def build_spec(
    model: str,
    store: str,
    stable: str,
    candidate: str,
    kind: str,
    cfg: dict[str, Any],
) -> dict[str, Any]:
    """One rollout of ``candidate`` over ``stable``.

    ``promote``: one canary step that ends by itself after ``promote_requests`` candidate
    requests, judged on errors only (v1 is less accurate than v2 and is promoted back on
    purpose). ``rollback``: a step that never ends by itself, judged on errors and accuracy (the
    labels the client posts back), so only a judge (or the driver's abort) ends it."""
    if kind == "promote":
        step = {"weight": cfg["weight"], "min_requests": cfg["promote_requests"],
                "min_duration_s": cfg["promote_min_s"]}
        checks: list[dict[str, Any]] = [{"kind": "errors"}]
    else:
        step = {"weight": cfg["weight"], "min_requests": 10**9}
        checks = [
            {"kind": "errors"},
            {"kind": "accuracy", "params": {"mode": "errors", "min_labelled": 100}},
        ]
    return {
        "model": model,
        "stable": version(stable),
        "candidates": [version(candidate)],
        "strategy": {"steps": [step]},
        "analysis": {"tick_s": cfg["tick_s"], "checks": checks},
        "rollback_window_s": cfg["rollback_window_s"],
        "drain_s": cfg["drain_s"],
        "router": {"deployment": {"num_replicas": cfg["router_replicas"]}},
        "store_path": store,
    }
