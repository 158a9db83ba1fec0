"""Hostile input, as an attacker outside would send it: every decoder and every JSON route of the
router answers it with the project's 4xx error (``RequestError``), counts it as rejected, never
as a model failure, and keeps serving. Property-based (hypothesis) over bodies and headers, plus
the cases a security review found."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rayrollout.dataplane import protocol
from rayrollout.dataplane.aggregates import Collected
from rayrollout.dataplane.feedback import MAX_ID_CHARS, parse_feedback
from rayrollout.errors import BadRequest, RequestError
from rayrollout.ingress.inference import MAX_STICKY_KEY_CHARS, sticky_key, summary
from rayrollout.ingress.platform import RouterPlatform
from rayrollout.ingress.router import Router
from rayrollout.ingress.versions import LocalVersions
from rayrollout.runtime.base import OIP_TO_NUMPY, ModelSignature, TensorSpec
from rayrollout.runtime.fake import FakeRuntime
from tests.asgi import AsgiClient

MODEL = "m"
SIG = ModelSignature(
    inputs=(TensorSpec("input", "FP32", (-1, 4)), TensorSpec("mask", "BOOL", (-1, 4))),
    outputs=(TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 3))),
)
SIG1 = ModelSignature(inputs=(SIG.inputs[0],), outputs=SIG.outputs)
PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- strategies ---------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70), st.integers(-300, 300),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
)
json_values = st.recursive(
    scalars, lambda kids: st.one_of(st.lists(kids, max_size=6),
                                    st.dictionaries(st.text(max_size=6), kids, max_size=4)),
    max_leaves=24,
)
numbers = st.one_of(st.integers(-2, 300), st.floats(-1e6, 1e6, allow_nan=False), st.booleans())
rows = st.lists(st.lists(numbers, min_size=4, max_size=4), min_size=1, max_size=3)
dims = st.one_of(st.integers(0, 5), st.booleans(), st.integers(2**30, 2**72), st.floats(0, 4))
names = st.sampled_from(["input", "mask", "nope", ""])
datatypes = st.sampled_from([*OIP_TO_NUMPY, "BYTES", "fp32", ""])
params = st.one_of(
    st.none(), json_values,
    st.fixed_dictionaries({}, optional={"binary_data_size": st.one_of(st.integers(-1, 40),
                                                                      json_values),
                                        "binary_data": json_values,
                                        "binary_data_output": st.one_of(st.booleans(),
                                                                        json_values)}),
)


MUTABLE = ["name", "datatype", "shape", "data", "parameters"]


@st.composite
def tensors(draw: st.DrawFn, name: str, n: int) -> dict[str, Any]:
    """A valid tensor of ``n`` rows, then up to two of its fields made hostile."""
    values = st.booleans() if name == "mask" else numbers
    t: dict[str, Any] = {
        "name": name, "datatype": "BOOL" if name == "mask" else "FP32", "shape": [n, 4],
        "data": draw(st.lists(st.lists(values, min_size=4, max_size=4), min_size=n,
                              max_size=n)),
    }
    hostile = {"name": names, "datatype": datatypes, "shape": st.lists(dims, max_size=4),
               "data": st.one_of(rows, json_values), "parameters": params}
    for key in draw(st.lists(st.sampled_from(MUTABLE), max_size=2, unique=True)):
        t[key] = draw(hostile[key])
    return t


OUTPUT_REQUESTS = st.lists(
    st.fixed_dictionaries({"name": st.sampled_from(["label", "probabilities", "x"])},
                          optional={"parameters": params}), max_size=4)


@st.composite
def v2_docs(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 3))
    inputs = [draw(tensors(name, n)) for name in draw(st.sampled_from([["input"],
                                                                      ["input", "mask"]]))]
    doc: dict[str, Any] = {"inputs": draw(st.one_of(st.just(inputs), json_values))
                           if draw(st.booleans()) else inputs}
    for key, strategy in (
        ("outputs", st.one_of(OUTPUT_REQUESTS, json_values)),
        ("parameters", params),
        ("id", st.one_of(st.text(max_size=10), json_values)),
    ):
        if draw(st.booleans()):
            doc[key] = draw(strategy)
    return doc


def encode(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


# deep enough for a RecursionError even under hypothesis, which raises the recursion limit
nested = st.one_of(st.integers(1, 60), st.integers(3_000, 50_000)).map(
    lambda n: b"[" * n + b"]" * n)
v2_bodies = st.one_of(v2_docs().map(encode), st.binary(max_size=64), nested)
v1_bodies = st.one_of(
    st.fixed_dictionaries({"instances": st.one_of(rows, json_values)}).map(encode),
    st.fixed_dictionaries({"inputs": st.dictionaries(names, st.one_of(rows, json_values),
                                                     max_size=3)}).map(encode),
    json_values.map(encode), st.binary(max_size=64), nested,
)
feedback_items = st.fixed_dictionaries({}, optional={
    "request_id": st.one_of(st.text(max_size=300), json_values),
    "label": st.one_of(numbers, st.integers(-(10**400), 10**400), json_values)})
feedback_bodies = st.one_of(
    feedback_items.map(encode),
    st.fixed_dictionaries({"feedback": st.one_of(st.lists(feedback_items, max_size=4),
                                                 json_values)}).map(encode),
    json_values.map(encode), st.binary(max_size=64), nested,
)


@st.composite
def binary_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """Triton's binary extension: a JSON head, then raw tensor bytes (sizes often wrong)."""
    doc, need = draw(v2_docs()), 0
    if isinstance(doc["inputs"], list) and draw(st.booleans()):
        for t in (t for t in doc["inputs"] if isinstance(t, dict)):
            t.pop("data", None)
            size = draw(st.integers(0, 48))  # [n, 4] FP32 takes 16 n bytes, BOOL 4 n
            t["parameters"] = {"binary_data_size": size}
            need += size
    head = encode(doc)
    tail = draw(st.binary(min_size=max(0, need - 2), max_size=need + 8))
    odd = draw(st.integers(0, 3)) == 3  # mostly the true length of the head
    hlen = draw(st.text("0123456789-x ", max_size=6)) if odd else str(len(head))
    return head + tail, {protocol.HEADER_LENGTH: hlen}


