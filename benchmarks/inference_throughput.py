"""Rows per second of one ONNX version served through the router, against onnxruntime in-process.

Served: ``v2.onnx`` as one version (100% weight) behind the rayrollout router, dynamic batching
from the version's default config (``max_batch_size`` 32, ``batch_wait_timeout_s`` 0.002),
loaded over HTTP by a closed-loop client (default: 64 concurrent single-row ``/v1`` predict
requests, plus a cell of 32-row requests). The version is deployed from a subclass of
``ModelVersion`` that only counts the batch sizes ``@serve.batch`` formed, so the in-process
figure can be taken on exactly those batches.

In-process, same process after serving, same runtime object the version uses
(``load_runtime("onnx", v2.onnx, intra_op_threads=1)``), no Ray:

* ``model @ formed batches``: ``predict`` on the batch-size mix the server formed (the main
  comparison: served rows/s over this is the headline ratio);
* ``sweep``: ``predict`` at batch sizes 1..32;
* ``pipeline``: per request ``decode_v1`` + ``predict`` + ``encode_v1`` (the router's own JSON work,
  no HTTP, no Ray) on the same batches: how much of the gap is the protocol.

    python -m benchmarks.inference_throughput            # ~3-4 min: modes proxy and direct-tuned
    python -m benchmarks.inference_throughput --quick    # ~1 min: proxy mode only
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _common as c
from rayrollout.serving.version import ModelVersion

MODEL = "bench"
VERSION = "v2"
PREFIX = "/rr"
MAX_ONGOING = 1000
SWEEP = (1, 2, 4, 8, 16, 32)


class CountingModelVersion(ModelVersion):
    """``ModelVersion`` unchanged, plus a tally of the batch sizes the model ran on."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._sizes: collections.Counter[int] = collections.Counter()

    async def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._sizes[len(next(iter(inputs.values())))] += 1
        return await super()._run(inputs)

    def batch_sizes(self) -> dict[int, int]:
        """Batch size -> count since the previous call (drains)."""
        out, self._sizes = dict(self._sizes), collections.Counter()
        return out


def deploy_one(version_cfg: dict[str, Any], router_cfg: dict[str, Any]) -> None:
    from ray import serve

    from rayrollout.config import VersionConfig
    from rayrollout.serving.app import build_router

    v = VersionConfig.model_validate(version_cfg)
    counting: Any = serve.deployment(CountingModelVersion)
    dep = counting.options(  # as app.build_version does
        name="ModelVersion",
        num_replicas=v.num_replicas,
        max_ongoing_requests=v.max_ongoing_requests,
        ray_actor_options=v.ray_actor_options.to_ray(),
    )
    serve.run(dep.bind(v.model_dump(mode="json")), name=v.app_name, route_prefix=None)
    from rayrollout.config import RouterConfig

    serve.run(
        build_router(RouterConfig.model_validate(router_cfg)),
        name=f"rayrollout-{MODEL}",
        route_prefix=PREFIX,
    )


def body(x: np.ndarray, rows: int) -> bytes:
    return json.dumps({"instances": x[:rows].tolist()}).encode()


def served_cells(
    port: int,
    x: np.ndarray,
    cells: list[tuple[int, int]],
    warmup: float,
    duration: float,
    client: str,
    mode: str,
) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}{PREFIX}/v1/models/{MODEL}/predict"
    c.wait_http_ok(url, body(x, 1))
    # One event loop for the load and the handle calls: with RAY_SERVE_THROUGHPUT_OPTIMIZED=1 a
    # handle's router runs on the loop it was first used on.
    return list(c.run_async(_served_cells(url, x, cells, warmup, duration, client, mode)))


async def _served_cells(
    url: str,
    x: np.ndarray,
    cells: list[tuple[int, int]],
    warmup: float,
    duration: float,
    client: str,
    mode: str,
) -> list[dict[str, Any]]:
    from ray import serve

    handle = serve.get_deployment_handle("ModelVersion", f"{MODEL}-{VERSION}")
    out = []
    for rows, conc in cells:
        b = body(x, rows)
        await c.load_async("warmup", url, b, conc, 0.0, warmup, client)
        await handle.batch_sizes.remote()  # drop the warm-up's batches
        cell = await c.load_async(f"served rows={rows}", url, b, conc, 0.0, duration, client)
        sizes = {int(k): v for k, v in (await handle.batch_sizes.remote()).items()}
        s = cell.summary()
        n_batches = sum(sizes.values())
        s.update(
            mode=mode,
            rows_per_request=rows,
            rows_per_s=round(cell.rps * rows, 1),
            batch_sizes=dict(sorted(sizes.items())),
            model_calls=n_batches,
            mean_batch_rows=round(sum(k * v for k, v in sizes.items()) / max(n_batches, 1), 2),
        )
        print(
            f"[{mode}] served rows/request={rows:<3d} c={conc:<3d} {s['rows_per_s']:9.1f} rows/s "
            f"({s['rps']:.1f} req/s) p50={s['p50_ms']:.1f} ms p99={s['p99_ms']:.1f} ms "
            f"mean batch={s['mean_batch_rows']} rows errors={s['errors']}",
            flush=True,
        )
        out.append(s)
    return out


