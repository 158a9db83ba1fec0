"""One Serve mode in one Ray session (a subprocess): deploy both targets, load them
interleaved (a, b, b, a, ...) and write every cell to ``--out``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from benchmarks import _common as c
from benchmarks.router_overhead.config import (
    MAX_ONGOING,
    MODEL,
    PLAIN_PREFIX,
    ROUTER_PREFIX,
    SPLIT,
)
from benchmarks.router_overhead.plain import PlainOnnx


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


def measure(
    mode: str,
    urls: dict[str, str],
    b: bytes,
    concurrencies: list[int],
    reps: int,
    warmup: float,
    duration: float,
    client: str,
) -> list[dict[str, Any]]:
    """Every (concurrency, rep, target) cell, targets alternating order rep to rep."""
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
    return cells


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
        cells = measure(mode, urls, b, concurrencies, reps, warmup, duration, client)
        env = {
            k: v
            for k, v in os.environ.items()
            if k.startswith("RAY_SERVE_ENABLE") or k == "RAY_SERVE_THROUGHPUT_OPTIMIZED"
        }
        out.write_text(json.dumps({"mode": mode, "env": env, "deployed": deployed, "cells": cells}))
    finally:
        c.stop_ray()
