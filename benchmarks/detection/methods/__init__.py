"""Registry of methods under test, by name."""

from __future__ import annotations

from benchmarks.detection.methods.base import Method, Outcome
from benchmarks.detection.methods.kayenta import KayentaJudge
from benchmarks.detection.methods.sequential import Sequential
from benchmarks.detection.methods.threshold import ThresholdCheck
from benchmarks.detection.scenario import Scenario


def _ours() -> list[Method]:
    """Ours (what the library deploys), test B for comparison, and the power variants."""
    return [
        Sequential(),
        Sequential(warmup_s=0.0, label="ours-nowarmup"),
        Sequential(latency="block_paired", label="ours-blockpaired"),
        Sequential(path="completion", label="ours-completion"),
        Sequential(latency="block_paired", path="completion",
                   label="ours-blockpaired-completion"),
        Sequential(bets="agrapa", label="ours-agrapa"),
        Sequential(bets="ons", label="ours-ons"),
        Sequential(bets="prior", label="ours-prior"),
        Sequential(scale="none", label="ours-pooled-w"),
    ]


POWER_VARIANTS = ("ours-agrapa", "ours-ons", "ours-prior", "ours-pooled-w")
ARM_BET_PRIMARY = ("latency", "drift", "accuracy")


def applies(name: str, sc: Scenario) -> bool:
    """Skip method variants that are identical to another on this scenario, or that change
    nothing the scenario tests: the completion-order variants need the deployed path (it has
    completion times); pooled-w differs from ours only when the weight changes; the betting
    variants change the arm bets only (null scenarios and latency/drift/accuracy effects)."""
    if name == "ours-nowarmup":
        return sc.warmup_s > 0
    if name.endswith("-completion"):
        return sc.sim.deployed
    if name == "ours-pooled-w":
        return isinstance(sc.sim.weight, tuple)
    if name in POWER_VARIANTS:
        return sc.truth == "null" or sc.primary in ARM_BET_PRIMARY
    return True


def _registry() -> dict[str, Method]:
    methods: list[Method] = _ours()
    methods += [KayentaJudge(interval_min=m) for m in (10, 2, 5, 30)]
    for interval in (60.0, 300.0):
        for mode in ("abs", "rel"):
            methods += [ThresholdCheck("argo", lim, mode, interval) for lim in (0, 3)]
            methods += [ThresholdCheck("flagger", lim, mode, interval) for lim in (1, 5)]
    return {m.name: m for m in methods}


REGISTRY: dict[str, Method] = _registry()
DEFAULT_METHODS = tuple(REGISTRY)


def get_methods(names: list[str] | tuple[str, ...] | None) -> list[Method]:
    if not names:
        return list(REGISTRY.values())
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {sorted(REGISTRY)}")
    return [REGISTRY[n] for n in names]


__all__ = ["DEFAULT_METHODS", "POWER_VARIANTS", "REGISTRY", "Method", "Outcome", "applies",
           "get_methods"]
