"""OpenAPI 3.1 descriptions of the router's HTTP API, as this router answers it. Pure code.

* ``inference_openapi(model, signature, versions)``: the Open Inference Protocol REST routes
  (``/v2/...``, after the protocol's published description, ``kserve/open-inference-protocol``)
  and the ``/v1`` JSON routes of one model, with its signature filled in: input names,
  datatypes, shapes and value ranges become the request schemas; outputs the response schemas.
* ``admin_openapi()``: the admin API under ``/rollout`` (``rayrollout.ingress.admin``), one
  route per verb of ``rayrollout.controller.phases.VERBS``, its bodies from the pydantic models
  that parse them (``VerbBody``, ``RolloutSpec``).

Guarantees:

* Together the two documents describe every route ``Router.routes()`` declares and no other,
  except ``DOC_ROUTES``, the routes that serve the documents themselves
  (``tests/unit/ingress/test_openapi.py`` compares them, so they cannot drift apart).
* Every error the router answers is documented with its status and the ``code`` values of
  ``rayrollout.errors`` that give it (``HTTP_STATUS``); bodies are ``{"error", "code"}``, and
  an internal 500 adds ``error_id``. A schema-valid request may still be refused (a shape that
  disagrees with its data, a batch over the limit): JSON Schema cannot say everything the
  decoders check, so the documents describe a superset of what is accepted, never less.
* Each call returns a new document: a caller may change it (schemathesis does).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import numpy as np

from rayrollout._version import __version__
from rayrollout.controller.phases import VERBS
from rayrollout.dataplane import feedback, protocol, tensors
from rayrollout.errors import HTTP_STATUS, RolloutError
from rayrollout.ingress.admin import MAX_HISTORY_LIMIT, VerbBody
from rayrollout.ingress.auth import Scope
from rayrollout.ingress.inference import MAX_STICKY_KEY_CHARS
from rayrollout.runtime.base import OIP_TO_NUMPY, ModelSignature, TensorSpec
from rayrollout.spec import RolloutSpec, RouterConfig

OPENAPI = "3.1.0"
ADMIN_PREFIX = "/rollout"
# The routes that serve these documents; they are not described in them.
DOC_ROUTES = frozenset({("GET", "/v2/models/{model}/openapi.json"),
                        ("GET", f"{ADMIN_PREFIX}/openapi.json")})
_REFS = "#/components/schemas/{model}"
Schema = dict[str, Any]


def _ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _obj(props: dict[str, Schema], required: Iterable[str] = (), extra: bool = False,
         **kw: Any) -> Schema:
    return {"type": "object", "properties": props, "required": list(required),
            "additionalProperties": extra, **kw}


def _array(items: Schema, least: int = 0, most: int | None = None) -> Schema:
    s: Schema = {"type": "array", "items": items, "minItems": least}
    return s if most is None else {**s, "maxItems": most}


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> Schema:
    out: Schema = {"description": description, "content": {"application/json": {"schema": schema}}}
    return {**out, "headers": headers} if headers else out


# -- errors ---------------------------------------------------------------------------------------


def _status(cls: type[RolloutError]) -> int:
    return next((s for c, s in HTTP_STATUS if issubclass(cls, c)), 500)


def _subclasses(cls: type[RolloutError]) -> list[type[RolloutError]]:
    out = [c for c in cls.__subclasses__() if c.__module__ == RolloutError.__module__]
    return out + [d for c in out for d in _subclasses(c)]


@cache
def error_codes() -> dict[int, tuple[str, ...]]:
    """Status -> the ``code`` values of ``rayrollout.errors`` answered with it (an internal 500
    is ``internal_error``: ``rayrollout.ingress.http.JsonApp``)."""
    codes: dict[int, set[str]] = {500: {"internal_error"}}
    classes: list[type[RolloutError]] = [RolloutError, *_subclasses(RolloutError)]
    for cls in classes:
        codes.setdefault(_status(cls), set()).add(cls.code)
    return {s: tuple(sorted(c)) for s, c in sorted(codes.items())}


ERRORS = {  # status -> what it means on these routes
    400: "the request is malformed or does not fit the model (the message names the field)",
    401: "no token, or not a configured one (``WWW-Authenticate: Bearer``)",
    403: "a valid token without the scope this route needs",
    404: "unknown model, version that is not live, or nothing of that name",
    405: "the path exists for other methods (listed in ``Allow``)",
    409: "valid, but not in the rollout's current phase",
    413: "body, batch, tensors or answer over the configured limits",
    500: "the model failed (``model_error``, with an error id), or an internal error "
         "(``internal_error`` with ``error_id``; the details are in the router's log)",
    503: "not ready: the version has not described its inputs yet, or no controller answers "
         "(JSON); or Ray Serve's proxy dropped the request under back-pressure (text)",
    504: "the version did not answer within the router's ``request_timeout_s``",
}


def _error_components() -> tuple[dict[str, Schema], dict[str, Schema]]:
    schemas, responses = {}, {}
    for status, codes in error_codes().items():
        if status not in ERRORS:
            continue
        props: dict[str, Schema] = {"error": {"type": "string", "minLength": 1},
                 "code": {"type": "string", "enum": list(codes)}}
        if status == 500:
            props["error_id"] = {"type": "string", "pattern": "^[0-9a-f]+$"}
        schemas[f"Error{status}"] = _obj(props, ["error", "code"])
        headers = {}
        if status == 405:
            headers = {"Allow": {"required": True, "schema": {"type": "string"}}}
        if status == 401:
            headers = {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}
        responses[f"E{status}"] = _json(_ref(f"Error{status}"), ERRORS[status], headers)
    responses["E503"]["content"]["text/plain"] = {"schema": {"type": "string"}}
    return schemas, responses


def _errors(*statuses: int) -> dict[str, Schema]:
    return {str(s): _ref(f"E{s}", "responses") for s in sorted({*statuses, 405, 500})}


# -- the model's signature as schemas -------------------------------------------------------------


def value_schema(datatype: str) -> Schema:
    """One value of an OIP datatype as JSON, in the range the decoders accept."""
    dtype = OIP_TO_NUMPY[datatype]
    if dtype.kind == "b":
        return {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}]}
    if dtype.kind == "f":
        big = float(np.finfo(dtype).max)
        return {"type": "number", "minimum": -big, "maximum": big}
    info = np.iinfo(dtype)
    return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}


def _dim(d: int, batch: bool, max_rows: int) -> Schema:
    if d >= 0:
        return {"const": d}
    if batch:
        return {"type": "integer", "minimum": 1, "maximum": max_rows}
    return {"type": "integer", "minimum": 0, "maximum": tensors.MAX_DIM}


def _rows(t: TensorSpec, max_rows: int) -> Schema:
    """``t``'s values nested as its shape, dim 0 the batch (at most ``max_rows`` rows)."""
    inner = value_schema(t.datatype)
    for d in reversed(t.shape[1:]):
        inner = _array(inner, d, d) if d >= 0 else _array(inner)
    if not t.shape:
        return _array(inner, 1, 1)
    first = t.shape[0]
    return _array(inner, 1, max_rows) if first < 0 else _array(inner, first, first)


