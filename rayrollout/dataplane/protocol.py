"""Wire formats of the inference API, and validation of inputs against a model's signature.

Two request formats decode to the same thing, a ``dict[str, np.ndarray]`` of whole batches:

* ``/v1`` JSON: ``{"instances": [[...], ...]}`` (single-input models) or
  ``{"inputs": {"<name>": [[...], ...]}}``.
* Open Inference Protocol v2 (KServe, Triton, MLServer), including Triton's binary tensor
  extension (``Inference-Header-Content-Length``, ``binary_data_size``, ``binary_data_output``)
  so standard clients work unchanged.

Every problem raises a ``RequestError`` whose message names the input and the value; the router
answers it with a 4xx and counts it as *rejected*. Nothing else escapes a decoder, whatever the
body (deep nesting, out-of-range numbers, odd shapes: see ``rayrollout.dataplane.tensors``), and
everything a request asks of the response (``id``, ``parameters``, ``outputs``) is checked when
it is decoded, before any model runs. A response names each output at most once (a repeated or
unknown output name is a 400) and is refused with 413 over ``MAX_RESPONSE_BYTES``, so a small
request cannot ask for a huge answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from rayrollout.dataplane import tensors
from rayrollout.errors import BadRequest, PayloadTooLarge
from rayrollout.runtime.base import NUMPY_TO_OIP, ModelSignature, TensorSpec

HEADER_LENGTH = "inference-header-content-length"
MAX_ID_CHARS = 256  # an OIP request's ``id``, echoed in the response
MAX_RESPONSE_BYTES = 64 << 20  # one response; each output is serialised at most once


def loads_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        raise BadRequest("body is nested too deeply to be read as JSON") from None
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
        arrays[name] = tensors.to_array(name, data, spec.datatype)
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
    request_options(doc, [t.name for t in sig.outputs] or None)  # before any model runs
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for i, t in enumerate(doc["inputs"]):
        name, arr, used = _decode_input(i, t, sig, binary[offset:])
        offset += used
        if name in arrays:
            raise BadRequest(f"input {name!r} appears twice")
        arrays[name] = arr
    return validate(arrays, sig, max_rows), doc


def _decode_input(i: int, t: Any, sig: ModelSignature, binary: memoryview
                  ) -> tuple[str, np.ndarray, int]:
    """One entry of ``inputs``: (its name, its array, how many bytes of ``binary`` it used)."""
    if not isinstance(t, dict):
        raise BadRequest(f"inputs[{i}] must be an object")
    name, dt = t.get("name"), t.get("datatype")
    if not isinstance(name, str):
        raise BadRequest(f"inputs[{i}].name={tensors.short(name)} must be a string")
    spec = _spec_for(sig, name)
    tensors.dtype_of(name, dt)  # an unsupported datatype (BYTES) is named as such
    if dt != spec.datatype:
        raise BadRequest(f"inputs[{name!r}].datatype={dt!r}, model expects {spec.datatype!r}")
    shape = tensors.check_shape(name, t.get("shape"))
    params = _params(t, f"inputs[{i}].parameters")
    size = params.get("binary_data_size")
    if size is None:
        if "data" not in t:
            raise BadRequest(f"inputs[{name!r}] has neither 'data' nor binary_data_size")
        return name, tensors.reshape(name, tensors.to_array(name, t["data"], dt).reshape(-1),
                                     shape), 0
    if type(size) is not int or size < 0 or size > len(binary):
        raise BadRequest(f"inputs[{name!r}].binary_data_size={tensors.short(size)} exceeds "
                         "the body")
    return name, tensors.from_binary(name, binary[:size], dt, shape), size


def _params(obj: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    params = obj.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadRequest(f"{where} must be an object, got {type(params).__name__}")
    return params


def _flag(params: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}.{key}={tensors.short(value)} must be true or false")
    return value


def request_options(request: Mapping[str, Any], available: list[str] | None
                    ) -> tuple[list[str], dict[str, bool]]:
    """The outputs an OIP request asks for, in order, and which of them in binary. Checks the
    request's ``id``, ``parameters`` and ``outputs`` (unknown or repeated names are refused);
    ``available``: the model's output names (``None``: do not check names)."""
    rid = request.get("id")
    if rid is not None and not (isinstance(rid, str) and len(rid) <= MAX_ID_CHARS):
        raise BadRequest(f"'id' must be a string of at most {MAX_ID_CHARS} characters")
    binary_all = _flag(_params(request, "'parameters'"), "binary_data_output", "parameters",
                       False)
    wanted = request.get("outputs")
    if wanted is None or wanted == []:
        names = list(available or [])
        return names, dict.fromkeys(names, binary_all)
    if not isinstance(wanted, list):
        raise BadRequest(f"'outputs' must be a list, got {type(wanted).__name__}")
    names, binary = [], {}
    for i, o in enumerate(wanted):
        if not isinstance(o, dict):
            raise BadRequest(f"outputs[{i}] must be an object")
        name = o.get("name")
        if not isinstance(name, str) or (available is not None and name not in available):
            raise BadRequest(f"requested output {tensors.short(name)} is not an output of the "
                             f"model; it gives: {', '.join(available or [])}")
        if name in binary:
            raise BadRequest(f"output {name!r} is requested twice")
        names.append(name)
        binary[name] = _flag(_params(o, f"outputs[{i}].parameters"), "binary_data",
                             f"outputs[{i}].parameters", binary_all)
    return names, binary


