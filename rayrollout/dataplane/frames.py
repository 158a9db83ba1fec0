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
up, is a ``FrameError``: the connection is closed, nothing is decoded. The arrays of a
``predict`` or ``ok`` header are checked with the header, so a body that cannot match them is
refused before it is read.

**Cheap when the shapes repeat.** A router sends the same shapes over and over (one row of the
same inputs, the same outputs back), so the encoded header of each layout and the checked layout
of each header seen are kept (``CACHED_LAYOUTS`` of each, headers of at most
``CACHED_HEADER_BYTES``): a repeated frame costs no JSON either way.
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
MAX_ELEMENTS_OF_NONZERO_DIMS = 2**48  # numpy must be able to hold even a zero-size shape
CACHED_LAYOUTS = 256
CACHED_HEADER_BYTES = 1024
_DTYPE = re.compile(r"^[<>|=]?[biufcSU][0-9]{1,3}$")
_LEN = struct.Struct("!I")
PREFIX_BYTES = _LEN.size
ARRAY_FRAMES = ("predict", "ok")

Arrays = dict[str, np.ndarray]


class FrameError(ValueError):
    """A frame that is not one: the peer is not a channel peer, or is broken."""


class Unencodable(ValueError):
    """Arrays the channel does not carry (a dtype of Python objects, say)."""


class Layout(tuple[tuple[str, np.dtype, tuple[int, ...], int, int], ...]):
    """The checked arrays of a header: ``(name, dtype, shape, count, offset)`` each, in body
    order; ``nbytes`` is the body they need."""

    nbytes: int

    @classmethod
    def of(cls, specs: Any) -> Layout:
        if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
            raise FrameError("arrays must be a list of at most "
                             f"{MAX_ARRAYS} [name, dtype, shape] entries")
        entries = []
        at = 0
        for spec in specs:
            if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str)
                    and isinstance(spec[1], str) and _DTYPE.match(spec[1])
                    and isinstance(spec[2], list) and len(spec[2]) <= MAX_DIMS
                    and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                            for d in spec[2])):
                raise FrameError("an array entry that is not [name, dtype, shape]: "
                                 f"{spec!r:.200}")
            name, dt, shape = spec
            if math.prod(d or 1 for d in shape) > MAX_ELEMENTS_OF_NONZERO_DIMS:
                raise FrameError(f"array {name!r}: shape {shape!r:.200} is too large")
            try:
                dtype = np.dtype(dt)
            except TypeError:
                raise FrameError(f"array {name!r}: dtype {dt!r}") from None
            if dtype.itemsize == 0:
                raise FrameError(f"array {name!r}: dtype {dt!r} has no size")
            count = math.prod(shape)
            n = count * dtype.itemsize
            if at + n > MAX_BODY_BYTES:
                raise FrameError(f"array {name!r} of {n} bytes: the body would be over "
                                 f"{MAX_BODY_BYTES}")
            entries.append((name, dtype, tuple(shape), count, at))
            at += n
        layout = cls(entries)
        layout.nbytes = at
        return layout

    def read(self, body: bytearray) -> Arrays:
        """The arrays, sharing ``body``'s memory (writable: it is a bytearray)."""
        if len(body) != self.nbytes:
            raise FrameError(f"a body of {len(body)} bytes where the arrays take {self.nbytes}")
        try:
            return {name: np.frombuffer(body, dtype=dtype, count=count, offset=at).reshape(shape)
                    for name, dtype, shape, count, at in self}
        except ValueError as e:  # a shape numpy cannot hold
            raise FrameError(f"arrays numpy cannot make: {e!s:.200}") from None


# encoded headers by (type, layout), and parsed headers by their bytes: both bounded
_HEADS: dict[tuple[Any, ...], bytes] = {}
_PARSED: dict[bytes, dict[str, Any]] = {}


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= CACHED_LAYOUTS:
        cache.clear()
    cache[key] = value


def frame(header: dict[str, Any], body: bytes | bytearray = b"") -> bytes:
    """One frame: ``header`` (its ``body`` length set here) and ``body``."""
    head = json.dumps({**header, "body": len(body)}, separators=(",", ":")).encode()
    return b"".join((_LEN.pack(len(head)), head, body))