def _flat(t: TensorSpec, max_rows: int) -> Schema:
    """``t``'s values flattened row-major; counted where every dim but the batch is fixed."""
    value = value_schema(t.datatype)
    rest = t.shape[1:]
    if not t.shape or any(d < 0 for d in rest):
        return _array(value, 1 if not t.shape else 0)
    per_row = math.prod(rest)
    rows = (1, max_rows) if t.shape[0] < 0 else (t.shape[0], t.shape[0])
    return _array(value, per_row * rows[0], per_row * rows[1])


def _oip_input(t: TensorSpec, max_rows: int) -> Schema:
    shape = [_dim(d, i == 0, max_rows) for i, d in enumerate(t.shape)]
    return _obj({
        "name": {"const": t.name},
        "datatype": {"const": t.datatype},
        "shape": {"type": "array", "prefixItems": shape, "items": False,
                  "minItems": len(shape), "maxItems": len(shape)},
        "data": {"anyOf": [_rows(t, max_rows), _flat(t, max_rows)],
                 "description": "values, nested as the shape or flat in row-major order"},
        "parameters": {"type": "object"},
    }, ["name", "datatype", "shape", "data"], extra=True, title=f"input {t.name}")


def _oip_output(t: TensorSpec) -> Schema:
    n = len(t.shape)
    return _obj({
        "name": {"const": t.name},
        "datatype": {"const": t.datatype},
        "shape": _array({"type": "integer", "minimum": 0}, n, n),
        "data": _array(value_schema(t.datatype)),
        "parameters": _obj({"binary_data_size": {"type": "integer", "minimum": 0}}),
    }, ["name", "datatype", "shape"], title=f"output {t.name}")


