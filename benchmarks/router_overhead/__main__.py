"""``python -m benchmarks.router_overhead``: the command line; ``--worker MODE`` is one Serve
mode's subprocess, anything else the parent that runs the workers and reports."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import benchmarks.router_overhead as pkg
from benchmarks import _common as c
from benchmarks.router_overhead.config import LOAD_GENERATORS, MAX_ONGOING, SPLIT
from benchmarks.router_overhead.report import aggregate_runs, print_report, ratios_of

MODULE = "benchmarks.router_overhead"  # what run_worker starts with ``python -m``


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=pkg.__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="~1.5 min: proxy+direct, 1 rep of 3 s")
    p.add_argument("--modes", default=None, help="default: proxy,direct,direct-tuned")
    p.add_argument("--concurrency", default="1,32")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--duration", type=float, default=None, help="seconds per measured cell")
    p.add_argument("--warmup", type=float, default=None)
    p.add_argument(
        "--client",
        choices=c.CLIENTS,
        default="raw",
        help="load generator: minimal asyncio HTTP/1.1 client (raw) or httpx",
    )
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def result_doc(
    a: argparse.Namespace,
    modes: list[str],
    concs: list[int],
    reps: int,
    warmup: float,
    duration: float,
    runs: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The result JSON's head: command and config (the caller adds machine, timing, results)."""
    return {
        "benchmark": "router_overhead",
        "command": f"python -m {MODULE}" + (" --quick" if a.quick else "")
        + (f" --modes {a.modes}" if a.modes else ""),
        "config": {
            "modes": modes,
            "concurrency": concs,
            "reps": reps,
            "warmup_s": warmup,
            "duration_s": duration,
            "split": SPLIT,
            "max_ongoing_requests": MAX_ONGOING,
            "request": "POST one row {'instances': [[64 x FP32]]} (models/heldout.npz X[0])",
            "load_generator": LOAD_GENERATORS[a.client],
            "mode_env": {m: runs[m]["env"] for m in modes},
            "deployed": runs[modes[0]]["deployed"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    reps = a.reps or (1 if a.quick else 2)
    duration = a.duration or (3.0 if a.quick else 6.0)
    warmup = a.warmup if a.warmup is not None else 1.0
    concs = [int(x) for x in a.concurrency.split(",")]
    if a.worker:
        from benchmarks.router_overhead.worker import worker

        worker(a.worker, a.out, concs, reps, warmup, duration, a.client)
        return 0

    modes = (
        a.modes.split(",")
        if a.modes
        else (["proxy", "direct"] if a.quick else ["proxy", "direct", "direct-tuned"])
    )
    t0 = time.time()
    meta = c.machine()
    args = ["--concurrency", a.concurrency, "--reps", str(reps), "--duration", str(duration)]
    args += ["--warmup", str(warmup), "--client", a.client]
    runs = {m: c.run_worker(MODULE, m, args, timeout_s=900) for m in modes}

    results = aggregate_runs(runs, concs)
    ratios = ratios_of(results, modes, concs)
    print_report(results, ratios, modes, concs)

    doc = result_doc(a, modes, concs, reps, warmup, duration, runs)
    doc.update(
        machine={**meta, "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
        git=c.git_rev(),
        wall_s=round(time.time() - t0, 1),
        results=results,
        ratios=ratios,
    )
    path = c.write_result("router_overhead", doc, a.out)
    print(f"\nwrote {c.shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
