"""Decoding, validation and encoding of the inference wire formats: pure, no Ray."""

from __future__ import annotations

import json

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


def tensor(data: object, shape: list[int], name: str = "input", datatype: str = "FP32") -> dict:
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
