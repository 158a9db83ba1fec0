"""``python -m benchmarks.inference_throughput``: the command line; ``--worker MODE`` is one
Serve mode's subprocess, anything else the parent that runs the workers, times the model
in-process (no Ray running) and reports."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import benchmarks.inference_throughput as pkg
from benchmarks import _common as c
from benchmarks.inference_throughput.analyze import compare, goals, ratio_lines
from benchmarks.inference_throughput.config import (
    ROWS,
    VERSIONS,
    Cells,
    heldout,
    make_cells,
    router_cfg,
    version_cfg,
)
from benchmarks.inference_throughput.inprocess import in_process_all
from benchmarks.inference_throughput.report import in_process_doc, print_report

MODULE = "benchmarks.inference_throughput"  # what run_worker starts with ``python -m``


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=pkg.__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="~3 min: one mode, 4 s cells")
    p.add_argument(
        "--modes",
        default=None,
        help="Serve modes, each its own Ray session (default: proxy,direct-tuned; --quick: proxy)",
    )
    p.add_argument(
        "--models",
        default=",".join(VERSIONS),
        help="ONNX models under models/artifacts to serve in turn, comma-separated",
    )
    p.add_argument("--concurrency", type=int, default=64, help="single-row JSON requests in flight")
    p.add_argument(
        "--rows",
        default=",".join(map(str, ROWS)),
        help="rows per binary request, comma-separated (the sweep)",
    )
    p.add_argument("--sweep-concurrency", type=int, default=8, help="binary requests in flight")
    p.add_argument("--duration", type=float, default=None, help="seconds per served cell")
    p.add_argument("--warmup", type=float, default=None)
    p.add_argument(
        "--replay",
        type=float,
        default=None,
        help="seconds of in-process predict on each cell's formed batches, right after it",
    )
    p.add_argument("--client", choices=c.CLIENTS, default="raw")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def run_workers(
    a: argparse.Namespace, modes: list[str], duration: float, warmup: float, replay: float
) -> list[dict[str, Any]]:
    """Every mode's worker in turn; their served cells, in order."""
    args = ["--models", a.models, "--concurrency", str(a.concurrency), "--rows", a.rows]
    args += ["--sweep-concurrency", str(a.sweep_concurrency), "--duration", str(duration)]
    args += ["--warmup", str(warmup), "--replay", str(replay), "--client", a.client]
    served = []
    for m in modes:
        served += c.run_worker(MODULE, m, args, 1800)["served"]
    return served


def config_doc(
    a: argparse.Namespace,
    versions: list[str],
    rows: list[int],
    cells: Cells,
    modes: list[str],
    timing: dict[str, float],
) -> dict[str, Any]:
    """The result JSON's ``config``; ``timing``: warmup_s, duration_s, replay_s, min_s."""
    replay, min_s = timing["replay_s"], timing["min_s"]
    return {
        "versions": {v: version_cfg(v) for v in versions},
        "router": router_cfg("<version>", max(rows)),
        "batching": "VersionConfig defaults: max_batch_size=32 (requests), "
        "batch_wait_timeout_s=0.002, inline_rows=64",
        "cells": [{"kind": k, "rows_per_request": r, "concurrency": n} for k, r, n in cells],
        "binary_request": "POST /v2/models/bench/infer, inference-header-content-length, "
        "input FP32 [rows, 64] as binary_data_size, parameters.binary_data_output=true",
        "modes": modes,
        "mode_env": {m: c.mode_flags(m) for m in modes},
        "warmup_s": timing["warmup_s"],
        "duration_s": timing["duration_s"],
        "load_generator": f"{a.client}: one asyncio client process (the Ray driver), "
        "closed loop, one keep-alive connection per request in flight",
        "in_process": "rayrollout.runtime.load_runtime('onnx', <version>.onnx, "
        "intra_op_threads=1). interleaved (headline): in the worker right after each "
        f"served cell (Ray idle), predict over that cell's formed batch-size mix for "
        f">= {replay:g} s, rows / elapsed. best_of_no_ray: in the parent after all "
        f"workers, no Ray running, best of 15 rounds of >= {min_s / 15:.3f} s per size, "
        "rounds interleaved across sizes",
        "replay_s": replay,
    }


def command(a: argparse.Namespace) -> str:
    """The command line recorded in the result (the flags that change what runs)."""
    return (
        f"python -m {MODULE}"
        + (" --quick" if a.quick else "")
        + (f" --modes {a.modes}" if a.modes else "")
        + (f" --models {a.models}" if a.models != ",".join(VERSIONS) else "")
    )


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    duration = a.duration or (4.0 if a.quick else 8.0)
    warmup = a.warmup if a.warmup is not None else (1.0 if a.quick else 2.0)
    min_s = 0.3 if a.quick else 0.6
    replay = a.replay or (2.0 if a.quick else 3.0)
    rows = [int(r) for r in a.rows.split(",") if r]
    versions = [v for v in a.models.split(",") if v]
    for v in versions:
        if not (c.ARTIFACTS / f"{v}.onnx").is_file():
            p.error(f"--models: no ONNX artifact models/artifacts/{v}.onnx")
    cells = make_cells(rows, a.concurrency, a.sweep_concurrency)
    if a.worker:
        from benchmarks.inference_throughput.worker import worker

        worker(a.worker, versions, a.out, cells, warmup, duration, a.client, replay)
        return 0
    modes = (a.modes or ("proxy" if a.quick else "proxy,direct-tuned")).split(",")

    t0 = time.time()
    meta = c.machine()
    served = run_workers(a, modes, duration, warmup, replay)
    t_served = time.time() - t0

    # in-process: this process, no Ray running
    ip = in_process_all(served, versions, heldout(), rows, min_s)
    comparisons = compare(served, ip)
    goal = goals(comparisons)
    ratios = ratio_lines(comparisons)
    print_report(comparisons, ip, ratios, a.sweep_concurrency, goal, max(rows))

    timing = {"warmup_s": warmup, "duration_s": duration, "replay_s": replay, "min_s": min_s}
    doc = {
        "benchmark": "inference_throughput",
        "command": command(a),
        "config": config_doc(a, versions, rows, cells, modes, timing),
        "machine": {**meta, "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
        "git": c.git_rev(),
        "wall_s": round(time.time() - t0, 1),
        "served_wall_s": round(t_served, 1),
        "results": comparisons,
        "goal": goal,
        "in_process": in_process_doc(ip, rows),
        "ratios": ratios,
    }
    path = c.write_result("inference_throughput", doc, a.out)
    print(f"\nwrote {c.shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