def _v1_outputs(sig: ModelSignature) -> Schema:
    def nested(t: TensorSpec) -> Schema:
        inner = value_schema(t.datatype)
        for d in reversed(t.shape):
            inner = _array(inner, d, d) if d >= 0 else _array(inner)
        return inner

    return _obj({t.name: nested(t) for t in sig.outputs}, [t.name for t in sig.outputs])


def _metadata_tensors(specs: Sequence[TensorSpec]) -> Schema:
    return {"const": [t.to_dict() for t in specs]}


# -- the inference document -----------------------------------------------------------------------


def inference_openapi(model: str, signature: ModelSignature, versions: Sequence[str],
                      config: RouterConfig | None = None) -> dict[str, Any]:
    """The OIP and ``/v1`` routes of ``model`` as this router answers them. ``versions``: the
    live versions (pinnable by path or header), all serving ``signature``; ``config``: the
    router's (header names, batch limit), the defaults when None."""
    cfg = config or RouterConfig(model=model, weights={versions[0]: 100.0})
    sig, rows = signature, cfg.max_batch_rows
    err_schemas, err_responses = _error_components()
    vs = list(versions)
    out_names = [t.name for t in sig.outputs]
    schemas: dict[str, Schema] = {
        **err_schemas,
        "ServerMetadata": _obj({"name": {"type": "string"}, "version": {"type": "string"},
                                "extensions": _array({"type": "string"})},
                               ["name", "version", "extensions"]),
        "Live": _obj({"live": {"const": True}}, ["live"]),
        "Ready": _obj({"ready": {"type": "boolean"}}, ["ready"]),
        "ModelMetadata": _obj({
            "name": {"const": model},
            "versions": _array({"enum": vs}, 1),
            "platform": {"type": "string"},
            "inputs": _metadata_tensors(sig.inputs),
            "outputs": _metadata_tensors(sig.outputs),
        }, ["name", "versions", "platform", "inputs", "outputs"]),
        "InferenceRequest": _obj({
            "id": {"type": "string", "maxLength": protocol.MAX_ID_CHARS},
            "parameters": _obj({"binary_data_output": {"type": "boolean"}}, extra=True),
            "inputs": _array({"anyOf": [_oip_input(t, rows) for t in sig.inputs]},
                             len(sig.inputs), len(sig.inputs)),
            "outputs": _array(_obj({
                "name": {"enum": out_names},
                "parameters": _obj({"binary_data": {"type": "boolean"}}, extra=True),
            }, ["name"], extra=True), 0, len(out_names)),
        }, ["inputs"], extra=True),
        "InferenceResponse": _obj({
            "model_name": {"const": model},
            "model_version": {"enum": vs},
            "id": {"type": "string"},
            "parameters": _obj({"flags": {"type": "string",
                                          "description": "the version's flags, as JSON"}}),
            "outputs": _array({"anyOf": [_oip_output(t) for t in sig.outputs]}, 1,
                              len(sig.outputs)),
        }, ["model_name", "model_version", "outputs"]),
        "PredictRequest": _predict_request(sig, rows),
        "PredictResponse": _obj({
            "model": {"const": model},
            "model_version": {"enum": vs},
            "predictions": _array({}),
            "outputs": _v1_outputs(sig),
            "flags": {"type": "object"},
        }, ["model", "model_version", "outputs"]),
        "Label": _obj({"request_id": {"type": "string", "minLength": 1,
                                      "maxLength": feedback.MAX_ID_CHARS},
                       "label": {"type": "number"}}, ["request_id", "label"], extra=True),
        "Feedback": {"anyOf": [
            _ref("Label"),
            _obj({"feedback": _array(_ref("Label"), 1, feedback.MAX_ITEMS)}, ["feedback"],
                 extra=True),
        ]},
        "FeedbackAnswer": _feedback_answer(),
        "ModelInfo": _obj({
            "name": {"const": model},
            "epoch": {"type": "integer", "minimum": 0},
            "versions": _array(_obj({
                "name": {"type": "string"}, "weight": {"type": "number"},
                "shadow": {"type": "boolean"}, "shadow_fraction": {"type": "number"},
            }, ["name", "weight", "shadow", "shadow_fraction"]), 1),
        }, ["name", "epoch", "versions"]),
        "Models": _obj({"models": _array(_ref("ModelInfo"), 1, 1)}, ["models"]),
    }
    get = _operations_v2(sig, vs, cfg)
    return {
        "openapi": OPENAPI,
        "info": {"title": f"rayrollout router: model {model}", "version": __version__,
                 "description": "The Open Inference Protocol (v2) REST API and the /v1 JSON "
                                "API of one model, as rayrollout's router answers them."},
        "paths": get,
        "components": {
            "schemas": schemas,
            "responses": err_responses,
            "parameters": _parameters(model, vs, cfg),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _predict_request(sig: ModelSignature, rows: int) -> Schema:
    by_name = _obj({t.name: _rows(t, rows) for t in sig.inputs}, [t.name for t in sig.inputs])
    forms = [_obj({"inputs": by_name}, ["inputs"], extra=True)]
    if len(sig.inputs) == 1:  # "instances": the rows of a single-input model
        forms.insert(0, _obj({"instances": _rows(sig.inputs[0], rows)}, ["instances"],
                             extra=True))
    return {"anyOf": forms}


def _feedback_answer() -> Schema:
    results = [str(r) for r in feedback.LabelResult]
    ids = {r: _array({"type": "string"}, 0, 100) for r in results if r != "matched"}
    counts = _obj({r: {"type": "integer", "minimum": 0} for r in results}, results)
    return _obj({"matched": {"type": "integer", "minimum": 0}, "counts": counts, **ids},
                ["matched", "counts"])


def _parameters(model: str, versions: list[str], cfg: RouterConfig) -> dict[str, Schema]:
    def header(name: str, schema: Schema, what: str) -> Schema:
        return {"name": name, "in": "header", "required": False, "schema": schema,
                "description": what}

    return {
        "model": {"name": "model", "in": "path", "required": True,
                  "schema": {"type": "string", "enum": [model]}},
        "version": {"name": "version", "in": "path", "required": True,
                    "schema": {"type": "string", "enum": versions},
                    "description": "a live version (weight 0 and the shadow included)"},
        "sticky": header(cfg.sticky_header, {"type": "string", "maxLength": MAX_STICKY_KEY_CHARS},
                         "sticky routing: the same key keeps its version"),
        "pin": header(cfg.pin_header, {"type": "string", "enum": versions},
                      "serve with this live version"),
        "request_id": header("x-request-id", {"type": "string", "pattern": "^[!-~]{1,128}$"},
                             "the request's id for feedback (kept apart from the router's)"),
        "header_length": header(protocol.HEADER_LENGTH, {"type": "integer", "minimum": 1},
                                "binary tensor extension: bytes of JSON before the tensors"),
    }


def _answer_headers(oip: bool) -> dict[str, Schema]:
    """What an answer says besides its body; OIP binary outputs add the JSON part's length."""
    digits = {"type": "string", "pattern": "^[0-9]+$"}
    h = {"x-model-version": {"required": True, "schema": {"type": "string"}},
         "x-routing-epoch": {"required": True, "schema": digits},
         "x-rollout-request-id": {"required": True, "schema": {"type": "string"}}}
    if oip:
        h[protocol.HEADER_LENGTH] = {"required": False, "schema": digits}
    return h


def _operations_v2(sig: ModelSignature, versions: list[str], cfg: RouterConfig
                   ) -> dict[str, Any]:
    p = {n: _ref(n, "parameters") for n in ("model", "version", "sticky", "pin", "request_id",
                                              "header_length")}
    ready = {"200": _json(_ref("Ready"), "ready"),
             "503": _json(_ref("Ready"), "not ready: a version has not described its inputs")}
    metadata = {"200": _json(_ref("ModelMetadata"), "inputs, outputs and live versions"),
                **_errors(404, 503)}
    infer_errors = _errors(400, 404, 413, 503, 504)
    answer = {"description": "the outputs, with the version that served them",
              "headers": _answer_headers(True),
              "content": {
                  "application/json": {"schema": _ref("InferenceResponse")},
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
              }}
    infer = {"post": {
        "summary": "Inference (OIP)",
        "parameters": [p["sticky"], p["pin"], p["request_id"], p["header_length"]],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": _ref("InferenceRequest")},
            "application/octet-stream": {"schema": {
                "type": "string", "format": "binary",
                "description": "binary tensor extension: the JSON request, "
                               "Inference-Header-Content-Length bytes long, then the tensors",
            }},
        }},
        "responses": {"200": answer, **infer_errors},
    }}
    versioned = copy.deepcopy(infer)
    versioned["post"]["parameters"] = [p["sticky"], p["request_id"], p["header_length"]]
    model_p, both = [p["model"]], [p["model"], p["version"]]
    one = {"200": _json(_ref("ModelInfo"), "the model's versions and weights"), **_errors(404)}
    return {
        "/v2": _get("Server metadata", {"200": _json(_ref("ServerMetadata"), "the server")}),
        "/v2/health/live": _get("Server live", {"200": _json(_ref("Live"), "live")}),
        "/v2/health/ready": _get("Server ready", ready),
        "/v2/models/{model}": _get("Model metadata", metadata, model_p),
        "/v2/models/{model}/ready": _get("Model ready", {**ready, **_errors(404)}, model_p),
        "/v2/models/{model}/versions/{version}": _get("Version metadata", metadata, both),
        "/v2/models/{model}/versions/{version}/ready": _get(
            "Version ready", {**ready, **_errors(404)}, both),
        "/v2/models/{model}/infer": {"parameters": model_p, **infer},
        "/v2/models/{model}/versions/{version}/infer": {"parameters": both, **versioned},
        "/v1/models": _get("Models", {"200": _json(_ref("Models"), "the model")}),
        "/v1/models/{model}": _get("Model", one, model_p),
        "/v1/models/{model}/predict": {"parameters": model_p, "post": {
            "summary": "Predict (/v1 JSON)",
            "parameters": [p["sticky"], p["pin"], p["request_id"]],
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("PredictRequest")}}},
            "responses": {"200": _json(_ref("PredictResponse"), "the outputs",
                                       _answer_headers(False)), **infer_errors},
        }},
        "/v1/models/{model}/feedback": {"parameters": model_p, "post": {
            "summary": "Labels of served requests",
            "security": [{"bearer": []}],
            "description": f"needs a token with scope {Scope.FEEDBACK.value!r}",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("Feedback")}}},
            "responses": {"200": _json(_ref("FeedbackAnswer"), "what each label did"),
                          **_errors(400, 401, 403, 404, 413)},
        }},
    }


