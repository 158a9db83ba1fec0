"""Wire formats of the inference API, and validation of inputs against a model's signature.

Two request formats decode to the same thing, a ``dict[str, np.ndarray]`` of whole batches:

* ``/v1`` JSON: ``{"instances": [[...], ...]}`` (single-input models) or
  ``{"inputs": {"<name>": [[...], ...]}}``.
* Open Inference Protocol v2 (KServe, Triton, MLServer), including Triton's binary tensor
  extension (``Inference-Header-Content-Length``, ``binary_data_size``, ``binary_data_output``)
  so standard clients work unchanged.

Every problem raises a ``RequestError`` whose message names the input and the value; the router
answers it with a 4xx and counts it as *rejected*.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rayrollout.errors import BadRequest, PayloadTooLarge
from rayrollout.runtime.base import NUMPY_TO_OIP, OIP_TO_NUMPY, ModelSignature, TensorSpec

HEADER_LENGTH = "inference-header-content-length"


def loads_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"body is not valid JSON: {e}") from None


# -- decoding -----------------------------------------------------------------------------------


def decode_v1(body: bytes, sig: ModelSignature, max_rows: int) -> dict[str, np.ndarray]:
    doc = loads_json(body)
    if not isinstance(doc, dict):
        raise BadRequest(f"body must be a JSON object, got {type(doc).__name__}")
    if "instances" in doc:
        if len(sig.inputs) != 1:
            names = ", ".join(t.name for t in sig.inputs)
            raise BadRequest(f"'instances' needs a single-input model; this one takes: {names}")
        raw = {sig.inputs[0].name: doc["instances"]}
    elif "inputs" in doc and isinstance(doc["inputs"], dict):
        raw = doc["inputs"]
    else:
        raise BadRequest("body must have 'instances' (a list of rows) or 'inputs' (an object)")
    arrays = {}
    for name, data in raw.items():
        spec = _spec_for(sig, name)
        arrays[name] = _to_array(name, data, spec.datatype, None)
    return validate(arrays, sig, max_rows)


def decode_v2(
    body: bytes, headers: Mapping[str, str], sig: ModelSignature, max_rows: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Decode an OIP infer request. Returns the arrays and the request document (for ``id``,
    ``outputs`` and the binary-output choice)."""
    hlen = headers.get(HEADER_LENGTH)
    if hlen is not None:
        try:
            n = int(hlen)
        except ValueError:
            raise BadRequest(f"{HEADER_LENGTH}={hlen!r} is not an integer") from None
        if not 0 < n <= len(body):
            raise BadRequest(f"{HEADER_LENGTH}={n} is outside the body of {len(body)} bytes")
        doc, binary = loads_json(body[:n]), memoryview(body)[n:]
    else:
        doc, binary = loads_json(body), memoryview(b"")
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise BadRequest("body must be an object with a non-empty 'inputs' list")
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for i, t in enumerate(doc["inputs"]):
        if not isinstance(t, dict):
            raise BadRequest(f"inputs[{i}] must be an object")
        name, dt, shape = t.get("name"), t.get("datatype"), t.get("shape")
        if not isinstance(name, str):
            raise BadRequest(f"inputs[{i}].name={name!r} must be a string")
        spec = _spec_for(sig, name)
        if dt != spec.datatype:
            raise BadRequest(f"inputs[{name!r}].datatype={dt!r}, model expects {spec.datatype!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise BadRequest(f"inputs[{name!r}].shape={shape!r} must be a list of integers >= 0")
        size = (t.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise BadRequest(f"inputs[{name!r}].binary_data_size={size!r} exceeds the body")
            raw = np.frombuffer(binary[offset : offset + size], dtype=spec.dtype)
            offset += size
            arr = _reshape(name, raw, shape)
        else:
            if "data" not in t:
                raise BadRequest(f"inputs[{name!r}] has neither 'data' nor binary_data_size")
            arr = _reshape(name, _to_array(name, t["data"], dt, None).reshape(-1), shape)
        if name in arrays:
            raise BadRequest(f"input {name!r} appears twice")
        arrays[name] = arr
    return validate(arrays, sig, max_rows), doc


def _spec_for(sig: ModelSignature, name: str) -> TensorSpec:
    for t in sig.inputs:
        if t.name == name:
            return t
    names = ", ".join(t.name for t in sig.inputs)
    raise BadRequest(f"unknown input {name!r}; the model takes: {names}")


def _to_array(name: str, data: Any, datatype: str, shape: Any) -> np.ndarray:
    dtype = OIP_TO_NUMPY.get(datatype)
    if dtype is None:
        raise BadRequest(f"inputs[{name!r}].datatype={datatype!r} is not supported")
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):
        raise BadRequest(f"inputs[{name!r}] is ragged or not numeric") from None
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise BadRequest(f"inputs[{name!r}] must hold numbers, got {arr.dtype.kind!r} values")
    if (dtype.kind in "iu" and arr.dtype.kind == "f") and (
        not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr))
    ):
        raise BadRequest(f"inputs[{name!r}] must hold integers for {datatype}")
    return arr.astype(dtype, copy=False)