def _time_calls(fn: Any, min_s: float, rounds: int = 15) -> float:
    """Seconds per call of ``fn``: the best of ``rounds`` short rounds totalling ``min_s``
    (many short rounds, so a burst of load from other processes spoils few of them)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_s / rounds:
                break
        best = min(best, dt / n)
    return best


def in_process(
    x: np.ndarray, sizes: set[int], pipeline_sizes: set[int], min_s: float
) -> dict[str, Any]:
    """Seconds per ``predict`` call at each of ``sizes``, and per decode+predict+encode of that
    many single-row requests at each of ``pipeline_sizes``."""
    from rayrollout import protocol
    from rayrollout.runtime import load_runtime

    rt = load_runtime("onnx", c.ARTIFACTS / f"{VERSION}.onnx", "cpu", intra_op_threads=1)
    sig = rt.signature
    xs = np.concatenate([x] * -(-max(sizes | pipeline_sizes) // len(x)))  # enough rows
    out: dict[str, Any] = {"predict_s": {}, "pipeline_s": {}}
    for b in sorted(sizes):
        batch = {"input": xs[:b]}
        out["predict_s"][b] = _time_calls(lambda batch=batch: rt.predict(batch), min_s)
    for b in sorted(pipeline_sizes):
        one = json.dumps({"instances": xs[:1].tolist()}).encode()

        def pipeline(b: int = b, one: bytes = one) -> None:
            # b single-row requests: decode each, run them as one batch, encode each answer
            arrays = [protocol.decode_v1(one, sig, 1024)["input"] for _ in range(b)]
            res = rt.predict({"input": np.concatenate(arrays)})
            for i in range(b):
                protocol.encode_v1(MODEL, VERSION, {k: v[i : i + 1] for k, v in res.items()}, {})

        out["pipeline_s"][b] = _time_calls(pipeline, min_s)
    return out


def rows_per_s_on_mix(per_call_s: dict[int, float], mix: dict[int, int]) -> float:
    rows = sum(k * n for k, n in mix.items())
    secs = sum(per_call_s[k] * n for k, n in mix.items())
    return rows / secs


VERSION_CFG = {
    "model": MODEL,
    "name": VERSION,
    "runtime": "onnx",
    "artifact": str(c.ARTIFACTS / f"{VERSION}.onnx"),
    "max_ongoing_requests": MAX_ONGOING,
}
ROUTER_CFG = {
    "model": MODEL,
    "weights": {VERSION: 100.0},
    "deployment": {"max_ongoing_requests": MAX_ONGOING},
}


def heldout() -> np.ndarray:
    return np.load(c.HELDOUT)["X"].astype(np.float32)[:64]


def worker(
    mode: str, out: Path, cells: list[tuple[int, int]], warmup: float, duration: float, client: str
) -> None:
    port = c.free_port()
    c.start_ray(port)
    try:
        deploy_one(VERSION_CFG, ROUTER_CFG)
        served = served_cells(port, heldout(), cells, warmup, duration, client, mode)
        out.write_text(json.dumps({"mode": mode, "served": served}))
    finally:
        c.stop_ray()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="~1 min: one mode, 5 s cells")
    p.add_argument(
        "--modes",
        default=None,
        help="Serve modes, each its own Ray session (default: proxy,direct-tuned; --quick: proxy)",
    )
    p.add_argument("--concurrency", type=int, default=64, help="single-row requests in flight")
    p.add_argument("--duration", type=float, default=None, help="seconds per served cell")
    p.add_argument("--warmup", type=float, default=None)
    p.add_argument("--client", choices=c.CLIENTS, default="raw")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cells", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    duration = a.duration or (5.0 if a.quick else 10.0)
    warmup = a.warmup if a.warmup is not None else 2.0
    min_s = 0.5 if a.quick else 1.0
    # (rows per request, concurrency): the asked-for cell, then client-side batches for contrast
    cells = [(1, a.concurrency), (32, 8)]
    if a.worker:
        worker(a.worker, a.out, cells, warmup, duration, a.client)
        return 0
    modes = (a.modes or ("proxy" if a.quick else "proxy,direct-tuned")).split(",")

    t0 = time.time()
    meta = c.machine()
    args = [
        "--concurrency",
        str(a.concurrency),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--client",
        a.client,
    ]
    served = []
    for m in modes:
        served += c.run_worker("benchmarks.inference_throughput", m, args, 900)["served"]

    # in-process: this process, no Ray running
    x = heldout()
    sizes, pipeline_sizes = set(SWEEP), set(SWEEP)
    for s in served:
        sizes |= set(int(k) for k in s["batch_sizes"])
        if s["rows_per_request"] == 1:
            pipeline_sizes |= set(int(k) for k in s["batch_sizes"])
    ip = in_process(x, sizes, pipeline_sizes, min_s)
    pred, pipe = ip["predict_s"], ip["pipeline_s"]

    rows_out, ratios, comparisons = [], {}, []
    for s in served:
        mix = {int(k): v for k, v in s["batch_sizes"].items()}
        model_mix = rows_per_s_on_mix(pred, mix)
        single = s["rows_per_request"] == 1
        pipe_mix = rows_per_s_on_mix(pipe, mix) if single else float("nan")
        row = {
            "served": s,
            "in_process_rows_per_s": {
                "model_at_formed_batches": round(model_mix, 1),
                "model_batch1": round(1 / pred[1], 1),
                "model_batch32": round(32 / pred[32], 1),
            },
        }
        key = f"{s['mode']}, {s['rows_per_request']} row/req"
        ratios[f"{key}: served / in-process model @ formed batches"] = round(
            s["rows_per_s"] / model_mix, 4
        )
        ratios[f"{key}: served / in-process model @ batch 1"] = round(s["rows_per_s"] * pred[1], 4)
        if s["rows_per_request"] == 1:
            row["in_process_rows_per_s"]["decode_model_encode_at_formed_batches"] = round(
                pipe_mix, 1
            )
            ratios[f"{key}: served / in-process decode+model+encode @ formed batches"] = round(
                s["rows_per_s"] / pipe_mix, 4
            )
        comparisons.append(row)
        rows_out.append(
            [
                f"served [{s['mode']}], {s['rows_per_request']} row/req, c={s['concurrency']}",
                s["rows_per_s"],
                s["mean_batch_rows"],
                s["p50_ms"],
                s["p99_ms"],
            ]
        )
        rows_out.append(
            ["  in-process model @ same batches", round(model_mix, 1), s["mean_batch_rows"], "", ""]
        )
        if s["rows_per_request"] == 1:
            rows_out.append(
                [
                    "  in-process decode+model+encode @ same batches",
                    round(pipe_mix, 1),
                    s["mean_batch_rows"],
                    "",
                    "",
                ]
            )
    sweep = {
        b: {
            "model_rows_per_s": round(b / pred[b], 1),
            "decode_model_encode_rows_per_s": round(b / pipe[b], 1),
        }
        for b in SWEEP
    }

    print()
    print(c.table(rows_out, ["what", "rows/s", "mean batch", "p50 ms", "p99 ms"]))
    print()
    print(
        c.table(
            [
                [b, v["model_rows_per_s"], v["decode_model_encode_rows_per_s"]]
                for b, v in sweep.items()
            ],
            ["batch", "in-process model rows/s", "decode+model+encode rows/s"],
        )
    )
    print()
    for k, v in ratios.items():
        print(f"{k:80s} {v:.4f}x")
    print()
    for s in served:
        if s["rows_per_request"] != 1:
            continue
        n = max(s["requests"], 1)
        print(
            f"CPU ms per single-row request [{s['mode']}]: client="
            f"{1000 * s['client_cpu_s'] / n:.3f}, "
            + ", ".join(
                f"{k}={1000 * v / n:.3f}"
                for k, v in sorted(s["server_cpu_s"].items())
                if 1000 * v / n >= 0.05
            )
        )

    doc = {
        "benchmark": "inference_throughput",
        "command": "python -m benchmarks.inference_throughput" + (" --quick" if a.quick else ""),
        "config": {
            "version": VERSION_CFG,
            "router": ROUTER_CFG,
            "batching": "VersionConfig defaults: max_batch_size=32, batch_wait_timeout_s=0.002",
            "cells": [{"rows_per_request": r, "concurrency": k} for r, k in cells],
            "modes": modes,
            "mode_env": {m: c.mode_flags(m) for m in modes},
            "warmup_s": warmup,
            "duration_s": duration,
            "load_generator": f"{a.client}: one asyncio client process (the Ray driver), "
            "closed loop, one keep-alive connection per request in flight",
            "in_process": "rayrollout.runtime.load_runtime('onnx', v2.onnx, "
            "intra_op_threads=1) in the parent process with no Ray running; "
            f"best of 15 rounds of >= {min_s / 15:.3f} s per batch size",
        },
        "machine": {**meta, "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
        "git": c.git_rev(),
        "wall_s": round(time.time() - t0, 1),
        "results": comparisons,
        "in_process_sweep": sweep,
        "ratios": ratios,
    }
    path = c.write_result("inference_throughput", doc, a.out)
    print(f"\nwrote {path.relative_to(c.ROOT) if path.is_relative_to(c.ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
