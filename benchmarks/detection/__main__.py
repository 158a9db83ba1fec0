"""Detection benchmark CLI.

    python -m benchmarks.detection --scenario FILE [--scenario FILE ...] --seeds N
        [--methods NAME ...] [--horizon-min M] [--out PATH]
    python -m benchmarks.detection --matrix

Prints one JSON line per (scenario, method). ``--matrix`` runs every file in
``benchmarks/detection/scenarios`` with its own run count (null scenarios: 300 runs, then
their 600 where 300 cannot show the bound; ``--null-first``) and writes
``benchmarks/results/detection.json`` and ``benchmarks/results/detection.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks._common.output import relativize
from benchmarks.detection.cpu import measure_cpu
from benchmarks.detection.methods import DEFAULT_METHODS
from benchmarks.detection.report import write_markdown
from benchmarks.detection.runner import run_matrix, run_scenarios, summarise_all
from benchmarks.detection.scenario import all_scenarios, load_scenario

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.detection", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", action="append", default=[], help="scenario YAML file")
    ap.add_argument("--matrix", action="store_true", help="run the full scenario matrix")
    ap.add_argument("--seeds", type=int, default=None, help="runs per scenario (default: file's)")
    ap.add_argument("--methods", nargs="+", default=None, help=f"of {list(DEFAULT_METHODS)}")
    ap.add_argument("--horizon-min", type=float, default=None, help="override the horizon")
    ap.add_argument("--suite-seed", type=int, default=20240501)
    ap.add_argument("--first-run", type=int, default=0,
                    help="with --scenario: run indices first-run .. first-run + seeds - 1 "
                         "(fresh runs for a confirmation, none shared with the matrix's)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--null-first", type=int, default=300,
                    help="--matrix: null runs before extending to the file's count where "
                         "they cannot show the bound (default 300)")
    ap.add_argument("--out", default=None, help="write the JSON lines here too")
    ap.add_argument("--md", default=None, help="write a markdown report here")
    ap.add_argument("--from-json", default=None, help="only rebuild the markdown from a JSON")
    a = ap.parse_args(argv)
    if a.from_json:
        with open(a.from_json) as fh:
            saved = json.load(fh)
        write_markdown(a.md or str(RESULTS / "detection.md"), saved["results"], saved["meta"])
        return 0
    if not a.scenario and not a.matrix:
        ap.error("give --scenario FILE or --matrix")
    scenarios = all_scenarios() if a.matrix else [load_scenario(p) for p in a.scenario]
    if a.horizon_min is not None:
        scenarios = [sc.with_horizon(a.horizon_min * 60.0) for sc in scenarios]
    methods = list(a.methods or DEFAULT_METHODS)
    t0 = time.perf_counter()
    if a.matrix and a.seeds is None:
        scenarios, results, cpu = run_matrix(scenarios, a.suite_seed, methods, a.workers,
                                             a.null_first)
    else:
        n = None if a.seeds is None else a.first_run + a.seeds
        results, cpu = run_scenarios(scenarios, n, a.suite_seed, methods, a.workers,
                                     first=a.first_run)
    wall = time.perf_counter() - t0
    lines = relativize(summarise_all(scenarios, results, a.suite_seed, methods))
    for line in lines:
        print(json.dumps(line))
    out = a.out or (str(RESULTS / "detection.json") if a.matrix else None)
    md = a.md or (str(RESULTS / "detection.md") if a.matrix else None)
    meta = {"wall_s": round(wall, 1), "workers": a.workers,
            "cpu_s_total": round(sum(cpu.values()), 1),
            "cpu_s_per_scenario": {k: round(v, 1) for k, v in cpu.items()},
            "suite_seed": a.suite_seed,
            "runs": {sc.name: sc.seeds if a.seeds is None else a.seeds for sc in scenarios}}
    if a.matrix:
        meta["cpu_ours"] = measure_cpu()
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w") as fh:
            json.dump({"meta": meta, "results": lines}, fh, indent=1)
    if md:
        write_markdown(md, lines, meta)
    print(f"# {len(results)} run-method results in {wall:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
