"""Registry of methods under test, by name."""

from __future__ import annotations

from benchmarks.detection.methods.base import Method, Outcome
from benchmarks.detection.methods.kayenta import KayentaJudge
from benchmarks.detection.methods.sequential import Sequential
from benchmarks.detection.methods.threshold import ThresholdCheck


def _registry() -> dict[str, Method]:
    methods: list[Method] = [Sequential(), Sequential(warmup_s=0.0, label="ours-nowarmup")]
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


__all__ = ["DEFAULT_METHODS", "REGISTRY", "Method", "Outcome", "get_methods"]