# -- decoders -----------------------------------------------------------------------------------


def decodes_or_refuses(fn: Any, *args: Any) -> None:
    """``fn`` returns validated arrays or raises ``RequestError``; nothing else."""
    try:
        out = fn(*args)
    except RequestError:
        event("refused")
        return
    event("decoded")
    arrays = out[0] if isinstance(out, tuple) else out
    sig = args[-2]
    for spec in sig.inputs:
        assert arrays[spec.name].dtype == spec.dtype
        assert 0 < len(arrays[spec.name]) <= 8


@PROPERTY
@given(body=v2_bodies, sig=st.sampled_from([SIG, SIG1]))
def test_decode_v2_refuses_any_body_with_a_request_error(body: bytes, sig: ModelSignature
                                                         ) -> None:
    decodes_or_refuses(protocol.decode_v2, body, {}, sig, 8)


@PROPERTY
@given(req=binary_requests(), sig=st.sampled_from([SIG, SIG1]))
def test_decode_v2_refuses_any_binary_request_with_a_request_error(
    req: tuple[bytes, dict[str, str]], sig: ModelSignature
) -> None:
    decodes_or_refuses(protocol.decode_v2, req[0], req[1], sig, 8)


@PROPERTY
@given(body=v1_bodies, sig=st.sampled_from([SIG, SIG1]))
def test_decode_v1_refuses_any_body_with_a_request_error(body: bytes, sig: ModelSignature
                                                         ) -> None:
    decodes_or_refuses(protocol.decode_v1, body, sig, 8)


@PROPERTY
@given(body=feedback_bodies)
def test_parse_feedback_refuses_any_body_with_a_request_error(body: bytes) -> None:
    try:
        items = parse_feedback(body)
    except RequestError:
        return
    assert all(isinstance(r, str) and 0 < len(r) <= MAX_ID_CHARS and math.isfinite(v)
               for r, v in items)


OUTPUTS: dict[str, np.ndarray] = {"label": np.zeros(3, np.int64),
                                  "probabilities": np.zeros((3, 3), np.float32)}


@PROPERTY
@given(doc=v2_docs(), limit=st.sampled_from([None, 10, 1 << 20]))
def test_encode_v2_answers_or_refuses_any_request_document(doc: dict[str, Any],
                                                           limit: int | None) -> None:
    try:
        body, headers = protocol.encode_v2(MODEL, "v1", OUTPUTS, doc, {"f": 1}, limit)
    except RequestError:
        return
    assert limit is None or len(body) <= limit
    head = body[: int(headers.get(protocol.HEADER_LENGTH, len(body)))]
    names = [o["name"] for o in json.loads(head)["outputs"]]
    assert len(names) == len(set(names))  # each output at most once


# -- the review's cases, one by one -------------------------------------------------------------


