"""Decoding, validation and encoding of the inference wire formats: pure, no Ray."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from rayrollout.dataplane import protocol
from rayrollout.errors import BadRequest, PayloadTooLarge
from rayrollout.runtime.base import ModelSignature, TensorSpec

SIG = ModelSignature(
    inputs=(TensorSpec("input", "FP32", (-1, 4)),),
    outputs=(TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 3))),
)
ROW = [0.1, 0.2, 0.3, 0.4]


def v2(inputs: list[dict], **extra: object) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def tensor(data: object, shape: list[Any], name: str = "input", datatype: str = "FP32") -> dict:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def test_v1_instances_and_named_inputs_decode_to_the_same_batch() -> None:
    a = protocol.decode_v1(json.dumps({"instances": [ROW, ROW]}).encode(), SIG, 10)
    b = protocol.decode_v1(json.dumps({"inputs": {"input": [ROW, ROW]}}).encode(), SIG, 10)
    assert a["input"].dtype == np.float32 and a["input"].shape == (2, 4)
    np.testing.assert_array_equal(a["input"], b["input"])


def test_v2_flat_and_nested_data() -> None:
    flat, _ = protocol.decode_v2(v2([tensor(ROW * 2, [2, 4])]), {}, SIG, 10)
    nested, doc = protocol.decode_v2(v2([tensor([ROW, ROW], [2, 4])], id="r1"), {}, SIG, 10)
    np.testing.assert_array_equal(flat["input"], nested["input"])
    assert doc["id"] == "r1"


def test_v2_binary_tensor_extension() -> None:
    arr = np.arange(8, dtype=np.float32).reshape(2, 4)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [2, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": arr.nbytes},
                }
            ]
        }
    ).encode()
    got, _ = protocol.decode_v2(
        head + arr.tobytes(), {protocol.HEADER_LENGTH: str(len(head))}, SIG, 10
    )
    np.testing.assert_array_equal(got["input"], arr)


@pytest.mark.parametrize(
    "body, match",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "non-empty 'inputs'"),
        (v2([tensor(ROW, [1, 4], name="x")]), "unknown input 'x'"),
        (v2([tensor(ROW, [1, 4], datatype="INT64")]), "datatype='INT64', model expects 'FP32'"),
        (v2([tensor(ROW[:3], [1, 3])]), r"shape \[1, 3\], model expects \[-1, 4\]"),
        (v2([tensor(ROW, [1, 5])]), "4 values but shape"),
        (v2([tensor([0.1, float("nan"), 0.3, 0.4], [1, 4])]), "NaN or Inf"),
        (v2([tensor(["a", "b", "c", "d"], [1, 4])]), "must hold numbers"),
        (v2([tensor([[1, 2], [3]], [2, 2])]), "ragged"),
        (v2([tensor(ROW, [1, -4])]), "list of integers >= 0"),
        (v2([tensor(ROW, [1, 4]), tensor(ROW, [1, 4])]), "appears twice"),
        (v2([tensor([], [0, 4])]), "empty"),
    ],
)
def test_bad_v2_requests_name_the_problem(body: bytes, match: str) -> None:
    with pytest.raises(BadRequest, match=match):
        protocol.decode_v2(body, {}, SIG, 10)


def test_v1_errors() -> None:
    with pytest.raises(BadRequest, match="'instances'"):
        protocol.decode_v1(b'{"rows": []}', SIG, 10)
    with pytest.raises(BadRequest, match="Inf"):
        protocol.decode_v1(b'{"instances": [[1, 2, 3, Infinity]]}', SIG, 10)


def test_oversized_batch_is_413() -> None:
    with pytest.raises(PayloadTooLarge, match="11 rows"):
        protocol.decode_v1(json.dumps({"instances": [ROW] * 11}).encode(), SIG, 10)


def test_bad_header_length() -> None:
    with pytest.raises(BadRequest, match="outside the body"):
        protocol.decode_v2(b"{}", {protocol.HEADER_LENGTH: "99"}, SIG, 10)


def test_encode_v2_json_and_binary_outputs() -> None:
    out = {"label": np.array([2, 0]), "probabilities": np.full((2, 3), 0.5, dtype=np.float32)}
    body, headers = protocol.encode_v2("m", "v1", out, {"id": "x"}, {"threshold": 0.7})
    doc = json.loads(body)
    assert doc["model_version"] == "v1" and doc["id"] == "x"
    assert doc["outputs"][0] == {"name": "label", "datatype": "INT64", "shape": [2], "data": [2, 0]}
    assert json.loads(doc["parameters"]["flags"]) == {"threshold": 0.7}
    req = {"outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}
    body, headers = protocol.encode_v2("m", "v1", out, req, {})
    n = int(headers[protocol.HEADER_LENGTH])
    head = json.loads(body[:n])
    assert [o["name"] for o in head["outputs"]] == ["probabilities"]
    got = np.frombuffer(body[n:], dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(got, out["probabilities"])
    with pytest.raises(BadRequest, match="'nope'"):
        protocol.encode_v2("m", "v1", out, {"outputs": [{"name": "nope"}]}, {})


def test_encode_v1() -> None:
    out = {"label": np.array([1]), "probabilities": np.array([[0.2, 0.8, 0.0]])}
    doc = json.loads(protocol.encode_v1("m", "v2", out, {}))
    assert doc["predictions"] == [1] and doc["model_version"] == "v2" and "flags" not in doc


def test_tensors_over_the_transport_limit_are_413_not_a_model_failure() -> None:
    arrays = {"input": np.zeros((8, 4), np.float32)}  # 128 bytes
    protocol.check_transport_size(arrays, None)
    protocol.check_transport_size(arrays, 128)
    with pytest.raises(PayloadTooLarge, match="128 bytes are over the 127 bytes") as e:
        protocol.check_transport_size(arrays, 127)
    assert "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH" in str(e.value)


def test_the_transport_limit_follows_serves_handle_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ray.serve._private import constants

    from rayrollout.serving.handles import TRANSPORT_HEADROOM_BYTES, handle_transport_limit

    monkeypatch.setattr(constants, "RAY_SERVE_USE_GRPC_BY_DEFAULT", False)
    assert handle_transport_limit() is None  # actor calls: no cap
    monkeypatch.setattr(constants, "RAY_SERVE_USE_GRPC_BY_DEFAULT", True)
    monkeypatch.setattr(constants, "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH", 4 << 20)
    assert handle_transport_limit() == (4 << 20) - TRANSPORT_HEADROOM_BYTES


# -- hostile input: every problem is a RequestError (4xx), never another exception -------------

SIG8 = ModelSignature(inputs=(TensorSpec("input", "INT8", (-1, 4)),), outputs=SIG.outputs)
SIGU8 = ModelSignature(inputs=(TensorSpec("input", "UINT8", (-1, 4)),), outputs=SIG.outputs)
SIGB = ModelSignature(inputs=(TensorSpec("input", "BOOL", (-1, 4)),), outputs=SIG.outputs)
SIGF16 = ModelSignature(inputs=(TensorSpec("input", "FP16", (-1, 4)),), outputs=SIG.outputs)
SIGBYTES = ModelSignature(inputs=(TensorSpec("input", "BYTES", (-1, 1)),), outputs=SIG.outputs)
NESTED = b"[" * 1000 + b"]" * 1000


def binary(name: str, shape: list[int], datatype: str, payload: bytes, size: int) -> tuple:
    head = json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": datatype,
                                   "parameters": {"binary_data_size": size}}]}).encode()
    return head + payload, {protocol.HEADER_LENGTH: str(len(head))}


@pytest.mark.parametrize(
    "body, sig, match",
    [
        (b'{"inputs": ' + NESTED + b"}", SIG, "nested"),
        (b'{"inputs": [{"name": "input", "data": ' + NESTED + b"}]}", SIG, "nested"),
        (v2([{**tensor(ROW, [1, 4]), "parameters": [1]}]), SIG, r"inputs\[0\].parameters"),
        (v2([{**tensor(ROW, [1, 4]), "parameters": "x"}]), SIG, r"inputs\[0\].parameters"),
        (v2([tensor(ROW, [1, 4])], parameters=[1]), SIG, "'parameters' must be an object"),
        (v2([tensor(ROW, [1, 4])], parameters={"binary_data_output": "yes"}), SIG,
         "binary_data_output"),
        (v2([tensor(ROW, [True, 4])]), SIG, "list of integers >= 0"),
        (v2([tensor(ROW, [1, 4.0])]), SIG, "list of integers >= 0"),
        (v2([tensor([], [2**70, 0])]), SIG, "shape"),
        (v2([tensor([], [0] * 40)]), SIG, "shape"),
        (v2([tensor(ROW, [1, 4], datatype="BYTES")]), SIG, "'BYTES' is not supported"),
        (v2([tensor(["a"], [1, 1], datatype="BYTES")]), SIGBYTES, "'BYTES' is not supported"),
        (v2([tensor([1000, 1, 2, 3], [1, 4], datatype="INT8")]), SIG8, "out of range for INT8"),
        (v2([tensor([-1, 1, 2, 3], [1, 4], datatype="UINT8")]), SIGU8, "out of range for UINT8"),
        (v2([tensor([256.0, 1, 2, 3], [1, 4], datatype="UINT8")]), SIGU8, "out of range"),
        (v2([tensor([0.5, 1, 0, 1], [1, 4], datatype="BOOL")]), SIGB, "BOOL"),
        (v2([tensor([2, 1, 0, 1], [1, 4], datatype="BOOL")]), SIGB, "BOOL"),
        (v2([tensor([1e6, 1, 0, 1], [1, 4], datatype="FP16")]), SIGF16, "out of range for FP16"),
        (v2([tensor([1e300, 1, 0, 1], [1, 4])]), SIG, "out of range for FP32"),
        (v2([tensor(ROW, [1, 4])], id=["x"]), SIG, "'id'"),
        (v2([tensor(ROW, [1, 4])], id="x" * 10_000), SIG, "'id'"),
    ],
)
def test_hostile_v2_requests_are_bad_requests(body: bytes, sig: ModelSignature, match: str
                                             ) -> None:
    with pytest.raises(BadRequest, match=match):
        protocol.decode_v2(body, {}, sig, 10)


@pytest.mark.parametrize(
    "args, sig, match",
    [
        (binary("input", [1, 4], "FP32", b"x" * 16, 15), SIG, "multiple of 4"),
        (binary("input", [1, 1], "BYTES", b"abcd", 4), SIGBYTES, "'BYTES' is not supported"),
        (binary("input", [1, 4], "BOOL", b"\x00\x01\x02\x00", 4), SIGB, "BOOL"),
        (binary("input", [True, 4], "FP32", b"x" * 16, 16), SIG, "list of integers >= 0"),
    ],
)
def test_hostile_binary_tensors_are_bad_requests(args: tuple, sig: ModelSignature, match: str
                                                 ) -> None:
    body, headers = args
    with pytest.raises(BadRequest, match=match):
        protocol.decode_v2(body, headers, sig, 10)


def test_hostile_v1_requests_are_bad_requests() -> None:
    with pytest.raises(BadRequest, match="nested"):
        protocol.decode_v1(b'{"instances": ' + NESTED + b"}", SIG, 10)
    with pytest.raises(BadRequest, match="out of range for INT8"):
        protocol.decode_v1(json.dumps({"instances": [[1000, 1, 2, 3]]}).encode(), SIG8, 10)
    with pytest.raises(BadRequest, match="BOOL"):
        protocol.decode_v1(json.dumps({"instances": [[0.5, 1, 0, 1]]}).encode(), SIGB, 10)


def test_in_range_values_still_decode() -> None:
    got = protocol.decode_v1(json.dumps({"instances": [[-128, 127, 0, 1.0]]}).encode(), SIG8, 10)
    assert got["input"].tolist() == [[-128, 127, 0, 1]]
    got = protocol.decode_v1(json.dumps({"instances": [[True, 0, 1, 1.0]]}).encode(), SIGB, 10)
    assert got["input"].tolist() == [[True, False, True, True]]
    body, headers = binary("input", [1, 4], "BOOL", b"\x00\x01\x01\x00", 4)
    assert protocol.decode_v2(body, headers, SIGB, 10)[0]["input"].tolist() == [
        [False, True, True, False]]


@pytest.mark.parametrize(
    "outputs, match",
    [
        ([{"name": "label"}, {"name": "label"}], "'label' is requested twice"),
        ([{"name": "probabilities"}] * 200, "'probabilities' is requested twice"),
        ([{"name": "nope"}], "'nope' is not an output"),
        ([{"name": "label", "parameters": [1]}], r"outputs\[0\].parameters"),
        ([{"name": "label", "parameters": {"binary_data": "no"}}], "binary_data"),
        ("label", "'outputs' must be a list"),
        (["label"], r"outputs\[0\] must be an object"),
    ],
)
def test_requested_outputs_are_checked_before_the_model_runs(outputs: object, match: str
                                                             ) -> None:
    with pytest.raises(BadRequest, match=match):
        protocol.decode_v2(v2([tensor(ROW, [1, 4])], outputs=outputs), {}, SIG, 10)


def test_encode_v2_refuses_duplicates_and_bounds_the_response() -> None:
    out: dict[str, np.ndarray] = {"label": np.zeros(1024, np.int64),
                                  "probabilities": np.zeros((1024, 3), np.float32)}
    with pytest.raises(BadRequest, match="twice"):
        protocol.encode_v2("m", "v1", out, {"outputs": [{"name": "label"}] * 2}, {})
    with pytest.raises(PayloadTooLarge, match=r"response .* over the limit of 4096 bytes"):
        protocol.encode_v2("m", "v1", out, {}, {}, max_bytes=4096)
    binary_req = {"parameters": {"binary_data_output": True}}
    with pytest.raises(PayloadTooLarge, match="over the limit of 4096 bytes"):
        protocol.encode_v2("m", "v1", out, binary_req, {}, max_bytes=4096)
    with pytest.raises(PayloadTooLarge, match="over the limit of 4096 bytes"):
        protocol.encode_v1("m", "v1", out, {}, max_bytes=4096)
    body, _ = protocol.encode_v2("m", "v1", out, binary_req, {}, max_bytes=1 << 20)
    assert len(body) < 1 << 20
