"""Stable-only request traces for replay mode: read/write CSV or JSONL, or synthesise one.

Columns: ``timestamp`` (s), ``latency_ms``, ``error`` (0/1), optional ``score``, ``correct``.
"""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from benchmarks.detection.scenario import SimConfig

Trace = dict[str, np.ndarray]
COLUMNS = ("timestamp", "latency_ms", "error", "score", "correct")


def read_trace(path: str | Path) -> Trace:
    path = Path(path)
    rows: list[dict[str, Any]]
    if path.suffix in (".jsonl", ".ndjson"):
        with open(path) as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    else:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"trace {path} is empty")
    missing = [c for c in COLUMNS[:3] if c not in rows[0]]
    if missing:
        raise ValueError(f"trace {path}: missing columns {missing}")
    out = {c: np.array([float(r[c]) for r in rows]) for c in COLUMNS if c in rows[0]}
    order = np.argsort(out["timestamp"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def write_trace(path: str | Path, trace: Trace) -> None:
    path = Path(path)
    cols = [c for c in COLUMNS if c in trace]
    n = trace["timestamp"].size
    if path.suffix in (".jsonl", ".ndjson"):
        with open(path, "w") as fh:
            for i in range(n):
                fh.write(json.dumps({c: float(trace[c][i]) for c in cols}) + "\n")
        return
    with open(path, "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(cols)
        for i in range(n):
            wr.writerow([repr(float(trace[c][i])) for c in cols])


def synth_trace(rate: float = 100.0, duration_s: float = 3900.0, seed: int = 7,
                p_err: float = 0.005, lat_median_ms: float = 100.0, lat_sigma: float = 0.6,
                score_a: float = 2.0, score_b: float = 5.0, accuracy: float = 0.9) -> Trace:
    """A stable-only trace with a slowly varying latency level (not exactly lognormal)."""
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate * duration_s)
    ts = np.sort(rng.uniform(0.0, duration_s, n))
    level = 1.0 + 0.1 * np.sin(2 * np.pi * ts / 900.0)
    lat = lat_median_ms * level * np.exp(lat_sigma * rng.standard_normal(n))
    return {
        "timestamp": ts,
        "latency_ms": lat,
        "error": (rng.random(n) < p_err).astype(float),
        "score": rng.beta(score_a, score_b, n),
        "correct": (rng.random(n) < accuracy).astype(float),
    }


@functools.lru_cache(maxsize=4)
def _cached_synth(items: tuple[tuple[str, Any], ...]) -> Trace:
    return synth_trace(**dict(items))


@functools.lru_cache(maxsize=4)
def _cached_read(path: str) -> Trace:
    return read_trace(path)


def load_trace_for(cfg: SimConfig) -> Trace:
    """The (cached, per process) trace a scenario replays; the same trace for every seed."""
    if cfg.trace is not None:
        return _cached_read(cfg.trace)
    assert cfg.trace_synth is not None
    return _cached_synth(cfg.trace_synth)
