"""Rows per second of one ONNX version served through the router, against onnxruntime in-process.

Two models, in turn: ``v2.onnx`` (a logistic regression: ~0.4 us a row on one core, the worst
case for any serving path) and ``v3-mlp.onnx`` (a 512-512 MLP: ~6 us a row).

Served: the model as one version (100% weight) behind the rayrollout router, dynamic batching
from the version's default config (``max_batch_size`` 32, ``batch_wait_timeout_s`` 0.002),
loaded over HTTP by a closed-loop client. Cells, in this order, per model, in one Ray session
per mode:

* ``json``: ``/v1`` predict, ``{"instances": [...]}``: 64 concurrent single-row requests (the
  worst case: per-request overhead against a model of a few us a row), and 32-row requests
  at c=8;
* ``binary``: what a batch-scoring user sends: OIP ``/v2/models/{model}/infer`` with the
  binary tensor extension (``Inference-Header-Content-Length``, ``binary_data_size``; FP32
  little-endian rows) asking for binary outputs (``binary_data_output``), over a sweep of rows
  per request (default 1, 32, 256, 1024, 4096) at concurrency 8.

The router's ``max_body_bytes`` / ``max_batch_rows`` are raised to fit the largest request. The
version is deployed from a subclass of ``ModelVersion`` that only counts the batch sizes (rows
per model call) ``@serve.batch`` formed, so the in-process figure is taken on exactly those.

In-process, on the same runtime object the version uses (``load_runtime("onnx", <model>.onnx,
intra_op_threads=1)``: one core, as the served version's session), two ways:

* ``model @ formed batches, right after`` (the headline ratio's denominator): in the worker,
  right after each served cell, with the Ray session idle, ``predict`` replays that cell's
  batch-size mix for a few seconds; rows / elapsed, like the served figure, under the same
  machine load (this 2-core box is shared; loads move by 2x within minutes);
* ``model @ formed batches, best-of`` (conservative): in the parent after all workers, no Ray
  running, every size timed in best-of-15 short rounds interleaved across sizes (the model on a
  quiet core);
* ``sweep``: ``predict`` at batch sizes 1..32 (best-of);
* ``pipeline`` (single-row JSON cells): per request ``decode_v1`` + ``predict`` +
  ``encode_v1`` on the same batches: how much of the gap is the JSON protocol;
* ``oip`` (binary cells): ``decode_v2`` + ``predict`` + ``encode_v2`` (binary out) of one
  request of that many rows: what the binary protocol costs without HTTP and Ray.

    python -m benchmarks.inference_throughput            # ~9 min: modes proxy and direct-tuned
    python -m benchmarks.inference_throughput --quick    # ~3 min: proxy mode only, 4 s cells
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
VERSIONS = ("v2", "v3-mlp")  # models/artifacts/<name>.onnx: ~0.4 and ~6 us a row on one core
PREFIX = "/rr"
MAX_ONGOING = 1000
SWEEP = (1, 2, 4, 8, 16, 32)
ROWS = (1, 32, 256, 1024, 4096)  # rows per binary request
GOAL = 0.7
FEATURES = 64  # v2.onnx: input FP32 [-1, 64]
HEADER_LENGTH = "inference-header-content-length"


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


# -- requests -----------------------------------------------------------------------------------


def rows_of(x: np.ndarray, rows: int) -> np.ndarray:
    """``rows`` rows of the held-out set, tiled."""
    return np.ascontiguousarray(np.concatenate([x] * -(-rows // len(x)))[:rows])


def body(x: np.ndarray, rows: int) -> bytes:
    return json.dumps({"instances": rows_of(x, rows).tolist()}).encode()


def binary_request(x: np.ndarray, rows: int) -> tuple[bytes, dict[str, str]]:
    """An OIP infer request with the input as a binary tensor, asking for binary outputs."""
    arr = rows_of(x, rows).astype("<f4")
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [rows, FEATURES],
                    "parameters": {"binary_data_size": arr.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        },
        separators=(",", ":"),
    ).encode()
    headers = {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(head))}
    return head + arr.tobytes(), headers


def decode_binary_response(content: bytes, headers: Any) -> dict[str, np.ndarray]:
    n = int(headers[HEADER_LENGTH])
    doc, blob, off = json.loads(content[:n]), memoryview(content)[n:], 0
    out = {}
    for t in doc["outputs"]:
        size = t["parameters"]["binary_data_size"]
        dt = {"FP32": "<f4", "INT64": "<i8"}[t["datatype"]]
        out[t["name"]] = np.frombuffer(blob[off : off + size], dtype=dt).reshape(t["shape"])
        off += size
    return out


def cell_request(kind: str, x: np.ndarray, rows: int) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of one cell's request."""
    if kind == "json":
        return f"{PREFIX}/v1/models/{MODEL}/predict", body(x, rows), {}
    b, h = binary_request(x, rows)
    return f"{PREFIX}/v2/models/{MODEL}/infer", b, h


