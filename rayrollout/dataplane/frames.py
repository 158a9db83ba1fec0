"""Frames of the node-local channel between a router and a version replica: named tensors as
raw bytes, never pickle.

A frame is a 4-byte big-endian header length, a JSON header, then ``header["body"]`` bytes:

* ``{"t": "hello", "token": ...}``: a connection's first frame, the replica's secret;
* ``{"t": "predict", "arrays": [[name, dtype, shape], ...]}``: a request, its arrays' bytes in
  the body, one after another, C order;
* ``{"t": "ok", "arrays": ...}``: the outputs, in the same form;
* ``{"t": "error", "message": ...}``: the model failed on this request;
* ``{"t": "unsupported", "message": ...}``: an answer the channel cannot carry (an array of
  Python objects): the caller sends it by Serve's handle instead.

Only plain numeric, boolean and fixed-width string dtypes travel; a header over
``MAX_HEADER_BYTES`` or a body over ``MAX_BODY_BYTES``, a dtype, shape or size that does not add
up, is a ``FrameError``: the connection is closed, nothing is decoded.
"""

from __future__ import annotations

import json
import math
import re
import struct
from typing import Any

import numpy as np

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 256 * 1024 * 1024
MAX_ARRAYS = 256
MAX_DIMS = 16
_DTYPE = re.compile(r"^[<>|=]?[biufcSU][0-9]{1,3}$")
_LEN = struct.Struct("!I")
PREFIX_BYTES = _LEN.size

Arrays = dict[str, np.ndarray]


class FrameError(ValueError):
    """A frame that is not one: the peer is not a channel peer, or is broken."""


class Unencodable(ValueError):
    """Arrays the channel does not carry (a dtype of Python objects, say)."""


def frame(header: dict[str, Any], body: bytes | bytearray = b"") -> bytes:
    """One frame: ``header`` (its ``body`` length set here) and ``body``."""
    head = json.dumps({**header, "body": len(body)}, separators=(",", ":")).encode()
    return b"".join((_LEN.pack(len(head)), head, body))


def encode_arrays(arrays: Arrays) -> tuple[list[list[Any]], bytes]:
    """``arrays`` as header entries and one body; ``Unencodable`` for a dtype not carried."""
    specs: list[list[Any]] = []
    parts: list[bytes] = []
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype.kind not in "biufcSU" or a.dtype.hasobject:
            raise Unencodable(f"array {name!r} has dtype {a.dtype}, which the channel does "
                              "not carry")
        specs.append([name, a.dtype.str, list(a.shape)])
        parts.append(np.ascontiguousarray(a).tobytes())
    return specs, b"".join(parts)


def predict_frame(arrays: Arrays) -> bytes:
    specs, body = encode_arrays(arrays)
    return frame({"t": "predict", "arrays": specs}, body)


def ok_frame(arrays: Arrays) -> bytes:
    specs, body = encode_arrays(arrays)
    return frame({"t": "ok", "arrays": specs}, body)


def header_length(prefix: bytes) -> int:
    (n,) = _LEN.unpack(prefix)
    if n == 0 or n > MAX_HEADER_BYTES:
        raise FrameError(f"a header of {n} bytes (at most {MAX_HEADER_BYTES})")
    return n


def parse_header(raw: bytes) -> dict[str, Any]:
    """The header, checked for its type and body length (not yet for its arrays)."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FrameError(f"a header that is not JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("t"), str):
        raise FrameError("a header without its type")
    body = doc.get("body")
    if not isinstance(body, int) or isinstance(body, bool) or not 0 <= body <= MAX_BODY_BYTES:
        raise FrameError(f"a body length of {body!r} (at most {MAX_BODY_BYTES})")
    return doc


def decode_arrays(specs: Any, body: bytearray) -> Arrays:
    """The arrays ``specs`` describe, read from ``body`` (writable, sharing its memory)."""
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise FrameError("arrays must be a list of at most "
                         f"{MAX_ARRAYS} [name, dtype, shape] entries")
    out: Arrays = {}
    at = 0
    for spec in specs:
        if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str)
                and isinstance(spec[1], str) and _DTYPE.match(spec[1])
                and isinstance(spec[2], list) and len(spec[2]) <= MAX_DIMS
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                        for d in spec[2])):
            raise FrameError(f"an array entry that is not [name, dtype, shape]: {spec!r:.200}")
        name, dt, shape = spec
        try:
            dtype = np.dtype(dt)
        except TypeError:
            raise FrameError(f"array {name!r}: dtype {dt!r}") from None
        if dtype.itemsize == 0:
            raise FrameError(f"array {name!r}: dtype {dt!r} has no size")
        n = math.prod(shape) * dtype.itemsize
        if at + n > len(body):
            raise FrameError(f"array {name!r} needs {n} bytes; the body has {len(body) - at}")
        out[name] = np.frombuffer(body, dtype=dtype, count=math.prod(shape),
                                  offset=at).reshape(shape)
        at += n
    if at != len(body):
        raise FrameError(f"{len(body) - at} bytes of the body belong to no array")
    return out