def _spec_for(sig: ModelSignature, name: str) -> TensorSpec:
    for t in sig.inputs:
        if t.name == name:
            return t
    names = ", ".join(t.name for t in sig.inputs)
    raise BadRequest(f"unknown input {tensors.short(name)}; the model takes: {names}")


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
    model: str,
    version: str,
    outputs: Mapping[str, np.ndarray],
    flags: Mapping[str, Any],
    max_bytes: int | None = MAX_RESPONSE_BYTES,
) -> bytes:
    _check_response_size(outputs, dict.fromkeys(outputs, False), max_bytes,
                         extra=outputs.get("label"))
    doc: dict[str, Any] = {"model": model, "model_version": version}
    if "label" in outputs:
        doc["predictions"] = outputs["label"].tolist()
    doc["outputs"] = {k: v.tolist() for k, v in outputs.items()}
    if flags:
        doc["flags"] = dict(flags)
    body = json.dumps(doc, separators=(",", ":")).encode()
    _check_size(len(body), max_bytes, "")
    return body


def encode_v2(
    model: str,
    version: str,
    outputs: Mapping[str, np.ndarray],
    request: Mapping[str, Any],
    flags: Mapping[str, Any],
    max_bytes: int | None = MAX_RESPONSE_BYTES,
) -> tuple[bytes, dict[str, str]]:
    """An OIP infer response; binary outputs where the request asked for them. Each output at
    most once; a response over ``max_bytes`` is refused (``PayloadTooLarge``), before it is
    built where its size is known."""
    names, binary = request_options(request, list(outputs))
    _check_response_size({n: outputs[n] for n in names}, binary, max_bytes)
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
    _check_size(len(head) + sum(len(b) for b in blobs), max_bytes, "")
    if not blobs:
        return head, {"content-type": "application/json"}
    return head + b"".join(blobs), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(head)),
    }


def _check_response_size(outputs: Mapping[str, np.ndarray], binary: Mapping[str, bool],
                         max_bytes: int | None, extra: np.ndarray | None = None) -> None:
    """Refuse before building a response that must be over ``max_bytes``: binary outputs take
    their size in bytes, JSON ones at least two bytes a value (a digit and a comma)."""
    if max_bytes is None:
        return
    least = sum(int(np.asarray(a).nbytes) if binary[n] else 2 * int(np.asarray(a).size)
                for n, a in outputs.items())
    least += 0 if extra is None else 2 * int(np.asarray(extra).size)
    _check_size(least, max_bytes, "at least ")


def _check_size(size: int, max_bytes: int | None, qualifier: str) -> None:
    if max_bytes is not None and size > max_bytes:
        raise PayloadTooLarge(
            f"the response of {qualifier}{size} bytes is over the limit of {max_bytes} bytes; "
            "ask for fewer rows or outputs, or for binary outputs")


def model_metadata(model: str, versions: list[str], sig: ModelSignature) -> dict[str, Any]:
    return {
        "name": model,
        "versions": versions,
        "platform": "rayrollout",
        "inputs": [t.to_dict() for t in sig.inputs],
        "outputs": [t.to_dict() for t in sig.outputs],
    }