def load_rt(version: str) -> Any:
    """The runtime object the version uses (one intra-op thread, as served), loaded here."""
    from rayrollout.runtime import load_runtime

    return load_runtime("onnx", c.ARTIFACTS / f"{version}.onnx", "cpu", intra_op_threads=1)


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


# -- served -------------------------------------------------------------------------------------


def served_cells(
    version: str,
    port: int,
    x: np.ndarray,
    cells: list[tuple[str, int, int]],
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
    cells: list[tuple[str, int, int]],
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
        s = cell.summary()
        n_batches = sum(sizes.values())
        s.update(
            version=version,
            mode=mode,
            kind=kind,
            rows_per_request=rows,
            request_bytes=len(b),
            rows_per_s=round(cell.rps * rows, 1),
            batch_sizes=dict(sorted(sizes.items())),
            model_calls=n_batches,
            mean_batch_rows=round(sum(k * v for k, v in sizes.items()) / max(n_batches, 1), 2),
            loadavg_1m_after=round(os.getloadavg()[0], 2),
        )
        # in-process on the same batches, right after (the loop is idle: no load runs now)
        s["in_process_interleaved"] = replay_mix(rt, x, sizes, replay)
        print(
            f"[{mode}] {version} served {kind:6s} rows/request={rows:<4d} c={conc:<3d} "
            f"{s['rows_per_s']:10.1f} rows/s ({s['rps']:.1f} req/s) p50={s['p50_ms']:.1f} ms "
            f"p99={s['p99_ms']:.1f} ms mean batch={s['mean_batch_rows']} rows "
            f"errors={s['errors']} load={s['loadavg_1m_after']}; in-process right after: "
            f"{s['in_process_interleaved']['rows_per_s']:.1f} rows/s",
            flush=True,
        )
        out.append(s)
    return out


# -- in-process ---------------------------------------------------------------------------------


def _time_many(fns: dict[Any, Any], min_s: float, rounds: int = 15) -> dict[Any, float]:
    """Seconds per call of each ``fn``: the best of ``rounds`` short rounds of ``min_s / rounds``
    (many short rounds, so a burst of load from other processes spoils few of them). Rounds are
    interleaved across the functions, so a slow spell of the machine hits every size alike."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for k, fn in fns.items():
            n, t0 = 0, time.perf_counter()
            while True:
                fn()
                n += 1
                dt = time.perf_counter() - t0
                if dt >= min_s / rounds:
                    break
            best[k] = min(best[k], dt / n)
    return best


def in_process(
    version: str,
    x: np.ndarray,
    sizes: set[int],
    pipeline_sizes: set[int],
    oip_rows: set[int],
    min_s: float,
) -> dict[str, Any]:
    """Seconds per ``predict`` call at each of ``sizes``; per decode+predict+encode of that
    many single-row JSON requests at each of ``pipeline_sizes``; per decode_v2+predict+encode_v2
    of one binary request of each of ``oip_rows`` rows."""
    from rayrollout import protocol

    rt = load_rt(version)
    sig = rt.signature
    xs = rows_of(x, max(sizes | pipeline_sizes | oip_rows))
    one = json.dumps({"instances": xs[:1].tolist()}).encode()

    def predict(b: int) -> Any:
        batch = {"input": xs[:b]}
        return lambda: rt.predict(batch)

    def pipeline(b: int) -> Any:
        def fn() -> None:
            # b single-row requests: decode each, run them as one batch, encode each answer
            arrays = [protocol.decode_v1(one, sig, 1024)["input"] for _ in range(b)]
            res = rt.predict({"input": np.concatenate(arrays)})
            for i in range(b):
                protocol.encode_v1(MODEL, version, {k: v[i : i + 1] for k, v in res.items()}, {})

        return fn

    def oip(rows: int) -> Any:
        b, h = binary_request(x, rows)

        def fn() -> None:
            arrays, doc = protocol.decode_v2(b, h, sig, rows)
            protocol.encode_v2(MODEL, version, rt.predict(arrays), doc, {})

        return fn

    fns = {("predict", b): predict(b) for b in sorted(sizes)}
    fns.update({("pipeline", b): pipeline(b) for b in sorted(pipeline_sizes)})
    fns.update({("oip", r): oip(r) for r in sorted(oip_rows)})
    t = _time_many(fns, min_s)
    out: dict[str, dict[int, float]] = {"predict_s": {}, "pipeline_s": {}, "oip_s": {}}
    for (what, n), secs in t.items():
        out[f"{what}_s"][n] = secs
    return out


def rows_per_s_on_mix(per_call_s: dict[int, float], mix: dict[int, int]) -> float:
    rows = sum(k * n for k, n in mix.items())
    secs = sum(per_call_s[k] * n for k, n in mix.items())
    return rows / secs if secs else float("nan")


# -- config -------------------------------------------------------------------------------------


def version_cfg(version: str) -> dict[str, Any]:
    return {
        "model": MODEL,
        "name": version,
        "runtime": "onnx",
        "artifact": str(c.ARTIFACTS / f"{version}.onnx"),
        "max_ongoing_requests": MAX_ONGOING,
    }


def router_cfg(version: str, max_rows: int) -> dict[str, Any]:
    """The router, with body and row limits raised to fit a ``max_rows`` binary request."""
    return {
        "model": MODEL,
        "weights": {version: 100.0},
        "deployment": {"max_ongoing_requests": MAX_ONGOING},
        "max_batch_rows": max(1024, max_rows),
        "max_body_bytes": max(1_000_000, max_rows * FEATURES * 4 + 64 * 1024),
    }


def heldout() -> np.ndarray:
    return np.load(c.HELDOUT)["X"].astype(np.float32)[:64]


def make_cells(
    rows: list[int], concurrency: int, sweep_concurrency: int
) -> list[tuple[str, int, int]]:
    """(kind, rows per request, concurrency): the JSON cells, then the binary sweep."""
    return [("json", 1, concurrency), ("json", 32, 8)] + [
        ("binary", r, sweep_concurrency) for r in rows
    ]


def worker(
    mode: str,
    versions: list[str],
    out: Path,
    cells: list[tuple[str, int, int]],
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


# -- report -------------------------------------------------------------------------------------


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


def print_report(
    comparisons: list[dict[str, Any]],
    ip: dict[str, dict[str, dict[int, float]]],
    ratios: dict[str, float],
    sweep_concurrency: int,
    goal: dict[str, Any],
    max_rows: int,
) -> None:
    json_rows, sweep_rows = [], []
    for row in comparisons:
        s, ipr = row["served"], row["in_process_rows_per_s"]
        inter, best = (
            ipr["model_at_formed_batches_interleaved"],
            ipr["model_at_formed_batches_best_of_no_ray"],
        )
        if s["kind"] == "json":
            json_rows.append(
                [
                    f"{s['version']} served [{s['mode']}], JSON, {s['rows_per_request']} row/req, "
                    f"c={s['concurrency']}",
                    s["rows_per_s"],
                    s["mean_batch_rows"],
                    s["p50_ms"],
                    s["p99_ms"],
                ]
            )
            json_rows.append(["  in-process model @ same batches, right after", inter, "", "", ""])
            json_rows.append(
                ["  in-process model @ same batches, best-of no Ray", best, "", "", ""]
            )
            if "decode_model_encode_at_formed_batches" in ipr:
                json_rows.append(
                    [
                        "  in-process decode+model+encode @ same batches",
                        ipr["decode_model_encode_at_formed_batches"],
                        "",
                        "",
                        "",
                    ]
                )
        else:
            sweep_rows.append(
                [
                    s["version"],
                    s["mode"],
                    s["rows_per_request"],
                    s["rps"],
                    s["rows_per_s"],
                    s["mean_batch_rows"],
                    inter,
                    f"{row['ratio']:.3f}x",
                    best,
                    f"{row['ratio_vs_best_of_no_ray']:.3f}x",
                    s["p50_ms"],
                    s["p99_ms"],
                    s["loadavg_1m_after"],
                ]
            )
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
        print(
            c.table(
                [
                    [r, round(r / t["predict_s"][r], 1), round(r / t["oip_s"][r], 1)]
                    for r in t["oip_s"]
                ]
                + [
                    [
                        f"{b} (JSON)",
                        round(b / t["predict_s"][b], 1),
                        round(b / t["pipeline_s"][b], 1),
                    ]
                    for b in SWEEP
                ],
                [f"{v}: rows", "model rows/s", "decode+model+encode rows/s (OIP binary / JSON)"],
            )
        )
    print()
    for k, val in ratios.items():
        print(f"{k:96s} {val:.4f}x")
    print()
    for row in comparisons:
        print(cpu_line(row["served"]))
    print()
    for key, gg in goal.items():
        for which, g in gg.items():
            if g["reached_from_rows"] is not None:
                verdict = f"reached from {g['reached_from_rows']} rows/request"
            else:
                verdict = f"NOT reached up to {max_rows} rows/request"
            print(
                f"[{key}] goal >= {GOAL}x vs in-process ({which}): {verdict} "
                f"(best {g['best_ratio']:.3f}x at {g['best_rows']} rows/request)"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="~3 min: one mode, 4 s cells")
    p.add_argument(
        "--modes",
        default=None,
        help="Serve modes, each its own Ray session (default: proxy,direct-tuned; --quick: proxy)",
    )
    p.add_argument(
        "--models",
        default=",".join(VERSIONS),
        help="ONNX models under models/artifacts to serve in turn, comma-separated",
    )
    p.add_argument("--concurrency", type=int, default=64, help="single-row JSON requests in flight")
    p.add_argument(
        "--rows",
        default=",".join(map(str, ROWS)),
        help="rows per binary request, comma-separated (the sweep)",
    )
    p.add_argument("--sweep-concurrency", type=int, default=8, help="binary requests in flight")
    p.add_argument("--duration", type=float, default=None, help="seconds per served cell")
    p.add_argument("--warmup", type=float, default=None)
    p.add_argument(
        "--replay",
        type=float,
        default=None,
        help="seconds of in-process predict on each cell's formed batches, right after it",
    )
    p.add_argument("--client", choices=c.CLIENTS, default="raw")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    duration = a.duration or (4.0 if a.quick else 8.0)
    warmup = a.warmup if a.warmup is not None else (1.0 if a.quick else 2.0)
    min_s = 0.3 if a.quick else 0.6
    replay = a.replay or (2.0 if a.quick else 3.0)
    rows = [int(r) for r in a.rows.split(",") if r]
    versions = [v for v in a.models.split(",") if v]
    for v in versions:
        if not (c.ARTIFACTS / f"{v}.onnx").is_file():
            p.error(f"--models: no ONNX artifact models/artifacts/{v}.onnx")
    cells = make_cells(rows, a.concurrency, a.sweep_concurrency)
    if a.worker:
        worker(a.worker, versions, a.out, cells, warmup, duration, a.client, replay)
        return 0
    modes = (a.modes or ("proxy" if a.quick else "proxy,direct-tuned")).split(",")

    t0 = time.time()
    meta = c.machine()
    args = ["--models", a.models, "--concurrency", str(a.concurrency), "--rows", a.rows]
    args += ["--sweep-concurrency", str(a.sweep_concurrency), "--duration", str(duration)]
    args += ["--warmup", str(warmup), "--replay", str(replay), "--client", a.client]
    served = []
    for m in modes:
        served += c.run_worker("benchmarks.inference_throughput", m, args, 1800)["served"]
    t_served = time.time() - t0

    # in-process: this process, no Ray running
    x = heldout()
    ip = {}
    for v in versions:
        mine = [s for s in served if s["version"] == v]
        sizes, pipeline_sizes = set(SWEEP), set(SWEEP)
        for s in mine:
            sizes |= set(int(k) for k in s["batch_sizes"])
            if s["kind"] == "json" and s["rows_per_request"] == 1:
                pipeline_sizes |= set(int(k) for k in s["batch_sizes"])
        ip[v] = in_process(v, x, sizes, pipeline_sizes, set(rows), min_s)
    comparisons = compare(served, ip)
    goal = goals(comparisons)
    ratios = ratio_lines(comparisons)
    print_report(comparisons, ip, ratios, a.sweep_concurrency, goal, max(rows))

    doc = {
        "benchmark": "inference_throughput",
        "command": "python -m benchmarks.inference_throughput"
        + (" --quick" if a.quick else "")
        + (f" --modes {a.modes}" if a.modes else "")
        + (f" --models {a.models}" if a.models != ",".join(VERSIONS) else ""),
        "config": {
            "versions": {v: version_cfg(v) for v in versions},
            "router": router_cfg("<version>", max(rows)),
            "batching": "VersionConfig defaults: max_batch_size=32 (requests), "
            "batch_wait_timeout_s=0.002, inline_rows=64",
            "cells": [{"kind": k, "rows_per_request": r, "concurrency": n} for k, r, n in cells],
            "binary_request": "POST /v2/models/bench/infer, inference-header-content-length, "
            "input FP32 [rows, 64] as binary_data_size, parameters.binary_data_output=true",
            "modes": modes,
            "mode_env": {m: c.mode_flags(m) for m in modes},
            "warmup_s": warmup,
            "duration_s": duration,
            "load_generator": f"{a.client}: one asyncio client process (the Ray driver), "
            "closed loop, one keep-alive connection per request in flight",
            "in_process": "rayrollout.runtime.load_runtime('onnx', <version>.onnx, "
            "intra_op_threads=1). interleaved (headline): in the worker right after each "
            f"served cell (Ray idle), predict over that cell's formed batch-size mix for "
            f">= {replay:g} s, rows / elapsed. best_of_no_ray: in the parent after all "
            f"workers, no Ray running, best of 15 rounds of >= {min_s / 15:.3f} s per size, "
            "rounds interleaved across sizes",
            "replay_s": replay,
        },
        "machine": {**meta, "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
        "git": c.git_rev(),
        "wall_s": round(time.time() - t0, 1),
        "served_wall_s": round(t_served, 1),
        "results": comparisons,
        "goal": goal,
        "in_process": {
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
        },
        "ratios": ratios,
    }
    path = c.write_result("inference_throughput", doc, a.out)
    print(f"\nwrote {path.relative_to(c.ROOT) if path.is_relative_to(c.ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
