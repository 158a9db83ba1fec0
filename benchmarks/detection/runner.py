"""Run scenarios x seeds x methods (in worker processes) and summarise per (scenario, method)."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.detection.methods import Method, applies, get_methods
from benchmarks.detection.methods.oracle import oracle_n
from benchmarks.detection.scenario import Scenario
from benchmarks.detection.simulator import seed_sequence, simulate
from benchmarks.detection.stats import summarise, wilson


@dataclass(frozen=True)
class RunResult:
    scenario: str
    run_index: int
    method: str
    t_decision: float | None
    exposure: int
    guard: str | None


def run_one(sc: Scenario, run_index: int, suite_seed: int,
            methods: list[Method]) -> tuple[list[RunResult], float]:
    """Simulate one run and judge it with every method. Returns results and CPU seconds."""
    c0 = time.process_time()
    run = simulate(sc, run_index, suite_seed)
    out = []
    for m in methods:
        if not applies(m.name, sc):
            continue
        # methods' own randomness (Kayenta's baseline sample) from a child of the run's seed
        ss = seed_sequence(suite_seed, sc.name, run_index)
        rng = np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(1,)))
        o = m.judge(run, sc, rng)
        out.append(RunResult(sc.name, run_index, m.name, o.t_decision, o.exposure,
                             o.extra.get("guard")))
    return out, time.process_time() - c0


def _task(args: tuple[Scenario, list[int], int, list[str]]) -> tuple[list[RunResult], float]:
    sc, idxs, suite_seed, names = args
    methods = get_methods(names)
    res: list[RunResult] = []
    cpu = 0.0
    for i in idxs:
        r, c = run_one(sc, i, suite_seed, methods)
        res += r
        cpu += c
    return res, cpu


def run_scenarios(scenarios: Iterable[Scenario], seeds: int | None, suite_seed: int,
                  method_names: list[str], workers: int = 2, chunk: int = 20,
                  first: int = 0) -> tuple[list[RunResult], dict[str, float]]:
    """Runs ``first`` .. n - 1 of each scenario; ``seeds=None``: n is the scenario's own
    count. Returns results, CPU s per scenario."""
    tasks = []
    for sc in scenarios:
        n = sc.seeds if seeds is None else seeds
        for lo in range(first, n, chunk):
            tasks.append((sc, list(range(lo, min(n, lo + chunk))), suite_seed, method_names))
    results: list[RunResult] = []
    cpu: dict[str, float] = {}
    if workers <= 1:
        outs: Iterable[tuple[list[RunResult], float]] = map(_task, tasks)
        for (sc, *_), (r, c) in zip(tasks, outs, strict=True):
            results += r
            cpu[sc.name] = cpu.get(sc.name, 0.0) + c
        return results, cpu
    with mp.get_context("fork").Pool(workers) as pool:
        for i, ((sc, *_), (r, c)) in enumerate(zip(tasks, pool.imap(_task, tasks), strict=True)):
            results += r
            cpu[sc.name] = cpu.get(sc.name, 0.0) + c
            if (i + 1) % 25 == 0 or i + 1 == len(tasks):
                print(f"# {i + 1}/{len(tasks)} tasks done", file=sys.stderr, flush=True)
    return results, cpu


def shows_bound(results: list[RunResult], name: str, method: str = "ours") -> bool:
    """Does ``method`` show T1 on null scenario ``name``: upper 95% Wilson bound <= 7%?"""
    rs = [r for r in results if r.scenario == name and r.method == method]
    k = sum(r.t_decision is not None for r in rs)
    return bool(rs) and wilson(k, len(rs))[1] <= 0.07


def run_matrix(scenarios: list[Scenario], suite_seed: int, method_names: list[str],
               workers: int, null_first: int) -> tuple[list[Scenario], list[RunResult],
                                                        dict[str, float]]:
    """Every scenario at its own run count, except the null scenarios: their first
    ``null_first`` runs, then up to their own count (600) where those runs cannot show the
    bound for ours (upper 95% Wilson bound above 7%). Returns the scenarios as run (their
    ``seeds`` = runs made), the results and CPU s per scenario."""
    first = [dataclasses.replace(sc, seeds=min(sc.seeds, null_first)) if sc.truth == "null"
             else sc for sc in scenarios]
    results, cpu = run_scenarios(first, None, suite_seed, method_names, workers)
    more = [sc for sc, f in zip(scenarios, first, strict=True)
            if sc.seeds > f.seeds and not shows_bound(results, sc.name)]
    if more:
        print(f"# extending {[sc.name for sc in more]} to their own run counts",
              file=sys.stderr, flush=True)
        extra, cpu2 = run_scenarios(more, None, suite_seed, method_names, workers,
                                    first=null_first)
        results += extra
        for name, c in cpu2.items():
            cpu[name] = cpu.get(name, 0.0) + c
    extended = {sc.name for sc in more}
    ran = [sc if sc.name in extended else f for sc, f in zip(scenarios, first, strict=True)]
    return ran, results, cpu


def summarise_all(scenarios: list[Scenario], results: list[RunResult], suite_seed: int,
                  method_names: list[str]) -> list[dict[str, Any]]:
    by: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        by.setdefault((r.scenario, r.method), []).append(r)
    lines = []
    for sc in scenarios:
        for m in get_methods(method_names):
            rs = sorted(by.get((sc.name, m.name), []), key=lambda r: r.run_index)
            if not rs:
                continue
            lines.append(summarise(sc, m, rs, suite_seed, oracle_n(sc), oracle_n(sc, 0.05)))
    return lines
