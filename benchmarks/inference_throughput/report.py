"""The printed tables and lines, and the in-process part of the result JSON."""

from __future__ import annotations

import collections
from typing import Any

from benchmarks import _common as c
from benchmarks.inference_throughput.config import GOAL, SWEEP


def _cpu_groups(s: dict[str, Any]) -> dict[str, float]:
    """CPU seconds of a cell by role: client, proxy (Serve proxy or HAProxy), router replica,
    version replica, the rest of Ray."""
    g: dict[str, float] = collections.defaultdict(float)
    g["client"] = s["client_cpu_s"]
    for k, v in s["server_cpu_s"].items():
        if k.endswith(":Router"):
            g["router"] += v
        elif k.endswith(":ModelVersion"):
            g["version"] += v
        elif k in ("ProxyActor", "haproxy", "HAProxyManager"):
            g["proxy"] += v
        else:
            g["other"] += v
    return dict(g)


def cpu_line(s: dict[str, Any]) -> str:
    n = max(s["requests"], 1)
    g = _cpu_groups(s)
    total = sum(g.values())
    parts = ", ".join(f"{k}={1000 * v / n:.2f}" for k, v in g.items())
    return (
        f"[{s['mode']}] {s['version']} {s['kind']} {s['rows_per_request']} rows/req: "
        f"CPU ms per request "
        f"{1000 * total / n:.2f} ({parts}); {total / s['duration_s']:.2f} cores busy"
    )


def _json_rows(row: dict[str, Any]) -> list[list[Any]]:
    """Rows of the JSON table for one JSON cell: served, then its in-process figures."""
    s, ipr = row["served"], row["in_process_rows_per_s"]
    inter, best = (
        ipr["model_at_formed_batches_interleaved"],
        ipr["model_at_formed_batches_best_of_no_ray"],
    )
    rows: list[list[Any]] = [
        [
            f"{s['version']} served [{s['mode']}], JSON, {s['rows_per_request']} row/req, "
            f"c={s['concurrency']}",
            s["rows_per_s"],
            s["mean_batch_rows"],
            s["p50_ms"],
            s["p99_ms"],
        ],
        ["  in-process model @ same batches, right after", inter, "", "", ""],
        ["  in-process model @ same batches, best-of no Ray", best, "", "", ""],
    ]
    if "decode_model_encode_at_formed_batches" in ipr:
        rows.append(
            [
                "  in-process decode+model+encode @ same batches",
                ipr["decode_model_encode_at_formed_batches"],
                "",
                "",
                "",
            ]
        )
    return rows


def _sweep_row(row: dict[str, Any]) -> list[Any]:
    """The binary-sweep table's row of one binary cell."""
    s, ipr = row["served"], row["in_process_rows_per_s"]
    return [
        s["version"],
        s["mode"],
        s["rows_per_request"],
        s["rps"],
        s["rows_per_s"],
        s["mean_batch_rows"],
        ipr["model_at_formed_batches_interleaved"],
        f"{row['ratio']:.3f}x",
        ipr["model_at_formed_batches_best_of_no_ray"],
        f"{row['ratio_vs_best_of_no_ray']:.3f}x",
        s["p50_ms"],
        s["p99_ms"],
        s["loadavg_1m_after"],
    ]


def _in_process_table(v: str, t: dict[str, dict[int, float]]) -> str:
    """Model alone against the whole in-process pipeline, per request size and batch size."""
    return c.table(
        [[r, round(r / t["predict_s"][r], 1), round(r / t["oip_s"][r], 1)] for r in t["oip_s"]]
        + [
            [f"{b} (JSON)", round(b / t["predict_s"][b], 1), round(b / t["pipeline_s"][b], 1)]
            for b in SWEEP
        ],
        [f"{v}: rows", "model rows/s", "decode+model+encode rows/s (OIP binary / JSON)"],
    )


def _goal_lines(goal: dict[str, Any], max_rows: int) -> list[str]:
    """One verdict line per mode/version and per in-process baseline."""
    lines = []
    for key, gg in goal.items():
        for which, g in gg.items():
            if g["reached_from_rows"] is not None:
                verdict = f"reached from {g['reached_from_rows']} rows/request"
            else:
                verdict = f"NOT reached up to {max_rows} rows/request"
            lines.append(
                f"[{key}] goal >= {GOAL}x vs in-process ({which}): {verdict} "
                f"(best {g['best_ratio']:.3f}x at {g['best_rows']} rows/request)"
            )
    return lines


def print_report(
    comparisons: list[dict[str, Any]],
    ip: dict[str, dict[str, dict[int, float]]],
    ratios: dict[str, float],
    sweep_concurrency: int,
    goal: dict[str, Any],
    max_rows: int,
) -> None:
    json_rows = [
        r for row in comparisons if row["served"]["kind"] == "json" for r in _json_rows(row)
    ]
    sweep_rows = [_sweep_row(row) for row in comparisons if row["served"]["kind"] != "json"]
    print()
    print(c.table(json_rows, ["what", "rows/s", "mean batch", "p50 ms", "p99 ms"]))
    print()
    print(
        f"OIP binary tensors, c={sweep_concurrency}: served rows/s vs in-process onnxruntime on "
        "the formed batches (right after the cell / best-of with no Ray)"
    )
    heads = ["model", "mode", "rows/req", "req/s", "served rows/s", "mean batch"]
    heads += ["in-proc (after)", "ratio", "in-proc (best)", "ratio", "p50 ms", "p99 ms", "load"]
    print(c.table(sweep_rows, heads))
    for v, t in ip.items():
        print()
        print(_in_process_table(v, t))
    print()
    for k, val in ratios.items():
        print(f"{k:96s} {val:.4f}x")
    print()
    for row in comparisons:
        print(cpu_line(row["served"]))
    print()
    for line in _goal_lines(goal, max_rows):
        print(line)


def in_process_doc(ip: dict[str, dict[str, dict[int, float]]], rows: list[int]) -> dict[str, Any]:
    """The result JSON's ``in_process`` section: rows/s at the sweep and at the request sizes."""
    return {
        v: {
            "batch_sweep": {
                b: {
                    "model_rows_per_s": round(b / t["predict_s"][b], 1),
                    "decode_model_encode_rows_per_s": round(b / t["pipeline_s"][b], 1),
                }
                for b in SWEEP
            },
            "request_sizes": {
                r: {
                    "model_rows_per_s": round(r / t["predict_s"][r], 1),
                    "oip_decode_model_encode_rows_per_s": round(r / t["oip_s"][r], 1),
                }
                for r in sorted(rows)
            },
        }
        for v, t in ip.items()
    }
