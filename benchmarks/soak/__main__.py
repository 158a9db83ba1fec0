"""``python -m benchmarks.soak``: the command line; ``--worker`` is the Ray session's
subprocess, anything else the parent that runs it, analyses and reports."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import benchmarks.soak as pkg
from benchmarks import _common as c
from benchmarks.soak.analyze import analyze
from benchmarks.soak.config import NAME
from benchmarks.soak.report import print_report, result_doc
from rayrollout.spec import RouterConfig

MODULE = f"benchmarks.{NAME}"  # what run_worker starts with ``python -m``


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=pkg.__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="60 s, samples every 5 s (~2 min)")
    p.add_argument("--duration-s", type=float, default=None, help="load (default 600; quick 60)")
    p.add_argument("--rate", type=float, default=40.0, help="requests scheduled per second")
    p.add_argument("--sample-s", type=float, default=None, help="sampling period (10; quick 5)")
    p.add_argument("--warmup-s", type=float, default=5.0, help="load before the first rollout")
    p.add_argument("--weight", type=float, default=50.0, help="canary step, percent")
    p.add_argument("--promote-requests", type=int, default=200,
                   help="candidate requests before a promotion")
    p.add_argument("--detect-timeout-s", type=float, default=90.0,
                   help="abort a regressed candidate no judge rolled back by then")
    p.add_argument("--tick-s", type=float, default=0.5, help="controller tick")
    p.add_argument("--router-replicas", type=int, default=1)
    p.add_argument("--max-in-flight", type=int, default=512, help="client's open requests cap")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--raw", type=Path, default=None,
                   help="also save the worker's raw data (client rows, samples) here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cfg", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def config_of(a: argparse.Namespace) -> dict[str, Any]:
    """The worker's settings (also recorded in the result)."""
    duration = a.duration_s if a.duration_s is not None else (60.0 if a.quick else 600.0)
    return {
        "duration_s": duration,
        "rate": a.rate,
        "sample_s": a.sample_s if a.sample_s is not None else (5.0 if a.quick else 10.0),
        "warmup_s": a.warmup_s,
        "weight": a.weight,
        "promote_requests": a.promote_requests,
        "promote_min_s": 3.0,
        "promote_timeout_s": 120.0,
        "detect_timeout_s": a.detect_timeout_s,
        "min_left_s": 10.0,  # no rollout is started with less of the run to go
        "tick_s": a.tick_s,
        "rollback_window_s": 30.0,
        "drain_s": 5.0,
        "router_replicas": a.router_replicas,
        "max_in_flight": a.max_in_flight,
        "event_buffer": RouterConfig.model_fields["event_buffer"].default,
    }


def command_line(a: argparse.Namespace, argv: list[str] | None) -> str:
    """How this run was asked for (``--quick`` first), as the result records it."""
    rest = [x for x in (argv if argv is not None else sys.argv[1:]) if x != "--quick"]
    # a file kept outside the repository is named by its file name only
    rest = [Path(x).name if x.startswith("/") else x for x in rest]
    return " ".join([f"python -m {MODULE}", *(["--quick"] if a.quick else []), *rest])


def run(a: argparse.Namespace, argv: list[str] | None) -> None:
    """The parent: the worker in its subprocess, then the analysis, the report and the JSON."""
    cfg = config_of(a)
    t0, meta = time.time(), c.machine()
    raw = c.run_worker(MODULE, "proxy", ["--cfg", json.dumps(cfg)],
                       timeout_s=cfg["duration_s"] + 600)
    if a.raw:
        a.raw.write_text(json.dumps(raw))
    res = analyze(raw, cfg)
    print_report(res["summary"], res["windows"], max(1, round(60 / cfg["sample_s"])))
    doc = result_doc(command_line(a, argv), cfg, raw, res, meta, t0)
    print(f"\nwrote {c.shown(c.write_result(NAME, doc, a.out))}")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.worker:
        from benchmarks.soak.worker import worker

        worker(a.out, json.loads(a.cfg))
    else:
        run(a, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
