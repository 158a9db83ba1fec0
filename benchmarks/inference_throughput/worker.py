"""One Serve mode in one Ray session (a subprocess): each model in turn as the only version
behind the router, every cell loaded over HTTP, then replayed in-process right after."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _common as c
from benchmarks.inference_throughput.config import (
    MODEL,
    PREFIX,
    Cells,
    heldout,
    router_cfg,
    version_cfg,
)
from benchmarks.inference_throughput.inprocess import load_rt
from benchmarks.inference_throughput.payloads import (
    body,
    cell_request,
    decode_binary_response,
    rows_of,
)


def deploy_one(version_cfg: dict[str, Any], router_cfg: dict[str, Any]) -> None:
    from ray import serve

    from benchmarks.inference_throughput.counting import CountingModelVersion
    from rayrollout.serving.app import build_router
    from rayrollout.spec import RouterConfig, VersionConfig

    v = VersionConfig.model_validate(version_cfg)
    counting: Any = serve.deployment(CountingModelVersion)
    dep = counting.options(name="ModelVersion", **v.serve_options())  # as version_app does
    serve.run(dep.bind(v.model_dump(mode="json")), name=v.app_name, route_prefix=None)
    serve.run(
        build_router(RouterConfig.model_validate(router_cfg)),
        name=f"rayrollout-{MODEL}",
        route_prefix=PREFIX,
    )


def check_binary(base: str, x: np.ndarray, rows_list: list[int], rt: Any) -> None:
    """One request per size: the answer is binary and matches the model run in-process."""
    import httpx

    for rows in rows_list:
        path, b, h = cell_request("binary", x, rows)
        r = httpx.post(base + path, content=b, headers=h, timeout=60)
        if r.status_code != 200:
            raise RuntimeError(f"binary request of {rows} rows: {r.status_code} {r.text[:300]}")
        got = decode_binary_response(r.content, r.headers)
        want = rt.predict({"input": rows_of(x, rows)})
        if not np.array_equal(got["label"], want["label"]) or not np.allclose(
            got["probabilities"], want["probabilities"], rtol=1e-5, atol=1e-6
        ):
            raise RuntimeError(f"binary answer of {rows} rows differs from in-process predict")


def served_cells(
    version: str,
    port: int,
    x: np.ndarray,
    cells: Cells,
    warmup: float,
    duration: float,
    client: str,
    mode: str,
    replay: float,
) -> list[dict[str, Any]]:
    base = f"http://127.0.0.1:{port}"
    c.wait_http_ok(base + cell_request("json", x, 1)[0], body(x, 1))
    rt = load_rt(version)
    check_binary(base, x, sorted({r for k, r, _ in cells if k == "binary"}), rt)
    # One event loop for the load and the handle calls: with RAY_SERVE_THROUGHPUT_OPTIMIZED=1 a
    # handle's router runs on the loop it was first used on.
    return list(
        c.run_async(
            _served_cells(version, base, x, cells, warmup, duration, client, mode, rt, replay)
        )
    )


def replay_mix(rt: Any, x: np.ndarray, mix: dict[int, int], window_s: float) -> dict[str, Any]:
    """``predict`` over the batch-size mix a served cell formed, in the same shuffled proportion,
    for ``window_s`` (whole passes over the mix, at least one), right after that cell and under the
    same machine load: rows / elapsed, measured like the served figure (no best-of). Also the
    CPU the idle Ray session took meanwhile (it competes with this measurement)."""
    seq = [k for k, n in sorted(mix.items()) for _ in range(n)]
    if not seq:
        return {"rows_per_s": float("nan"), "window_s": 0.0, "ray_idle_cores": 0.0}
    np.random.default_rng(0).shuffle(seq)
    xs = rows_of(x, max(seq))
    batches = [{"input": xs[:k]} for k in seq]
    rt.predict(batches[0])
    sampler = c.CpuSampler()
    sampler.start()
    rows, t0 = 0, time.perf_counter()
    while True:
        for b, k in zip(batches, seq, strict=True):
            rt.predict(b)
            rows += k
        dt = time.perf_counter() - t0
        if dt >= window_s:
            break
    idle = sum(sampler.stop().values())
    return {
        "rows_per_s": round(rows / dt, 1),
        "window_s": round(dt, 2),
        "ray_idle_cores": round(idle / dt, 3),
    }


async def _served_cells(
    version: str,
    base: str,
    x: np.ndarray,
    cells: Cells,
    warmup: float,
    duration: float,
    client: str,
    mode: str,
    rt: Any,
    replay: float,
) -> list[dict[str, Any]]:
    from ray import serve

    handle = serve.get_deployment_handle("ModelVersion", f"{MODEL}-{version}")
    out = []
    for kind, rows, conc in cells:
        path, b, h = cell_request(kind, x, rows)
        url = base + path
        await c.load_async("warmup", url, b, conc, 0.0, warmup, client, h)
        await handle.batch_sizes.remote()  # drop the warm-up's batches
        name = f"served {version} {kind} rows={rows}"
        cell = await c.load_async(name, url, b, conc, 0.0, duration, client, h)
        sizes = {int(k): v for k, v in (await handle.batch_sizes.remote()).items()}
        s = _cell_summary(cell, sizes, version, mode, kind, rows, len(b))
        # in-process on the same batches, right after (the loop is idle: no load runs now)
        s["in_process_interleaved"] = replay_mix(rt, x, sizes, replay)
        _print_cell(s, mode, version, kind, rows, conc)
        out.append(s)
    return out


def _cell_summary(
    cell: c.Cell,
    sizes: dict[int, int],
    version: str,
    mode: str,
    kind: str,
    rows: int,
    request_bytes: int,
) -> dict[str, Any]:
    """The load cell's summary plus what was served: rows/s and the batches formed."""
    s = cell.summary()
    n_batches = sum(sizes.values())
    s.update(
        version=version,
        mode=mode,
        kind=kind,
        rows_per_request=rows,
        request_bytes=request_bytes,
        rows_per_s=round(cell.rps * rows, 1),
        batch_sizes=dict(sorted(sizes.items())),
        model_calls=n_batches,
        mean_batch_rows=round(sum(k * v for k, v in sizes.items()) / max(n_batches, 1), 2),
        loadavg_1m_after=round(os.getloadavg()[0], 2),
    )
    return s