def _array_frame(kind: str, arrays: Arrays) -> bytes:
    key: list[Any] = [kind]
    parts: list[bytes] = []
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype.kind not in "biufcSU" or a.dtype.hasobject:
            raise Unencodable(f"array {name!r} has dtype {a.dtype}, which the channel does "
                              "not carry")
        key += (name, a.dtype.str, a.shape)
        parts.append(np.ascontiguousarray(a).tobytes())
    body = b"".join(parts)
    k = tuple(key)
    head = _HEADS.get(k)
    if head is None:
        specs = [[name, dt, list(shape)] for name, dt, shape in zip(k[1::3], k[2::3], k[3::3],
                                                                     strict=True)]
        raw = json.dumps({"t": kind, "arrays": specs, "body": len(body)},
                         separators=(",", ":")).encode()
        head = _LEN.pack(len(raw)) + raw
        if len(raw) <= CACHED_HEADER_BYTES:
            _remember(_HEADS, k, head)
    return head + body


def predict_frame(arrays: Arrays) -> bytes:
    return _array_frame("predict", arrays)


def ok_frame(arrays: Arrays) -> bytes:
    return _array_frame("ok", arrays)


def header_length(prefix: bytes | bytearray) -> int:
    (n,) = _LEN.unpack(prefix)
    if n == 0 or n > MAX_HEADER_BYTES:
        raise FrameError(f"a header of {n} bytes (at most {MAX_HEADER_BYTES})")
    return n


def parse_header(raw: bytes, cache: bool = True) -> dict[str, Any]:
    """The header, checked for its type and body length; a ``predict`` or ``ok`` header's
    ``arrays`` become their checked ``Layout``, whose size the body must be. Do not change the
    answer: a repeated header gets the same one (``cache=False``: neither read nor kept)."""
    doc = _PARSED.get(raw) if cache else None
    if doc is not None:
        return doc
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:  # not JSON, nested too deeply, huge integers
        raise FrameError(f"a header that is not JSON: {type(e).__name__}: {e!s:.200}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("t"), str):
        raise FrameError("a header without its type")
    body = doc.get("body")
    if not isinstance(body, int) or isinstance(body, bool) or not 0 <= body <= MAX_BODY_BYTES:
        raise FrameError(f"a body length of {body!r} (at most {MAX_BODY_BYTES})")
    if doc["t"] in ARRAY_FRAMES:
        layout = doc["arrays"] = Layout.of(doc.get("arrays"))
        if layout.nbytes != body:
            raise FrameError(f"a body of {body} bytes where the arrays take {layout.nbytes}")
        if cache and len(raw) <= CACHED_HEADER_BYTES:
            _remember(_PARSED, bytes(raw), doc)
    return doc


def decode_arrays(specs: Any, body: bytearray) -> Arrays:
    """The arrays ``specs`` (a ``Layout``, or the header's list) describe, read from ``body``
    (writable, sharing its memory)."""
    return (specs if isinstance(specs, Layout) else Layout.of(specs)).read(body)


class FrameBuffer:
    """Frames out of a byte stream as it arrives: ``feed`` what the socket gave, get back the
    frames it completed, ``(header, body)`` each. ``FrameError`` for a frame that is not one:
    the stream cannot be read further.

    ``first``: the type the stream's first frame must have, with no body and a header of at
    most ``CACHED_HEADER_BYTES`` (a server's ``hello``): a peer that opens with anything else
    is refused before a byte more is held, and its header is not cached."""

    __slots__ = ("_buf", "_first", "_head")

    def __init__(self, first: str | None = None) -> None:
        self._buf = bytearray()
        self._head: dict[str, Any] | None = None  # the header of the frame being read
        self._first = first

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytearray]]:
        buf = self._buf
        buf += data
        frames = []
        while True:
            head = self._head
            if head is None:
                if len(buf) < PREFIX_BYTES:
                    break
                n = header_length(buf[:PREFIX_BYTES])
                first = self._first
                if first is not None and n > CACHED_HEADER_BYTES:
                    raise FrameError(f"a first header of {n} bytes where a {first!r} belongs")
                if len(buf) < PREFIX_BYTES + n:
                    break
                head = parse_header(bytes(buf[PREFIX_BYTES:PREFIX_BYTES + n]),
                                    cache=first is None)
                if first is not None:
                    if head["t"] != first or head["body"]:
                        raise FrameError(f"a stream that opened with a {head['t']!r} frame of "
                                         f"{head['body']} bytes where a {first!r} belongs")
                    self._first = None
                del buf[:PREFIX_BYTES + n]
            size = head["body"]
            if len(buf) < size:
                self._head = head
                break
            self._head = None
            body = buf[:size]
            del buf[:size]
            frames.append((head, body))
        return frames

    @property
    def pending(self) -> int:
        """Bytes received that no complete frame holds yet."""
        return len(self._buf)
