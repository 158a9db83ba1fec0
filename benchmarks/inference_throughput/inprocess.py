"""The model in-process, on the runtime object a served version uses: best-of timings of
``predict``, of the JSON pipeline and of the OIP binary pipeline (no Ray running)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import _common as c
from benchmarks.inference_throughput.config import MODEL, SWEEP
from benchmarks.inference_throughput.payloads import binary_request, rows_of


def load_rt(version: str) -> Any:
    """The runtime object the version uses (one intra-op thread, as served), loaded here."""
    from rayrollout.runtime import load_runtime

    return load_runtime("onnx", c.ARTIFACTS / f"{version}.onnx", "cpu", intra_op_threads=1)


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


def _predict_fn(rt: Any, xs: np.ndarray, b: int) -> Callable[[], Any]:
    """One ``predict`` call on ``b`` rows."""
    batch = {"input": xs[:b]}
    return lambda: rt.predict(batch)


def _pipeline_fn(rt: Any, version: str, one: bytes, b: int) -> Callable[[], None]:
    """``b`` single-row JSON requests: decode each, run them as one batch, encode each answer."""
    from rayrollout.dataplane import protocol

    sig = rt.signature

    def fn() -> None:
        arrays = [protocol.decode_v1(one, sig, 1024)["input"] for _ in range(b)]
        res = rt.predict({"input": np.concatenate(arrays)})
        for i in range(b):
            protocol.encode_v1(MODEL, version, {k: v[i : i + 1] for k, v in res.items()}, {})

    return fn


def _oip_fn(rt: Any, version: str, x: np.ndarray, rows: int) -> Callable[[], None]:
    """decode_v2 + predict + encode_v2 (binary out) of one binary request of ``rows`` rows."""
    from rayrollout.dataplane import protocol

    sig = rt.signature
    b, h = binary_request(x, rows)

    def fn() -> None:
        arrays, doc = protocol.decode_v2(b, h, sig, rows)
        protocol.encode_v2(MODEL, version, rt.predict(arrays), doc, {})

    return fn


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
    rt = load_rt(version)
    xs = rows_of(x, max(sizes | pipeline_sizes | oip_rows))
    one = json.dumps({"instances": xs[:1].tolist()}).encode()

    fns: dict[Any, Any] = {("predict", b): _predict_fn(rt, xs, b) for b in sorted(sizes)}
    fns.update({("pipeline", b): _pipeline_fn(rt, version, one, b) for b in sorted(pipeline_sizes)})
    fns.update({("oip", r): _oip_fn(rt, version, x, r) for r in sorted(oip_rows)})
    t = _time_many(fns, min_s)
    out: dict[str, dict[int, float]] = {"predict_s": {}, "pipeline_s": {}, "oip_s": {}}
    for (what, n), secs in t.items():
        out[f"{what}_s"][n] = secs
    return out


def in_process_all(
    served: list[dict[str, Any]], versions: list[str], x: np.ndarray, rows: list[int], min_s: float
) -> dict[str, Any]:
    """``in_process`` of every version, at the sweep sizes plus every batch size a served cell
    formed (the pipeline only at those of the single-row JSON cells)."""
    ip = {}
    for v in versions:
        mine = [s for s in served if s["version"] == v]
        sizes, pipeline_sizes = set(SWEEP), set(SWEEP)
        for s in mine:
            sizes |= set(int(k) for k in s["batch_sizes"])
            if s["kind"] == "json" and s["rows_per_request"] == 1:
                pipeline_sizes |= set(int(k) for k in s["batch_sizes"])
        ip[v] = in_process(v, x, sizes, pipeline_sizes, set(rows), min_s)
    return ip


def rows_per_s_on_mix(per_call_s: dict[int, float], mix: dict[int, int]) -> float:
    rows = sum(k * n for k, n in mix.items())
    secs = sum(per_call_s[k] * n for k, n in mix.items())
    return rows / secs if secs else float("nan")
