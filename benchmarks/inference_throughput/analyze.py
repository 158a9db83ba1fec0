"""Served cells against the in-process figures: ratios and the goal (pure, no timing)."""

from __future__ import annotations

import collections
from typing import Any

from benchmarks.inference_throughput.config import GOAL
from benchmarks.inference_throughput.inprocess import rows_per_s_on_mix


def goal_reached(rows_ratio: list[tuple[int, float]]) -> dict[str, Any]:
    """Smallest request size from which every larger one in the sweep is >= GOAL."""
    at = None
    for r, ratio in sorted(rows_ratio, reverse=True):
        if ratio >= GOAL:
            at = r
        else:
            break
    best = max(rows_ratio, key=lambda t: t[1])
    return {"goal": GOAL, "reached_from_rows": at, "best_rows": best[0], "best_ratio": best[1]}


def compare(
    served: list[dict[str, Any]], ip: dict[str, dict[str, dict[int, float]]]
) -> list[dict[str, Any]]:
    """Each served cell beside the in-process figures of its model."""
    out = []
    for s in served:
        pred = ip[s["version"]]["predict_s"]
        mix = {int(k): v for k, v in s["batch_sizes"].items()}
        model_mix = rows_per_s_on_mix(pred, mix)  # best-of, quiet (no Ray), after the run
        inter = s["in_process_interleaved"]["rows_per_s"]  # right after the cell, same load
        r = s["rows_per_request"]
        row: dict[str, Any] = {
            "served": s,
            "in_process_rows_per_s": {
                "model_at_formed_batches_interleaved": inter,
                "model_at_formed_batches_best_of_no_ray": round(model_mix, 1),
                "model_at_request_size_best_of_no_ray": round(r / pred[r], 1),
            },
            "ratio": round(s["rows_per_s"] / inter, 4),
            "ratio_vs_best_of_no_ray": round(s["rows_per_s"] / model_mix, 4),
        }
        if s["kind"] == "json" and r == 1:
            pipe_mix = rows_per_s_on_mix(ip[s["version"]]["pipeline_s"], mix)
            row["in_process_rows_per_s"]["decode_model_encode_at_formed_batches"] = round(
                pipe_mix, 1
            )
        elif s["kind"] == "binary":
            row["in_process_rows_per_s"]["oip_decode_model_encode_one_request"] = round(
                r / ip[s["version"]]["oip_s"][r], 1
            )
        out.append(row)
    return out


def ratio_lines(comparisons: list[dict[str, Any]]) -> dict[str, float]:
    ratios: dict[str, float] = {}
    for row in comparisons:
        s, ip = row["served"], row["in_process_rows_per_s"]
        key = f"{s['version']}, {s['mode']}, {s['kind']}, {s['rows_per_request']} row/req: served /"
        ratios[f"{key} in-process model @ formed batches (interleaved)"] = row["ratio"]
        ratios[f"{key} in-process model @ formed batches (best-of, no Ray)"] = row[
            "ratio_vs_best_of_no_ray"
        ]
        for what, k in (
            ("decode+model+encode @ formed batches", "decode_model_encode_at_formed_batches"),
            ("OIP decode+model+encode", "oip_decode_model_encode_one_request"),
        ):
            if k in ip:
                ratios[f"{key} in-process {what}"] = round(s["rows_per_s"] / ip[k], 4)
    return ratios


def goals(comparisons: list[dict[str, Any]]) -> dict[str, Any]:
    """Per "mode/version": from which binary request size the ratio stays >= GOAL."""
    binary: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in comparisons:
        if r["served"]["kind"] == "binary":
            binary[f"{r['served']['mode']}/{r['served']['version']}"].append(r)
    return {
        key: {
            which: goal_reached([(r["served"]["rows_per_request"], r[k]) for r in rows])
            for which, k in (
                ("interleaved", "ratio"),
                ("best_of_no_ray", "ratio_vs_best_of_no_ray"),
            )
        }
        for key, rows in binary.items()
    }
