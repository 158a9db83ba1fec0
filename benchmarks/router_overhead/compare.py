"""Compare router_overhead runs of two code versions measured on the same machine state.

Each run already measures the router against the plain app side by side; this pools several
runs per version (alternate them: before, after, before, ...) and prints, per Serve mode and
concurrency:

* router/plain req/s within the mode (the router's own cost; plain is the same code in both);
* router replica CPU per request over the version replica's in the same cell (drift of the
  machine during a cell moves both; their quotient cancels it).

::

    python -m benchmarks.router_overhead --out /tmp/before_1.json     # in a checkout of "before"
    python -m benchmarks.router_overhead --out /tmp/after_1.json      # in a checkout of "after"
    python -m benchmarks.router_overhead.compare --before /tmp/before_*.json \\
        --after /tmp/after_*.json --out benchmarks/results/router_overhead_before_after.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks import _common as c

Cell = dict[str, float]


def cell_of(run: dict[str, Any], mode: str, conc: int) -> Cell:
    """One run's figures for one (mode, concurrency)."""
    router = run["results"][f"{mode}/router/c{conc}"]
    plain = run["results"][f"{mode}/plain/c{conc}"]
    cpu = router["cpu_ms_per_request"]
    router_cpu = sum(v for k, v in cpu.items() if k.endswith(":Router"))
    version_cpu = sum(v for k, v in cpu.items() if k.endswith(":ModelVersion"))
    return {
        "ratio": router["rps"] / plain["rps"],
        "router_rps": router["rps"],
        "router_cpu_ms": router_cpu,
        "version_cpu_ms": version_cpu,
        "plain_cpu_ms": sum(v for k, v in plain["cpu_ms_per_request"].items()
                            if k.endswith(":PlainOnnx")),
        "router_over_version_cpu": router_cpu / version_cpu if version_cpu else float("nan"),
        "added_p50_ms": router["p50_ms"] - plain["p50_ms"],
    }


def pooled(runs: list[dict[str, Any]], mode: str, conc: int) -> dict[str, Any]:
    """Mean and each run's value of every figure of ``cell_of``."""
    cells = [cell_of(r, mode, conc) for r in runs]
    return {k: {"mean": round(statistics.mean(x[k] for x in cells), 3),
                "each": [round(x[k], 3) for x in cells]} for k in cells[0]}


def about(run: dict[str, Any], path: Path) -> dict[str, Any]:
    m = run["machine"]
    shown = c.shown(path)  # a run kept outside the repository is named by its file name only
    return {"file": str(shown if not shown.is_absolute() else path.name), "git": run.get("git"),
            "date": m.get("date"),
            "loadavg_1m": [m.get("loadavg_1m_at_start"), m.get("loadavg_1m_at_end")]}


def compare(before: list[Path], after: list[Path]) -> dict[str, Any]:
    docs = {"before": [json.loads(p.read_text()) for p in before],
            "after": [json.loads(p.read_text()) for p in after]}
    modes = [m for m in docs["after"][0]["config"]["modes"]
             if all(m in d["config"]["modes"] for d in docs["before"])]
    concs = docs["after"][0]["config"]["concurrency"]
    cells = {f"{m} c={k}": {side: pooled(runs, m, k) for side, runs in docs.items()}
             for m in modes for k in concs}
    return {
        "benchmark": "router_overhead before/after",
        "runs": {"before": [about(d, p) for d, p in zip(docs["before"], before, strict=True)],
                 "after": [about(d, p) for d, p in zip(docs["after"], after, strict=True)]},
        "cells": cells,
    }


def print_table(doc: dict[str, Any]) -> None:
    rows = []
    for name, sides in doc["cells"].items():
        b, a = sides["before"], sides["after"]
        rows.append([
            name,
            f"{b['ratio']['mean']:.3f}", f"{a['ratio']['mean']:.3f}",
            f"{a['ratio']['mean'] / b['ratio']['mean']:.2f}x",
            f"{b['added_p50_ms']['mean']:.2f}", f"{a['added_p50_ms']['mean']:.2f}",
            f"{b['router_cpu_ms']['mean']:.2f}", f"{a['router_cpu_ms']['mean']:.2f}",
            f"{b['version_cpu_ms']['mean']:.2f}", f"{a['version_cpu_ms']['mean']:.2f}",
        ])
    print(c.table(rows, ["cell", "router/plain before", "after", "after/before",
                         "added p50 ms before", "after", "router CPU ms/req before", "after",
                         "versions CPU ms/req before", "after"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.router_overhead.compare",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, nargs="+", required=True)
    p.add_argument("--after", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    doc = compare(a.before, a.after)
    print_table(doc)
    if a.out:
        print(f"wrote {c.shown(c.write_result('router_overhead_before_after', doc, a.out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