def _reshape(name: str, flat: np.ndarray, shape: list[int]) -> np.ndarray:
    if flat.size != math.prod(shape):
        raise BadRequest(
            f"inputs[{name!r}] has {flat.size} values but shape {shape} needs {math.prod(shape)}"
        )
    return flat.reshape(shape)


def validate(
    arrays: dict[str, np.ndarray], sig: ModelSignature, max_rows: int
) -> dict[str, np.ndarray]:
    """Check names, shapes and finiteness against the signature; return the arrays."""
    missing = [t.name for t in sig.inputs if t.name not in arrays]
    if missing:
        raise BadRequest(f"missing input(s): {', '.join(missing)}")
    rows = None
    for spec in sig.inputs:
        arr = arrays[spec.name]
        if arr.ndim != len(spec.shape) or any(
            want >= 0 and got != want for got, want in zip(arr.shape, spec.shape, strict=True)
        ):
            raise BadRequest(
                f"inputs[{spec.name!r}] has shape {list(arr.shape)}, "
                f"model expects {list(spec.shape)}"
            )
        n = arr.shape[0] if arr.ndim else 1
        if rows is None:
            rows = n
        elif n != rows:
            raise BadRequest(f"inputs disagree on batch size: {spec.name!r} has {n}, others {rows}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise BadRequest(f"inputs[{spec.name!r}] contains NaN or Inf")
    if rows == 0:
        raise BadRequest("the batch is empty")
    if rows is not None and rows > max_rows:
        raise PayloadTooLarge(f"batch of {rows} rows is over the limit of {max_rows}")
    return arrays


def check_transport_size(arrays: Mapping[str, np.ndarray], limit: int | None) -> None:
    """Refuse inputs that the router-to-version transport cannot carry (``limit`` bytes of
    tensor data, ``None`` for no limit) as too large: a 413 counted as rejected, where the hop
    itself would fail and be counted against the version."""
    if limit is None:
        return
    size = sum(int(a.nbytes) for a in arrays.values())
    if size > limit:
        raise PayloadTooLarge(
            f"input tensors of {size} bytes are over the {limit} bytes one request to a version "
            "can carry here (Ray Serve's gRPC handle transport; raise "
            "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH or send fewer rows per request)"
        )


# -- encoding -----------------------------------------------------------------------------------


def encode_v1(
    model: str, version: str, outputs: Mapping[str, np.ndarray], flags: Mapping[str, Any]
) -> bytes:
    doc: dict[str, Any] = {"model": model, "model_version": version}
    if "label" in outputs:
        doc["predictions"] = outputs["label"].tolist()
    doc["outputs"] = {k: v.tolist() for k, v in outputs.items()}
    if flags:
        doc["flags"] = dict(flags)
    return json.dumps(doc, separators=(",", ":")).encode()


def encode_v2(
    model: str,
    version: str,
    outputs: Mapping[str, np.ndarray],
    request: Mapping[str, Any],
    flags: Mapping[str, Any],
) -> tuple[bytes, dict[str, str]]:
    """An OIP infer response; binary outputs where the request asked for them."""
    params = request.get("parameters") or {}
    binary_all = bool(params.get("binary_data_output", False))
    wanted = request.get("outputs")
    if wanted:
        names = []
        binary: dict[str, bool] = {}
        for o in wanted:
            name = o.get("name") if isinstance(o, dict) else None
            if not isinstance(name, str) or name not in outputs:
                raise BadRequest(f"requested output {name!r} is not an output of the model")
            names.append(name)
            binary[name] = bool((o.get("parameters") or {}).get("binary_data", binary_all))
    else:
        names = list(outputs)
        binary = dict.fromkeys(names, binary_all)
    docs, blobs = [], []
    for name in names:
        arr = np.ascontiguousarray(outputs[name])
        t: dict[str, Any] = {
            "name": name,
            "datatype": NUMPY_TO_OIP.get(arr.dtype, "FP32"),
            "shape": list(arr.shape),
        }
        if binary[name]:
            b = arr.tobytes()
            t["parameters"] = {"binary_data_size": len(b)}
            blobs.append(b)
        else:
            t["data"] = arr.reshape(-1).tolist()
        docs.append(t)
    doc: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": docs}
    if "id" in request:
        doc["id"] = request["id"]
    if flags:
        doc["parameters"] = {"flags": json.dumps(dict(flags), separators=(",", ":"))}
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return head, {"content-type": "application/json"}
    return head + b"".join(blobs), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(head)),
    }


def model_metadata(model: str, versions: list[str], sig: ModelSignature) -> dict[str, Any]:
    return {
        "name": model,
        "versions": versions,
        "platform": "rayrollout",
        "inputs": [t.to_dict() for t in sig.inputs],
        "outputs": [t.to_dict() for t in sig.outputs],
    }
