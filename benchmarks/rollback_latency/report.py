"""The printed report of a rollback run, and the result JSON."""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks import _common as c
from benchmarks.rollback_latency.config import (
    ANCHORS,
    CANDIDATE,
    GOAL_P99_MS,
    NAME,
    STABLE,
    STRANDED_MS,
)

QUANTILE_ROWS = (  # (label, summary key) of the printed quantile table
    ("decision -> last candidate arrival (server)", "server_ms"),
    ("  aborts only", "server_ms_abort"),
    ("  undos only (after promote full)", "server_ms_undo"),
    ("decision -> last candidate call finished (server)", "last_candidate_finish_ms"),
    ("verb returned -> last candidate response (client)", "client_ms"),
    ("verb returned -> last candidate request sent", "client_last_send_ms"),
    ("verb round trip (abort()/undo())", "verb_round_trip_ms"),
    ("  verb call -> decision", "verb_call_to_decision_ms"),
    ("  decision -> verb returned", "decision_to_verb_return_ms"),
    ("no-op set_routes broadcast (under load)", "set_routes_broadcast_rtt_ms"),
    ("candidate inter-arrival before decision", "candidate_gap_ms_median"),
)


def quantile_table(s: dict[str, Any]) -> str:
    """n, p50, p90, p99 and max of every timing in the summary."""
    rows = []
    for label, key in QUANTILE_ROWS:
        q = s[key]
        rows.append(
            [
                label,
                q.get("n", 0),
                q.get("p50", "-"),
                q.get("p90", "-"),
                q.get("p99", "-"),
                q.get("max", "-"),
            ]
        )
    return c.table(rows, ["ms", "n", "p50", "p90", "p99", "max"])


def summary_lines(s: dict[str, Any]) -> list[str]:
    """Traffic, in-flight candidate requests, stranded ones, failures, epochs and the goals."""
    g = s["goals"]
    inflight, after = s["candidate_in_flight_at_decision"], s["candidate_arrivals_after_decision"]
    return [
        f"rollbacks: {s['by_kind']}; requests {s['requests']} at {s['requests_per_s']} req/s "
        f"(served {s['served']}), client CPU {s['client_cpu_ms_per_request']} ms/request",
        f"candidate requests in flight at the decision: p50 "
        f"{inflight.get('p50')}, max "
        f"{inflight.get('max')}; arriving after it: p50 "
        f"{after.get('p50')}, max "
        f"{after.get('max')}",
        f"stranded candidate requests (version call > {STRANDED_MS / 1000:g} s, arrived at the "
        f"rollback): {s['candidate_stranded']} in {s['rollbacks_with_stranded']} rollbacks",
        f"failed requests: {s['failed_requests']} (stable path {s['failed_stable_path']}; "
        f"by version {s['failed_by_version']}; by window {s['failed_by_window']}); "
        f"router-side failed events {s['router_failed_events_by_version']}",
        f"served by a version outside its epoch's table: client "
        f"{s['served_outside_epoch_table_client']}, router "
        f"{s['served_outside_epoch_table_router']}",
        f"goal p99 < {GOAL_P99_MS:g} ms: {'MET' if g['p99_server_ms_under_250'] else 'MISSED'}"
        f" (p99 {s['server_ms'].get('p99')} ms over {s['server_ms'].get('n')} rollbacks); "
        f"zero failed stable-path requests: "
        f"{'MET' if g['zero_failed_stable_path'] else 'MISSED'}",
    ]


def print_report(s: dict[str, Any]) -> None:
    print()
    print(quantile_table(s))
    print()
    for line in summary_lines(s):
        print(line)
    print()
    print("For comparison (configured analysis intervals, not measurements):")
    for name, text in ANCHORS:
        print(f"  {name}: {text}")


def config_doc(cfg: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """The result JSON's ``config``: the run's settings and what each figure means."""
    client = "minimal asyncio HTTP/1.1 client on uvloop" if cfg["client"] == "raw" else "httpx"
    return {
        **cfg,
        "mode": "proxy (Serve's default HTTP proxy)",
        "mode_env": raw["env"],
        "stable": STABLE,
        "candidate": CANDIDATE,
        "cycle": "canary step -> dwell -> abort() -> settle + candidate app deleted -> "
        "retry(); promote cycles: canary -> promote(full=True) -> dwell -> undo()",
        "request": "POST one row {'instances': [[64 x FP32]]} (models/heldout.npz X[0])",
        "load_generator": (
            f"separate client process, {cfg['concurrency']} closed-loop keep-alive connections "
            f"({client})"
        ),
        "server_ms": "latest router arrival time t of a request routed to the candidate, "
        "minus the decision log entry's now (router events read from the "
        "controller store's tick inputs)",
        "client_ms": "latest receive time of a 200 with x-model-version=candidate, minus "
        "the time abort()/undo() returned",
    }


def result_doc(
    command: str,
    cfg: dict[str, Any],
    raw: dict[str, Any],
    res: dict[str, Any],
    meta: dict[str, Any],
    t0: float,
) -> dict[str, Any]:
    """The result JSON: config, machine, the worker's timings, summary, samples and cycles."""
    return {
        "benchmark": NAME,
        "command": command,
        "config": config_doc(cfg, raw),
        "machine": {**meta, "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
        "git": c.git_rev(),
        "wall_s": round(time.time() - t0, 1),
        "setup_s": raw["setup_s"],
        "run_s": raw["run_s"],
        "store_verify": raw["verify"],
        "anchors_configured_not_measured": dict(ANCHORS),
        "summary": res["summary"],
        "samples": res["samples"],
        "cycles": raw["cycles"],
    }