def _print_cell(
    s: dict[str, Any], mode: str, version: str, kind: str, rows: int, conc: int
) -> None:
    """The progress line of one served cell."""
    print(
        f"[{mode}] {version} served {kind:6s} rows/request={rows:<4d} c={conc:<3d} "
        f"{s['rows_per_s']:10.1f} rows/s ({s['rps']:.1f} req/s) p50={s['p50_ms']:.1f} ms "
        f"p99={s['p99_ms']:.1f} ms mean batch={s['mean_batch_rows']} rows "
        f"errors={s['errors']} load={s['loadavg_1m_after']}; in-process right after: "
        f"{s['in_process_interleaved']['rows_per_s']:.1f} rows/s",
        flush=True,
    )


def worker(
    mode: str,
    versions: list[str],
    out: Path,
    cells: Cells,
    warmup: float,
    duration: float,
    client: str,
    replay: float,
) -> None:
    """One Ray session: each version in turn behind its own router (the previous one deleted)."""
    from ray import serve

    port = c.free_port()
    c.start_ray(port)
    served: list[dict[str, Any]] = []
    try:
        for v in versions:
            deploy_one(version_cfg(v), router_cfg(v, max(r for _, r, _ in cells)))
            served += served_cells(
                v, port, heldout(), cells, warmup, duration, client, mode, replay
            )
            for app in (f"rayrollout-{MODEL}", f"{MODEL}-{v}"):
                serve.delete(app)
        out.write_text(json.dumps({"mode": mode, "served": served}))
    finally:
        c.stop_ray()