@pytest.mark.parametrize("body, match", [
    (b'{"request_id": "a", "label": ' + b"9" * 400 + b"}", "finite number"),
    (b'{"request_id": "a", "label": -Infinity}', "finite number"),
    (b'{"request_id": "a", "label": NaN}', "finite number"),
    (json.dumps({"request_id": "a" * (MAX_ID_CHARS + 1), "label": 1}).encode(),
     f"at most {MAX_ID_CHARS}"),
    (b"[" * 100_000, "nested too deeply"),
])
def test_hostile_feedback_is_a_bad_request(body: bytes, match: str) -> None:
    with pytest.raises(BadRequest, match=match):
        parse_feedback(body)


def test_sticky_keys_longer_than_the_bound_are_refused() -> None:
    assert sticky_key({"k": "a" * MAX_STICKY_KEY_CHARS}, "k") == "a" * MAX_STICKY_KEY_CHARS
    assert sticky_key({}, "k") is None
    with pytest.raises(BadRequest, match="k is 257 characters"):
        sticky_key({"k": "a" * 257}, "k")


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1e300])
def test_a_prediction_summary_is_finite_or_nan(value: float) -> None:
    pred, prob = summary({"value": np.full((1, 1), value)}, "regression")
    assert (pred == value) if math.isfinite(value) else (pred != pred and prob != prob)
    pred, _ = summary({"label": np.full(1, value), "probabilities": np.ones((1, 3))},
                      "classification")
    assert pred != pred or pred == value


# -- the router's JSON routes, in process -------------------------------------------------------


def fixed(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = len(inputs["input"])
    return {"label": np.zeros(n, np.int64), "probabilities": np.full((n, 3), 1 / 3, np.float32)}


MAX_BODY = 1 << 17


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[AsgiClient, Router]]:
    versions = LocalVersions({"v1": FakeRuntime(SIG1, fixed), "v2": FakeRuntime(SIG1, fixed)})
    router = Router({"model": MODEL, "weights": {"v1": 50.0, "v2": 50.0}, "seed": 1,
                     "max_body_bytes": MAX_BODY, "max_batch_rows": 8},
                    RouterPlatform(versions, replica="r1"))
    with AsgiClient(router.http) as c:
        yield c, router


def delta(router: Router, c: AsgiClient) -> tuple[int, int, int]:
    stats = Collected.from_dict(c.run(router.collect())).stats.values()
    return (sum(s.rejected for s in stats), sum(s.failures for s in stats),
            sum(s.ok for s in stats))


def still_serves(c: AsgiClient) -> None:
    good = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1] * 4}]}
    r = c.post(f"/v2/models/{MODEL}/versions/v2/infer", json=good)
    assert r.status_code == 200, r.text


headers = st.dictionaries(
    st.sampled_from(["x-rollout-key", "x-request-id", protocol.HEADER_LENGTH, "content-type",
                     "x-rollout-version"]),
    st.one_of(st.text("abcxyz0123456789-", max_size=20),
              st.integers(0, 400).map(lambda n: "k" * n)),
    max_size=3,
)
V2_ROUTES = [f"/v2/models/{MODEL}/infer", f"/v2/models/{MODEL}/versions/v1/infer"]
anything = st.one_of(st.binary(max_size=64), nested,
                     st.integers(MAX_BODY - 10, MAX_BODY + 10).map(lambda n: b"x" * n))
no_headers: dict[str, str] = {}
requests = st.one_of(
    st.tuples(st.sampled_from(V2_ROUTES),
              st.one_of(st.tuples(v2_docs().map(encode), st.just(no_headers)),
                        binary_requests(), st.tuples(anything, st.just(no_headers)))),
    st.tuples(st.just(f"/v1/models/{MODEL}/predict"), st.tuples(v1_bodies, st.just(no_headers))),
    st.tuples(st.just(f"/v1/models/{MODEL}/feedback"),
              st.tuples(st.one_of(feedback_bodies, anything), st.just(no_headers))),
)


@PROPERTY
@given(request=requests, hdrs=st.one_of(st.just({}), headers))
def test_the_routes_answer_hostile_requests_with_4xx_count_them_and_keep_serving(
    served: tuple[AsgiClient, Router], request: tuple[str, tuple[bytes, dict[str, str]]],
    hdrs: dict[str, str]
) -> None:
    route, (body, body_headers) = request
    c, router = served
    delta(router, c)
    r = c.post(route, content=body, headers={**body_headers, **hdrs})
    event(f"HTTP {r.status_code}")
    assert r.status_code < 500, r.text
    rejected, failed, ok = delta(router, c)
    assert failed == 0
    if r.status_code >= 400:
        assert r.json()["code"] and r.json()["error"]
        assert rejected == 1, (r.status_code, r.text)
    else:
        assert rejected == 0 and ok == (0 if route.endswith("feedback") else 1)
    still_serves(c)
    assert delta(router, c) == (0, 0, 1)
