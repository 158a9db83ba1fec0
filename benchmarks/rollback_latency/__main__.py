"""``python -m benchmarks.rollback_latency``: the command line; ``--worker`` is the Ray
session's subprocess, anything else the parent that runs it, analyses and reports."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import benchmarks.rollback_latency as pkg
from benchmarks import _common as c
from benchmarks.rollback_latency.analyze import analyze
from benchmarks.rollback_latency.config import NAME
from benchmarks.rollback_latency.report import print_report, result_doc

MODULE = f"benchmarks.{NAME}"  # what run_worker starts with ``python -m``


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=pkg.__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="5 aborts + 2 promote/undo, ~3 min")
    p.add_argument("--rollbacks", type=int, default=None, help="aborts (default 20; quick 5)")
    p.add_argument(
        "--promotions",
        type=int,
        default=None,
        help="promote(full)/undo cycles (default 4; quick 2)",
    )
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--weight", type=float, default=30.0, help="canary step, percent")
    p.add_argument("--canary-s", type=float, default=1.0, help="dwell in canary before the verb")
    p.add_argument("--promoted-s", type=float, default=1.0, help="dwell at 100%% before undo")
    p.add_argument("--settle-s", type=float, default=0.5, help="after a rollback, before retry")
    p.add_argument("--tick-s", type=float, default=0.5, help="controller tick (collect period)")
    p.add_argument("--router-replicas", type=int, default=2)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--push-probes", type=int, default=30)
    p.add_argument("--client", choices=c.CLIENTS, default="raw")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--raw",
        type=Path,
        default=None,
        help="also save the worker's raw data (events, client rows, log) here",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cfg", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def config_of(a: argparse.Namespace) -> dict[str, Any]:
    """The worker's settings (also recorded in the result)."""
    return {
        "rollbacks": a.rollbacks if a.rollbacks is not None else (5 if a.quick else 20),
        "promotions": a.promotions if a.promotions is not None else (2 if a.quick else 4),
        "concurrency": a.concurrency,
        "weight": a.weight,
        "canary_s": a.canary_s,
        "promoted_s": a.promoted_s,
        "settle_s": a.settle_s,
        "tick_s": a.tick_s,
        "router_replicas": a.router_replicas,
        "warmup_s": a.warmup,
        "push_probes": a.push_probes,
        "client": a.client,
    }


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.worker:
        from benchmarks.rollback_latency.worker import worker

        worker(a.out, json.loads(a.cfg))
        return 0

    cfg = config_of(a)
    t0 = time.time()
    meta = c.machine()
    raw = c.run_worker(MODULE, "proxy", ["--cfg", json.dumps(cfg)], timeout_s=1500)
    if a.raw:
        a.raw.write_text(json.dumps(raw))
    res = analyze(raw, cfg["settle_s"])
    print_report(res["summary"])

    cmd = f"python -m {MODULE}" + (" --quick" if a.quick else "")
    extra = [x for x in (argv if argv is not None else sys.argv[1:]) if x != "--quick"]
    doc = result_doc(" ".join([cmd, *extra]), cfg, raw, res, meta, t0)
    path = c.write_result(NAME, doc, a.out)
    print(f"\nwrote {c.shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