def _get(summary: str, responses: dict[str, Any], params: list[Schema] | None = None
         ) -> dict[str, Any]:
    out: dict[str, Any] = {"get": {"summary": summary, "responses": {**_errors(), **responses}}}
    return {"parameters": params, **out} if params else out


# -- the admin document ---------------------------------------------------------------------------


def admin_openapi(prefix: str = ADMIN_PREFIX) -> dict[str, Any]:
    """The admin API: the status page, the reads, ``start`` and one route per verb of
    ``VERBS``; every route but the page needs a bearer token of the scope it names."""
    return copy.deepcopy(_admin(prefix))


@cache
def _admin(prefix: str) -> dict[str, Any]:
    err_schemas, err_responses = _error_components()
    spec = RolloutSpec.model_json_schema(ref_template=_REFS)
    schemas = {**err_schemas, **spec.pop("$defs", {}), "RolloutSpec": spec,
               "VerbBody": VerbBody.model_json_schema(ref_template=_REFS),
               "Status": {"type": "object", "required": ["model", "phase"],
                          "properties": {"model": {"type": "string"},
                                         "phase": {"type": "string"}}},
               "Verbs": _obj({"verbs": _array(_obj({
                   "name": {"enum": list(VERBS)}, "phases": _array({"type": "string"}),
                   "help": {"type": "string"}, "params": _array({"type": "string"}),
                   "destructive": {"type": "boolean"},
               }, ["name", "phases", "help", "params", "destructive"]))}, ["verbs"])}
    page = {"get": {"summary": "The status page (no token: its data calls send one)",
                    "security": [], "responses": {
                        **_errors(), "200": {"description": "the page",
                                             "content": {"text/html": {"schema": {
                                                 "type": "string"}}}}}}}

    def op(method: str, summary: str, scope: Scope, answer: Schema, statuses: Sequence[int],
           **extra: Any) -> dict[str, Any]:
        return {method: {"summary": summary, "description": f"needs scope {scope.value!r}",
                         "security": [{"bearer": []}], **extra,
                         "responses": {"200": _json(answer, "done"),
                                       **_errors(401, 403, 404, 503, *statuses)}}}

    def query(name: str, schema: Schema) -> Schema:
        return {"name": name, "in": "query", "required": False, "schema": schema}

    def body(schema: str, required: bool) -> Schema:
        return {"required": required,
                "content": {"application/json": {"schema": _ref(schema)}}}

    ident = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    paths = {
        prefix: page,
        f"{prefix}/ui": page,
        f"{prefix}/status": op("get", "The rollout's status", Scope.READ, _ref("Status"), ()),
        f"{prefix}/verbs": op("get", "Every verb", Scope.READ, _ref("Verbs"), ()),
        f"{prefix}/history": op(
            "get", "The decision log", Scope.READ, _array({"type": "object"}), (400,),
            parameters=[query("limit", {"type": "integer", "minimum": 1,
                                        "maximum": MAX_HISTORY_LIMIT}),
                        query("all", {"type": "boolean"})]),
        f"{prefix}/verify": op("get", "Check the log's hash chain", Scope.READ,
                               _obj({"ok": {"type": "boolean"}, "message": {"type": "string"}},
                                    ["ok", "message"]), ()),
        f"{prefix}/replay": op(
            "get", "Replay a rollout through decide()", Scope.READ,
            _obj({"rollout": ident, "identical": {"type": "boolean"},
                  "replayed": {"type": "integer"}, "recorded": {"type": "integer"}},
                 ["rollout", "identical", "replayed", "recorded"]),
            (400,), parameters=[query("rollout", ident)]),
        f"{prefix}/start": op("post", "Start a rollout of this model", Scope.ADMIN,
                              _ref("Status"), (400, 409, 413),
                              requestBody=body("RolloutSpec", True)),
    }
    for verb in VERBS.values():
        paths[f"{prefix}/{verb.name}"] = op(
            "post", verb.help, Scope.OPERATE, _ref("Status"), (400, 409, 413),
            requestBody=body("VerbBody", False))
    return {
        "openapi": OPENAPI,
        "info": {"title": "rayrollout admin API", "version": __version__,
                 "description": "The rollout controller's verbs over HTTP, on the router."},
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {"schemas": schemas, "responses": err_responses,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every operation a document describes."""
    methods = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
    return {(m.upper(), path) for path, item in doc["paths"].items() for m in item
            if m in methods}
