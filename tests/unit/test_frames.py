"""The channel's frames: named arrays round-trip bit for bit, and nothing but a well-formed frame
of plain dtypes is decoded (no pickle, no object arrays, sizes that add up), however the stream
is cut."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from rayrollout.dataplane.frames import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    FrameBuffer,
    FrameError,
    Layout,
    Unencodable,
    decode_arrays,
    frame,
    header_length,
    ok_frame,
    parse_header,
    predict_frame,
)


def split(f: bytes) -> tuple[dict, bytearray]:
    """``f`` read back as the channel reads a frame off its socket."""
    buf = FrameBuffer()
    got = buf.feed(f)
    assert len(got) == 1 and buf.pending == 0  # the frame's own lengths covered every byte
    return got[0]


@pytest.mark.parametrize("arrays", [
    {"input": np.arange(128, dtype=np.float32).reshape(2, 64)},
    {"label": np.array([3, 1], dtype=np.int64),
     "probabilities": np.random.default_rng(0).random((2, 10)),
     "flag": np.array([True, False]),
     "name": np.array(["setosa", "virginica"]),
     "empty": np.zeros((0, 4), dtype=np.float16),
     "scalar": np.float64(2.5)},
    {"big_endian": np.arange(5, dtype=">i4"), "c": np.array([1 + 2j]),
     "non_contiguous": np.arange(20, dtype=np.int16).reshape(4, 5)[:, ::2]},
])
def test_arrays_round_trip_exactly(arrays: dict) -> None:
    head, body = split(predict_frame(arrays))
    assert head["t"] == "predict"
    out = decode_arrays(head["arrays"], body)
    assert list(out) == list(arrays)
    for k, a in arrays.items():
        a = np.asarray(a)
        assert out[k].dtype == a.dtype and out[k].shape == a.shape
        assert np.array_equal(out[k], a)
    for a in out.values():  # decoded arrays are writable (the body is a bytearray)
        assert a.flags.writeable


def test_object_arrays_are_not_carried() -> None:
    with pytest.raises(Unencodable, match="dtype object"):
        ok_frame({"y": np.array([{"a": 1}], dtype=object)})


@pytest.mark.parametrize("prefix", [0, MAX_HEADER_BYTES + 1, 2**32 - 1])
def test_header_length_is_bounded(prefix: int) -> None:
    with pytest.raises(FrameError):
        header_length(struct.pack("!I", prefix))


@pytest.mark.parametrize("raw", [
    b"\xff\xfe", b"not json", b"[1, 2]", b'{"body": 0}', b'{"t": "ok"}',
    b'{"t": "ok", "body": -1}', b'{"t": "ok", "body": true}',
    json.dumps({"t": "ok", "body": MAX_BODY_BYTES + 1}).encode(),
    b'{"t": "ok", "body": ' + b"9" * 5000 + b"}",  # an integer Python will not parse
    b"[" * 100_000,  # nested past the recursion limit
])
def test_malformed_headers_are_refused(raw: bytes) -> None:
    with pytest.raises(FrameError):
        parse_header(raw)


@pytest.mark.parametrize("specs, body", [
    ("x", b""),  # not a list
    ([["x", "O", [1]]], b"\0" * 8),  # Python objects
    ([["x", "|O8", [1]]], b"\0" * 8),
    ([["x", "[('a', 'O')]", [1]]], b"\0" * 8),  # a structured dtype
    ([["x", "<V8", [1]]], b"\0" * 8),  # raw void
    ([["x", "<f4", [-1]]], b""),  # a negative dimension
    ([["x", "<f4", [True]]], b"\0" * 4),
    ([["x", "<f4", [1] * 17]], b"\0" * 4),  # too many dimensions
    ([["x", "<f4", [10**12]]], b"\0" * 16),  # a small body claiming a huge array
    ([["x", "<f4", [2]]], b"\0" * 12),  # bytes left over
    ([["x", "<f4"]], b""),
    ([[1, "<f4", [1]]], b"\0" * 4),
    ([["x", "<U0", [1]]], b""),  # no size
    ([["x", "<f4", [0]]] * 257, b""),  # too many arrays
    ([["x", "<f4", [0, 2**70]]], b""),  # no items, but a shape numpy cannot hold
])
def test_malformed_arrays_are_refused(specs: object, body: bytes) -> None:
    with pytest.raises(FrameError):
        decode_arrays(specs, bytearray(body))


def test_a_frame_states_its_own_body_length() -> None:
    head, body = split(frame({"t": "error", "message": "boom", "body": 999}, b"abc"))
    assert head == {"t": "error", "message": "boom", "body": 3} and body == b"abc"


def test_frames_cut_anywhere_come_out_whole_and_in_order() -> None:
    """A socket gives bytes as they come: frames split at every byte, or several in one read,
    are the same frames."""
    x = {"input": np.arange(6, dtype=np.float32).reshape(1, 6)}
    stream = (frame({"t": "hello", "token": "t"}) + predict_frame(x)
              + frame({"t": "error", "message": "m"}) + ok_frame({"y": np.arange(3)}))
    buf = FrameBuffer()
    got = [f for i in range(len(stream)) for f in buf.feed(stream[i:i + 1])]
    assert [h["t"] for h, _ in got] == ["hello", "predict", "error", "ok"] and buf.pending == 0
    np.testing.assert_array_equal(decode_arrays(got[1][0]["arrays"], got[1][1])["input"],
                                  x["input"])
    whole = FrameBuffer().feed(stream)
    assert [h["t"] for h, _ in whole] == ["hello", "predict", "error", "ok"]


def test_a_repeated_layout_is_read_from_the_cache_and_gives_fresh_arrays() -> None:
    a = {"input": np.ones((1, 4), dtype=np.float32)}
    b = {"input": np.full((1, 4), 2, dtype=np.float32)}
    fa, fb = predict_frame(a), predict_frame(b)
    assert fa[:-16] == fb[:-16]  # the same header (16 bytes of body each)
    (ha, ba), (hb, bb) = FrameBuffer().feed(fa + fb)
    assert ha is hb and isinstance(ha["arrays"], Layout)  # parsed once
    xa, xb = decode_arrays(ha["arrays"], ba), decode_arrays(hb["arrays"], bb)
    assert xa["input"].tolist() == [[1.0] * 4] and xb["input"].tolist() == [[2.0] * 4]


def test_a_body_that_cannot_match_its_arrays_is_refused_before_it_is_read() -> None:
    head = json.dumps({"t": "predict", "arrays": [["x", "<f4", [1000]]], "body": 8}).encode()
    with pytest.raises(FrameError, match="the arrays take 4000"):
        FrameBuffer().feed(struct.pack("!I", len(head)) + head)  # no body sent at all


@pytest.mark.parametrize("opening", [
    frame({"t": "predict", "arrays": []}),  # not the expected first type
    struct.pack("!I", 40) + b'{"t":"hello","body":100000000}'.ljust(40),  # a body to hold
    struct.pack("!I", 5000),  # a first header over 1 KiB: refused before it arrives
])
def test_a_stream_that_must_open_with_a_hello_refuses_anything_else_on_its_header(
        opening: bytes) -> None:
    with pytest.raises(FrameError):
        FrameBuffer(first="hello").feed(opening)


def test_after_its_hello_a_stream_takes_any_frame() -> None:
    x = {"input": np.ones((1, 4), dtype=np.float32)}
    got = FrameBuffer(first="hello").feed(frame({"t": "hello", "token": "t"}) + predict_frame(x))
    assert [h["t"] for h, _ in got] == ["hello", "predict"]
