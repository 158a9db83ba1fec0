"""``rayrollout demo``: the README's main job, on an embedded local Ray.

Deploys the model versions and the router of ``configs/digits.yaml``, sends held-out digits as
real HTTP traffic (with a few bad requests mixed in), and prints what each version served, how
accurate it was, how often the shadow agreed, and what was rejected. Leaves nothing running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rayrollout.config import RouterConfig, VersionConfig, project_root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_serve_config(path: Path) -> tuple[RouterConfig, list[VersionConfig]]:
    """The router and version configs of a Serve multi-app YAML written for rayrollout."""
    doc = yaml.safe_load(path.read_text())
    router, versions = None, []
    for app in doc.get("applications", []):
        target = app["import_path"].split(":")[-1]
        if target == "build_router":
            router = RouterConfig.model_validate(app["args"])
        elif target == "build_version":
            versions.append(VersionConfig.model_validate(app["args"]))
    if router is None:
        raise SystemExit(f"{path}: no application uses rayrollout.serving.app:build_router")
    return router, versions


async def _traffic(
    base: str, model: str, X: np.ndarray, y: np.ndarray, n: int, conc: int
) -> tuple[dict[str, Counter[str]], int]:
    import httpx

    served: dict[str, Counter[str]] = defaultdict(Counter)
    rejected = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal rejected
        while not queue.empty():
            i = queue.get_nowait()
            if i % 50 == 49:  # a malformed request now and then: answered 4xx, never a failure
                r = await c.post(f"/v1/models/{model}/predict", json={"instances": [[1.0, 2.0]]})
                rejected += r.status_code == 400
                continue
            row = X[i % len(X)]
            r = await c.post(
                f"/v1/models/{model}/predict",
                json={"instances": [row.tolist()]},
                headers={"x-rollout-key": f"user-{i % 400}"} if i % 2 else {},
            )
            v = r.headers.get("x-model-version", "?")
            ok = r.status_code == 200 and r.json()["predictions"][0] == int(y[i % len(y)])
            served[v]["requests"] += 1
            served[v]["correct"] += ok
            served[v]["failed"] += r.status_code >= 500

    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        await asyncio.gather(*(worker(c) for _ in range(conc)))
    return served, rejected


def run(config: Path | None = None, requests: int = 2000, concurrency: int = 16) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_SERVE_LOG_TO_STDERR", "0")
    import ray
    from ray import serve

    from rayrollout.aggregates import Collected, merge_stats
    from rayrollout.serving.app import deploy

    root = project_root()
    config = config or root / "configs" / "digits.yaml"
    router, versions = load_serve_config(config)
    data = np.load(root / "models" / "heldout.npz")
    X, y = data["X"].astype(np.float32), data["y"]
    port = _free_port()
    t0 = time.monotonic()
    print(f"rayrollout demo: starting a local Ray and Serve on 127.0.0.1:{port}", flush=True)
    ray.init(
        address="local",
        num_cpus=8,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        deploy(router, versions, artifact_base=root)
        print(
            f"deployed {', '.join(v.name for v in versions)} behind the router of "
            f"{router.model!r} in {time.monotonic() - t0:.1f} s; weights {dict(router.weights)}"
            + (
                f", shadow {router.shadow.version} on {router.shadow.fraction:.0%}"
                if router.shadow
                else ""
            ),
            flush=True,
        )
        t1 = time.monotonic()
        served, rejected = asyncio.run(
            _traffic(f"http://127.0.0.1:{port}", router.model, X, y, requests, concurrency)
        )
        dt = time.monotonic() - t1
        handle = serve.get_deployment_handle("Router", router.app_name)
        time.sleep(0.5)  # let the last shadow calls finish
        stats = merge_stats(
            [Collected.from_dict(c).stats for c in handle.broadcast("collect").results()]
        )
        _report(router, served, rejected, stats, requests, dt)
        failed = sum(c["failed"] for c in served.values())
        return 0 if failed == 0 else 1
    finally:
        serve.shutdown()
        ray.shutdown()


def _report(
    router: RouterConfig,
    served: dict[str, Counter[str]],
    rejected: int,
    stats: dict[str, Any],
    n: int,
    dt: float,
) -> None:
    total = sum(c["requests"] for c in served.values())
    print(
        f"\nsent {n} requests in {dt:.1f} s ({n / dt:.0f} req/s), {rejected} rejected as bad input"
    )
    print(
        f"{'version':<14}{'weight':>8}{'served':>9}{'share':>8}{'accuracy':>10}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}"
    )
    for v, w in router.weights.items():
        c, s = served.get(v, Counter()), stats.get(v)
        share = c["requests"] / total if total else 0.0
        acc = c["correct"] / c["requests"] if c["requests"] else float("nan")
        p50 = s.latency_quantile(0.5) if s else float("nan")
        p99 = s.latency_quantile(0.99) if s else float("nan")
        print(
            f"{v:<14}{w:>7.0f}%{c['requests']:>9}{share:>8.1%}{acc:>10.1%}"
            f"{p50:>9.1f}{p99:>9.1f}{c['failed']:>8}"
        )
    if router.shadow:
        s = stats.get(router.shadow.version)
        if s and s.shadow_compared:
            agree = 1 - s.shadow_disagree / s.shadow_compared
            print(
                f"shadow {router.shadow.version}: {s.shadow_compared} comparisons, "
                f"{agree:.1%} agreement with the primary, {s.shadow_dropped} dropped, "
                f"{s.shadow_errors} errors"
            )
    rej = sum(s.rejected for s in stats.values())
    print(
        f"router counted {rej} rejected requests and "
        f"{sum(s.failures for s in stats.values())} model failures"
    )


if __name__ == "__main__":
    sys.exit(run())
