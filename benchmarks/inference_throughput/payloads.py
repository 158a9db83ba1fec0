"""Request bodies of the cells (JSON ``/v1`` and OIP binary tensors) and the binary answer."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from benchmarks.inference_throughput.config import FEATURES, HEADER_LENGTH, MODEL, PREFIX


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
