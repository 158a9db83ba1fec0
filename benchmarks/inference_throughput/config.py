"""What the inference-throughput benchmark serves, its cells and its goal."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks import _common as c

MODEL = "bench"
VERSIONS = ("v2", "v3-mlp")  # models/artifacts/<name>.onnx: ~0.4 and ~6 us a row on one core
PREFIX = "/rr"
MAX_ONGOING = 1000
SWEEP = (1, 2, 4, 8, 16, 32)
ROWS = (1, 32, 256, 1024, 4096)  # rows per binary request
GOAL = 0.7
FEATURES = 64  # v2.onnx: input FP32 [-1, 64]
HEADER_LENGTH = "inference-header-content-length"

Cells = list[tuple[str, int, int]]  # (kind, rows per request, concurrency)


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


def make_cells(rows: list[int], concurrency: int, sweep_concurrency: int) -> Cells:
    """(kind, rows per request, concurrency): the JSON cells, then the binary sweep."""
    return [("json", 1, concurrency), ("json", 32, 8)] + [
        ("binary", r, sweep_concurrency) for r in rows
    ]
