"""The OpenAPI documents of ``rayrollout.ingress.openapi``: valid OpenAPI 3.1, in step with the
routes the router and the admin API declare (both ways), the model's signature in the request
schemas, and the router's real answers valid against them. No Ray."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import numpy as np
import pytest
import schemathesis
from starlette.routing import BaseRoute, Mount, Route

from rayrollout.controller.phases import VERBS
from rayrollout.ingress.openapi import (
    DOC_ROUTES,
    admin_openapi,
    error_codes,
    inference_openapi,
    operations,
)
from rayrollout.ingress.platform import RouterPlatform
from rayrollout.ingress.router import Router
from rayrollout.ingress.versions import LocalVersions
from rayrollout.runtime.base import ModelSignature, TensorSpec
from rayrollout.runtime.fake import FakeRuntime
from tests.asgi import AsgiClient

MODEL = "m"
SIG = ModelSignature(
    inputs=(TensorSpec("input", "FP32", (-1, 4)), TensorSpec("mask", "BOOL", (-1, 4))),
    outputs=(TensorSpec("label", "INT64", (-1,)), TensorSpec("probabilities", "FP32", (-1, 3))),
)
SIG1 = ModelSignature(inputs=(SIG.inputs[0],), outputs=SIG.outputs)
CONFIG = {"model": MODEL, "weights": {"v1": 100.0}, "seed": 1, "max_batch_rows": 8}


def make_router(sig: ModelSignature = SIG1) -> Router:
    versions = LocalVersions({"v1": FakeRuntime(sig)})
    return Router(CONFIG, RouterPlatform(versions, replica="r1", background=lambda fn: fn()),
                  environ={})


def declared(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """(METHOD, path) of every route, mounted applications' routes included; a trailing slash
    is not part of a route (the router ignores it)."""
    out: set[tuple[str, str]] = set()
    for r in routes:
        if isinstance(r, Mount):
            mounted: Any = r.app  # a JsonApp: its routes are its Starlette router's
            out |= declared(r.routes or mounted.router.routes, prefix + r.path)
        elif isinstance(r, Route):
            path = (prefix + r.path).rstrip("/") or "/"
            out |= {(m, path) for m in r.methods or () if m != "HEAD"}
    return out


def doc_for(router: Router, sig: ModelSignature = SIG1) -> dict[str, Any]:
    return inference_openapi(MODEL, sig, list(router.table.live), router.cfg)


def validator(doc: dict[str, Any], ref: str) -> jsonschema.Draft202012Validator:
    """A validator of one schema of ``doc`` (its ``$ref``s resolved within ``doc``)."""
    return jsonschema.Draft202012Validator({"$ref": ref, "components": doc["components"]})


def answer_schema(doc: dict[str, Any], method: str, path: str, status: int,
                  media: str = "application/json") -> dict[str, Any]:
    response = doc["paths"][path][method.lower()]["responses"][str(status)]
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return dict(response["content"][media]["schema"])


def conforms(doc: dict[str, Any], method: str, path: str, status: int, body: Any) -> None:
    schema = answer_schema(doc, method, path, status)
    jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(body)


# -- the documents ------------------------------------------------------------------------------


def test_documents_are_valid_openapi() -> None:
    for doc in (doc_for(make_router()), doc_for(make_router(SIG), SIG), admin_openapi()):
        schemathesis.openapi.from_dict(doc).validate()


def test_every_declared_route_is_described_and_nothing_else() -> None:
    router = make_router()
    own = f"/rollout/{MODEL}"
    routes = declared(router.routes()) - DOC_ROUTES - {("GET", f"{own}/openapi.json")}
    described = (operations(doc_for(router)) | operations(admin_openapi())
                 | operations(admin_openapi(own)))
    assert described - routes == set(), "described but not declared"
    assert routes - described == set(), "declared but not described"


def test_admin_has_one_route_per_verb_with_the_verb_body_and_a_scoped_token() -> None:
    doc = admin_openapi()
    posts = {p.removeprefix("/rollout/") for m, p in operations(doc) if m == "POST"}
    assert posts == {"start", *VERBS}
    for verb in VERBS:
        op = doc["paths"][f"/rollout/{verb}"]["post"]
        assert op["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/VerbBody"}
        assert op["security"] == [{"bearer": []}]
        assert {"200", "400", "401", "403", "404", "409"} <= set(op["responses"])
    start = doc["paths"]["/rollout/start"]["post"]["requestBody"]
    assert start["required"] is True
    spec = validator(doc, "#/components/schemas/RolloutSpec")
    assert not spec.is_valid({"model": MODEL})  # stable, candidates, strategy are required
    assert doc["paths"]["/rollout"]["get"]["security"] == []  # the page loads without a token


def test_each_call_returns_a_new_document() -> None:
    a = admin_openapi()
    a["paths"].clear()
    assert admin_openapi()["paths"]


def test_error_codes_come_from_the_exception_tree() -> None:
    codes = error_codes()
    assert "bad_request" in codes[400] and "not_found" in codes[404]
    assert "payload_too_large" in codes[413] and "method_not_allowed" in codes[405]
    assert {"unauthorized"} <= set(codes[401]) and "illegal_transition" in codes[409]
    assert {"model_error", "internal_error"} <= set(codes[500]) and "model_timeout" in codes[504]


# -- the signature in the request schemas -------------------------------------------------------


def oip(arrays: dict[str, Any], shapes: dict[str, list[int]], types: dict[str, str]
        ) -> dict[str, Any]:
    return {"inputs": [{"name": n, "datatype": types[n], "shape": shapes[n], "data": d}
                       for n, d in arrays.items()]}


@pytest.fixture
def two_inputs() -> Iterator[tuple[dict[str, Any], jsonschema.Draft202012Validator]]:
    doc = doc_for(make_router(SIG), SIG)
    yield doc, validator(doc, "#/components/schemas/InferenceRequest")


def test_a_request_that_fits_the_signature_is_valid(two_inputs: Any) -> None:
    _, v = two_inputs
    types = {"input": "FP32", "mask": "BOOL"}
    shapes = {"input": [2, 4], "mask": [2, 4]}
    nested = {"input": [[0.5] * 4] * 2, "mask": [[True, False, 1, 0]] * 2}
    v.validate(oip(nested, shapes, types))
    flat = {"input": [0.5] * 8, "mask": [True] * 8}
    v.validate({**oip(flat, shapes, types), "id": "a", "outputs": [{"name": "label"}]})


@pytest.mark.parametrize("change", [
    {"name": "pixels"}, {"datatype": "FP64"}, {"shape": [2, 5]}, {"shape": [2]},
    {"shape": [9, 4]}, {"shape": [0, 4]}, {"data": [[3.5e38] * 4] * 2}, {"data": [["a"] * 4] * 2},
])
def test_a_request_off_the_signature_is_invalid(two_inputs: Any, change: dict[str, Any]
                                                ) -> None:
    _, v = two_inputs
    doc = oip({"input": [[0.5] * 4] * 2, "mask": [[True] * 4] * 2},
              {"input": [2, 4], "mask": [2, 4]}, {"input": "FP32", "mask": "BOOL"})
    doc["inputs"][0].update(change)
    assert not v.is_valid(doc)


def test_outputs_and_missing_inputs_are_checked(two_inputs: Any) -> None:
    _, v = two_inputs
    one = oip({"input": [[0.5] * 4]}, {"input": [1, 4]}, {"input": "FP32"})
    assert not v.is_valid(one)  # "mask" is missing
    both = oip({"input": [[0.5] * 4], "mask": [[1] * 4]}, {"input": [1, 4], "mask": [1, 4]},
               {"input": "FP32", "mask": "BOOL"})
    assert v.is_valid(both)
    assert not v.is_valid({**both, "outputs": [{"name": "logits"}]})
    assert not v.is_valid({**both, "id": "x" * 257})


def test_v1_rows_have_the_signature_shape() -> None:
    doc = doc_for(make_router())
    v = validator(doc, "#/components/schemas/PredictRequest")
    assert v.is_valid({"instances": [[1.0, 2.0, 3.0, 4.0]]})
    assert v.is_valid({"inputs": {"input": [[1.0, 2.0, 3.0, 4.0]] * 8}})
    assert not v.is_valid({"instances": [[1.0, 2.0, 3.0]]})
    assert not v.is_valid({"instances": [[1.0] * 4] * 9})  # over max_batch_rows
    assert not v.is_valid({"instances": []})


# -- the router's answers conform -----------------------------------------------------------------


def test_the_routers_answers_conform_to_the_document() -> None:
    router = make_router()
    doc = doc_for(router)
    infer = "/v2/models/{model}/infer"
    row = [[0.1, 0.2, 0.3, 0.4]]
    good = oip({"input": row}, {"input": [1, 4]}, {"input": "FP32"})
    with AsgiClient(router.http) as c:
        answers: list[tuple[str, str, str, Any]] = [
            ("GET", "/v2", "/v2", None),
            ("GET", "/v2/health/live", "/v2/health/live", None),
            ("GET", "/v2/health/ready", "/v2/health/ready", None),
            ("GET", f"/v2/models/{MODEL}", "/v2/models/{model}", None),
            ("GET", f"/v2/models/{MODEL}/versions/v1/ready",
             "/v2/models/{model}/versions/{version}/ready", None),
            ("GET", "/v2/models/other", "/v2/models/{model}", None),
            ("GET", "/v1/models", "/v1/models", None),
            ("GET", f"/v1/models/{MODEL}", "/v1/models/{model}", None),
            ("POST", f"/v2/models/{MODEL}/infer", infer, good),
            ("POST", f"/v2/models/{MODEL}/infer", infer, {"inputs": []}),
            ("POST", f"/v2/models/{MODEL}/versions/v9/infer",
             "/v2/models/{model}/versions/{version}/infer", good),
            ("POST", f"/v1/models/{MODEL}/predict", "/v1/models/{model}/predict",
             {"instances": row}),
            ("POST", f"/v1/models/{MODEL}/predict", "/v1/models/{model}/predict",
             {"instances": row * 9}),
            ("POST", f"/v1/models/{MODEL}/feedback", "/v1/models/{model}/feedback",
             {"request_id": "a", "label": 1}),
        ]
        seen = set()
        for method, url, path, body in answers:
            r = c.request(method, url, json=body)
            conforms(doc, method, path, r.status_code, r.json())
            seen.add(r.status_code)
        r = c.request("PUT", f"/v2/models/{MODEL}/infer")
        conforms(doc, "POST", infer, 405, r.json())
    assert seen == {200, 400, 401, 404, 413}


def test_the_v1_answer_names_every_output() -> None:
    doc = doc_for(make_router())
    outputs = {"label": np.array([1]), "probabilities": np.array([[0.1, 0.2, 0.7]])}
    body = {"model": MODEL, "model_version": "v1", "predictions": [1],
            "outputs": {k: v.tolist() for k, v in outputs.items()}}
    conforms(doc, "POST", "/v1/models/{model}/predict", 200, body)
    with pytest.raises(jsonschema.ValidationError):
        conforms(doc, "POST", "/v1/models/{model}/predict", 200,
                 {**body, "outputs": {"label": [1]}})
