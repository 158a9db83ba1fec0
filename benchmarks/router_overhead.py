"""What does the rayrollout router cost over a plain Ray Serve app? HTTP req/s and p50/p99.

Targets, deployed side by side in one Ray session and measured interleaved (a, b, b, a, ...):

* ``plain``: what a Ray Serve user would write — one ingress deployment that parses the JSON
  body and runs ``v1.onnx`` with onnxruntime (1 intra-op thread, like a version) in the handler.
  Path: client -> Serve proxy -> replica.
* ``router``: the rayrollout router (``rayrollout.serving.app.deploy``) with a 90/10 random split
  over v1/v2 (same model cost), each version its own app with dynamic batching.
  Path: client -> Serve proxy -> Router replica -> ModelVersion replica.

Both answer ``POST`` with a one-row ``{"instances": [[64 floats]]}`` body (the router's ``/v1``
predict route). Each Serve mode runs in its own subprocess (the env vars must be set before Ray
starts), all in one run:

* ``proxy``: Serve's default, the Python proxy actor in front of the ingress replica;
* ``direct``: experimental direct ingress (``RAY_SERVE_ENABLE_DIRECT_INGRESS=1`` +
  ``RAY_SERVE_ENABLE_HA_PROXY=1``): HAProxy on the HTTP port forwards straight to the ingress
  replica's own HTTP server (ports from ``RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT``, 30000 up);
* ``direct-tuned``: ``direct`` plus ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` (Serve's preset: user
  code and the handle router on the replica's main loop, buffered request logs, gRPC handles).

Ratios: router/plain within a mode (the router's own cost), and router(mode)/plain(proxy) (the
goal: the router path against what a default Ray Serve app gives).

Load: one client process (the worker that started Ray): asyncio on uvloop with a minimal
HTTP/1.1 keep-alive client (``--client httpx`` for httpx.AsyncClient, which costs 2-5 ms of CPU a
request here and so steals a large share of the two cores), closed loop at each concurrency,
fixed window after a warm-up. Every cell reports the client's CPU and every Ray process's.

    python -m benchmarks.router_overhead            # ~5 min, writes results/router_overhead.json
    python -m benchmarks.router_overhead --quick    # ~1.5 min: proxy + direct, 1 rep of 3 s
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import _common as c

MODEL = "bench"
ROUTER_PREFIX = "/rr"
PLAIN_PREFIX = "/plain"
SPLIT = {"v1": 90.0, "v2": 10.0}
MAX_ONGOING = 1000  # well above any concurrency used here
LOAD_GENERATORS = {
    "raw": "one client process (the Ray driver): asyncio on uvloop, a minimal HTTP/1.1 client, "
    "one keep-alive connection per concurrent request, closed loop",
    "httpx": "one client process (the Ray driver): httpx.AsyncClient, keep-alive pool of "
    "`concurrency` connections, closed loop",
}


class PlainOnnx:
    """The baseline: a minimal JSON-in, JSON-out ingress running onnxruntime in the handler."""

    def __init__(self, path: str) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(
            path, sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.names = [o.name for o in self.sess.get_outputs()]

    async def __call__(self, request: Any) -> dict[str, Any]:
        import numpy as np

        doc = await request.json()
        x = np.asarray(doc["instances"], dtype=np.float32)
        outs = dict(zip(self.names, self.sess.run(self.names, {"input": x}), strict=True))
        return {
            "model": MODEL,
            "predictions": outs["label"].tolist(),
            "outputs": {k: v.tolist() for k, v in outs.items()},
        }


def deploy_all() -> dict[str, Any]:
    from ray import serve

    from rayrollout.serving.app import deploy

    plain_dep: Any = serve.deployment(PlainOnnx)
    plain = plain_dep.options(
        name="PlainOnnx",
        num_replicas=1,
        max_ongoing_requests=MAX_ONGOING,
        ray_actor_options={"num_cpus": 0},
    )
    serve.run(plain.bind(str(c.ARTIFACTS / "v1.onnx")), name="plain", route_prefix=PLAIN_PREFIX)
    versions = [
        {
            "model": MODEL,
            "name": v,
            "runtime": "onnx",
            "artifact": str(c.ARTIFACTS / f"{v}.onnx"),
            "max_ongoing_requests": MAX_ONGOING,
        }
        for v in SPLIT
    ]
    router = {"model": MODEL, "weights": SPLIT, "deployment": {"max_ongoing_requests": MAX_ONGOING}}
    deploy(router, versions, route_prefix=ROUTER_PREFIX)
    return {"versions": versions, "router": router}


def body() -> bytes:
    import numpy as np

    x = np.load(c.HELDOUT)["X"][0].astype(np.float32)
    return json.dumps({"instances": [x.tolist()]}).encode()


def worker(
    mode: str,
    out: Path,
    concurrencies: list[int],
    reps: int,
    warmup: float,
    duration: float,
    client: str,
) -> None:
    port = c.free_port()
    c.start_ray(port)
    try:
        deployed = deploy_all()
        base = f"http://127.0.0.1:{port}"
        urls = {
            "plain": f"{base}{PLAIN_PREFIX}",
            "router": f"{base}{ROUTER_PREFIX}/v1/models/{MODEL}/predict",
        }
        b = body()
        for url in urls.values():
            c.wait_http_ok(url, b)
        for name, url in urls.items():  # warm every path (connections, handles, batch loops)
            c.load(name, url, b, 32, 0.0, 1.5, client)
        cells = []
        for conc in concurrencies:
            for rep in range(reps):
                order = ["plain", "router"] if rep % 2 == 0 else ["router", "plain"]
                for name in order:
                    cell = c.load(name, urls[name], b, conc, warmup, duration, client)
                    s = cell.summary()
                    s["rep"] = rep
                    s["_latencies_ms"] = cell.latencies_ms
                    print(
                        f"[{mode}] {name:6s} c={conc:<3d} rep={rep} {s['rps']:8.1f} req/s "
                        f"p50={s['p50_ms']:.2f} ms p99={s['p99_ms']:.2f} ms "
                        f"errors={s['errors']}",
                        flush=True,
                    )
                    cells.append(s)
        env = {
            k: v
            for k, v in os.environ.items()
            if k.startswith("RAY_SERVE_ENABLE") or k == "RAY_SERVE_THROUGHPUT_OPTIMIZED"
        }
        out.write_text(json.dumps({"mode": mode, "env": env, "deployed": deployed, "cells": cells}))
    finally:
        c.stop_ray()


def aggregate(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the reps of one (target, concurrency): total requests / total window, pooled
    latency quantiles, and the per-rep req/s to show the spread."""
    lat = sorted(x for cell in cells for x in cell["_latencies_ms"])
    dur = sum(cell["duration_s"] for cell in cells)
    n = sum(cell["requests"] for cell in cells)
    cpu: dict[str, float] = {}
    for cell in cells:
        for k, v in cell["server_cpu_s"].items():
            cpu[k] = cpu.get(k, 0.0) + v
    return {
        "rps": round(n / dur, 1),
        "rps_per_rep": [cell["rps"] for cell in cells],
        "p50_ms": round(c.quantile(lat, 0.5), 3),
        "p99_ms": round(c.quantile(lat, 0.99), 3),
        "requests": n,
        "errors": sum(cell["errors"] for cell in cells),
        "window_s": dur,
        # CPU per request (ms), by process: where the two cores go
        "cpu_ms_per_request": {
            "client": round(1000 * sum(cell["client_cpu_s"] for cell in cells) / max(n, 1), 3),
            **{k: round(1000 * v / max(n, 1), 3) for k, v in sorted(cpu.items())},
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    a = p.parse_args(argv)
    reps = a.reps or (1 if a.quick else 2)
    duration = a.duration or (3.0 if a.quick else 6.0)
    warmup = a.warmup if a.warmup is not None else 1.0
    concs = [int(x) for x in a.concurrency.split(",")]
    if a.worker:
        worker(a.worker, a.out, concs, reps, warmup, duration, a.client)
        return 0

    modes = (
        a.modes.split(",")
        if a.modes
        else (["proxy", "direct"] if a.quick else ["proxy", "direct", "direct-tuned"])
    )
    t0 = time.time()
    meta = c.machine()
    args = [
        "--concurrency",
        a.concurrency,
        "--reps",
        str(reps),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--client",
        a.client,
    ]
    runs = {m: c.run_worker("benchmarks.router_overhead", m, args, timeout_s=900) for m in modes}

    results: dict[str, Any] = {}
    for m, run in runs.items():
        for target in ("plain", "router"):
            for conc in concs:
                cells = [
                    x for x in run["cells"] if x["target"] == target and x["concurrency"] == conc
                ]
                results[f"{m}/{target}/c{conc}"] = aggregate(cells)

    rows, ratios = [], {}
    for m in modes:
        for conc in concs:
            pa, rb = results[f"{m}/plain/c{conc}"], results[f"{m}/router/c{conc}"]
            ratios[f"{m}: router/plain c{conc}"] = round(rb["rps"] / pa["rps"], 3)
            for name, r in (("plain", pa), ("router", rb)):
                rows.append(
                    [
                        f"{m}",
                        name,
                        conc,
                        r["rps"],
                        r["p50_ms"],
                        r["p99_ms"],
                        " ".join(f"{x:.0f}" for x in r["rps_per_rep"]),
                        r["errors"],
                    ]
                )
    if "proxy" in modes:  # the goal: router (any mode) over the plain app on the default path
        for m in modes:
            for conc in concs:
                base = results[f"proxy/plain/c{conc}"]["rps"]
                ratios[f"router({m})/plain(proxy) c{conc}"] = round(
                    results[f"{m}/router/c{conc}"]["rps"] / base, 3
                )
                if m != "proxy":
                    ratios[f"plain({m})/plain(proxy) c{conc}"] = round(
                        results[f"{m}/plain/c{conc}"]["rps"] / base, 3
                    )

    print()
    print(
        c.table(rows, ["mode", "target", "conc", "req/s", "p50 ms", "p99 ms", "per rep", "errors"])
    )
    print()
    for k, v in ratios.items():
        print(f"{k:40s} {v:.3f}x")
    print()
    print("CPU ms per request by process (c=32):")
    for m in modes:
        for target in ("plain", "router"):
            key = f"{m}/{target}/c{max(concs)}"
            if key in results:
                cpu = results[key]["cpu_ms_per_request"]
                print(f"  {m:6s} {target:6s} " + ", ".join(f"{k}={v}" for k, v in cpu.items()))

    doc = {
        "benchmark": "router_overhead",
        "command": "python -m benchmarks.router_overhead" + (" --quick" if a.quick else ""),
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
        "machine": {**meta, "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
        "git": c.git_rev(),
        "wall_s": round(time.time() - t0, 1),
        "results": results,
        "ratios": ratios,
    }
    path = c.write_result("router_overhead", doc, a.out)
    print(f"\nwrote {path.relative_to(c.ROOT) if path.is_relative_to(c.ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
