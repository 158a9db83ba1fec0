"""Bad config (issue 9): every field of the rollout spec given a wrong value fails, naming it,
and nothing is deployed.

The sweep walks the pydantic models (``model_fields``, into nested models, lists and dicts), so
a field added later is swept too. From each field's annotation and constraints it derives wrong
values (wrong type, below/above its range, NaN and infinities, empty/too long/bad pattern
strings, an unknown literal, wrong element types, an unknown key) and checks that a valid spec
with that one change fails with an error line starting with the field's path, and that no line
echoes a huge value. An annotation it cannot derive a wrong value for fails the sweep
(``CannotDerive``) unless the path is listed in ``FREE`` with why it cannot be wrong, or in
``EXTRA_WRONG`` with the wrong values to use.

Judge params are swept the same way through each kind's ``params_model``, and the ``router:``
keys through ``RouterConfig``'s fields. Then a sample of bad specs goes through each entry point
(Python API, controller start, ``rayrollout validate``, the admin ``POST /rollout/start``) and
the fake Serve port must record no deploy and no routing push.
"""

from __future__ import annotations

import copy
import math
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import annotated_types as at
import pytest
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from rayrollout import cli
from rayrollout.analysis.registry import JUDGE_KINDS, RESERVED, SEQUENTIAL_KINDS, params_model
from rayrollout.client.api import start as api_start
from rayrollout.controller.fake import FakeServePort
from rayrollout.errors import BadRequest
from rayrollout.ingress.admin import AdminAPI
from rayrollout.spec import RolloutSpec, RouterConfig, format_validation_error
from tests.asgi import AsgiClient

HUGE = "x" * 100_000  # a value no error may echo
INT64 = 2**63  # one past the largest integer SQLite, Ray and most JSON readers keep


def version(name: str) -> dict[str, Any]:
    """A version with every field set, so that the sweep reaches every nested field."""
    return {
        "name": name, "runtime": "onnx", "artifact": f"models/{name}.onnx",
        "task": "classification", "num_replicas": 1, "max_ongoing_requests": 8,
        "ray_actor_options": {"num_cpus": 0.0, "num_gpus": 0.0, "memory": 2**20},
        "batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.01},
        "intra_op_threads": 1, "inline_rows": 8, "flags": {"color": "blue"},
    }


def base_doc() -> dict[str, Any]:
    """A valid spec with every optional part present (shadow phase, detect, a guard, a
    webhook notifier), each list and dict holding one entry for the sweep to go into."""
    return {
        "model": "m",
        "stable": version("v1"),
        "candidates": [version("v2")],
        "strategy": {
            "shadow": {"fraction": 0.5, "min_duration_s": 1.0, "min_comparisons": 100,
                       "max_in_flight": 8, "rtol": 0.05},
            "steps": [{"weight": 10, "min_duration_s": 1.0, "min_requests": 10,
                       "approval": False}, {"weight": 50}],
        },
        "analysis": {
            "alpha": 0.05, "warmup_s": 0.0, "tick_s": 1.0, "unit_mode": "request",
            "checks": [{"kind": "errors", "name": "errors", "weight": 1.0,
                        "params": {"rho0": 1.0}}, {"kind": "latency"}],
            "guards": [{"kind": "threshold_errors"}],
            "detect": {"power": 0.8, "errors_ratio": 2.0, "base_error_rate": 0.01,
                       "latency_slower": 0.2, "latency_sigma": 0.6, "expected_rps": 100.0},
        },
        "rollback_window_s": 60.0,
        "drain_s": 10.0,
        "router": {},
        "store_path": None,
        "notifiers": [{"kind": "webhook", "url": "https://hooks.example/x", "timeout_s": 2.0,
                       "headers": {"x-team": "ml"}, "headers_env": {"x-auth": "HOOK_TOKEN"}}],
    }


# Fields that cannot be wrong, and why (the sweep still checks their wrong *type*).
FREE: dict[str, str] = {
    "store_path": "a file path: any text names a file (opening it is the store's job)",
    "router.rollout.k": "the router's own start-up rollout (validated when the router starts)",
    "stable.flags.color": "a feature flag's value is the user's JSON, served as given",
    "candidates.0.flags.color": "a feature flag's value is the user's JSON, served as given",
    **{f"{v}.{f}": why for v in ("stable", "candidates.0") for f, why in {
        "runtime_args.k": "a custom runtime's own arguments (its constructor checks them)",
        "app.args.k": "a Serve application builder's arguments (the builder checks them)",
        "app.prediction.labels.0": "a label is whatever text the app answers with",
        "user_config.k": "the user's config for their deployment's reconfigure (Serve passes it)",
        "ray_actor_options.num_cpus": "checked by Serve's schema: see EXTRA_WRONG",
        "autoscaling_config.k": "checked by Serve's schema: see EXTRA_WRONG",
    }.items()},
}

# Serve's deployment options: their values are checked by Serve's own schema.
SERVE_WRONG: dict[str, list[Any]] = {
    "ray_actor_options.num_cpus": [-1, "many"],
    "autoscaling_config.k": [1],  # no such option of Serve's
    "num_replicas": [0, -1, "all"],
    "max_queued_requests": [0, "x"],
    "health_check_period_s": [0, -1.0],
    "graceful_shutdown_timeout_s": [-1.0],
    "max_replicas_per_node": [0],
}

# Fields whose wrong values their annotation does not show: (path, wrong values).
EXTRA_WRONG: dict[str, list[Any]] = {
    "analysis.checks.0.kind": ["vibes", "", HUGE],
    "analysis.guards.0.kind": ["vibes", "errors"],  # a sequential kind is not a guard
    "stable.artifact": [HUGE],
    "candidates.0.artifact": [HUGE],
    "store_path": [HUGE],
    "notifiers.0.headers.x-team": ["ml\r\nx-evil: 1", HUGE],
    "notifiers.0.url": ["https://" + HUGE, "https://a\r\nx-evil: 1"],
    "notifiers.0.headers_env.x-auth": ["not a name", "", HUGE],
    "router.sticky_header": ["", "x key\r\n", HUGE],
    "router.pin_header": ["", "x key\r\n", HUGE],
    "router.admin_tokens_env": [HUGE],
    "router.tokens_file": [HUGE],
    "router.store_path": [HUGE],
    **{f"{v}.{f}": bad for v in ("stable", "candidates.0") for f, bad in SERVE_WRONG.items()},
}

class CannotDerive(TypeError):
    """The sweep met an annotation it has no wrong value for: teach it, or list the field."""


def _bounds(meta: Sequence[Any]) -> list[Any]:
    """Values just outside the numeric bounds in ``meta``."""
    out: list[Any] = []
    for m in meta:
        if isinstance(m, at.Gt):
            out.append(m.gt)
        elif isinstance(m, at.Ge):
            out.append(m.ge - 1 if isinstance(m.ge, int) else float(m.ge) - 1e-9)  # type: ignore[arg-type]
        elif isinstance(m, at.Lt):
            out.append(m.lt)
        elif isinstance(m, at.Le):
            out.append(m.le + 1 if isinstance(m.le, int) else float(m.le) + 1e-9)  # type: ignore[arg-type]
    return out


def _has(meta: Sequence[Any], kind: type) -> Any:
    return next((m for m in meta if isinstance(m, kind)), None)


def _pattern(meta: Sequence[Any]) -> str | None:
    for m in meta:
        p = getattr(m, "pattern", None)
        if p:
            return str(p)
    return None


def _split(ann: Any, meta: list[Any]) -> tuple[Any, list[Any], bool]:
    """(bare type, constraints, None allowed) of an annotation."""
    optional = False
    while True:
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            ann, *extra = typing.get_args(ann)
            for e in extra:
                meta.extend(e.metadata if isinstance(e, FieldInfo) else [e])
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(ann))
            if len(args) == 1:
                ann = args[0]
                continue
        return ann, meta, optional


def wrong_values(path: str, ann: Any, meta: list[Any], current: Any
                 ) -> Iterator[tuple[str, Any]]:
    """(path, wrong value) pairs for one field and, recursively, everything inside it."""
    ann, meta, optional = _split(ann, list(meta))
    if not optional:
        yield path, None
    origin = typing.get_origin(ann)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        yield path, "not-a-mapping"
        yield path, [1]
        yield f"{path}.no_such_field", 1
        yield from walk(ann, path, current if isinstance(current, dict) else {})
    elif ann is bool:
        yield from ((path, v) for v in ("yes", 1, HUGE))
    elif ann is int:
        yield from ((path, v) for v in ("7", 7.5, True, HUGE, *_bounds(meta)))
        if not (_has(meta, at.Le) or _has(meta, at.Lt)):
            yield path, INT64
    elif ann is float:
        yield from ((path, v) for v in ("0.5", True, HUGE, math.nan, math.inf, -math.inf,
                                        *_bounds(meta)))
    elif ann is str:
        yield path, 7
        derived = False
        if _pattern(meta):
            yield from ((path, v) for v in ("Bad Name!", "", HUGE))
            derived = True
        if _has(meta, at.MinLen):
            yield path, ""
            derived = True
        if _has(meta, at.MaxLen):
            yield path, "x" * (_has(meta, at.MaxLen).max_length + 1)
            derived = True
        if not derived and path not in EXTRA_WRONG and path not in FREE:
            raise CannotDerive(f"{path}: a str with no constraint; list it in EXTRA_WRONG "
                               "or FREE")
    elif origin is Literal:
        yield from ((path, v) for v in ("no-such-choice", 7, HUGE))
    elif origin in (list, typing.get_origin(Sequence[int])):
        (elem,) = typing.get_args(ann)
        yield from ((path, v) for v in ("abc", {"a": 1}))
        if _has(meta, at.MinLen) and _has(meta, at.MinLen).min_length > 0:
            yield path, []
        mx = _has(meta, at.MaxLen)
        if mx is not None:
            first = current[0] if isinstance(current, list) and current else 1
            yield path, [first] * (mx.max_length + 1)
        item = current[0] if isinstance(current, list) and current else None
        yield from wrong_values(f"{path}.0", elem, [], item)
    elif origin is dict:
        key_t, val_t = typing.get_args(ann)
        yield from ((path, v) for v in ("abc", [1]))
        if key_t is not str:
            raise CannotDerive(f"{path}: dict keys of {key_t}")
        cur = current if isinstance(current, dict) else {}
        key = next(iter(cur), "k")
        if val_t is typing.get_args(dict[str, Any])[1] or _is_json(val_t):
            yield f"{path}.{key}", {1, 2}  # not JSON
            yield f"{path}.{key}", math.nan  # no JSON reader takes it
            if f"{path}.{key}" not in FREE:
                raise CannotDerive(f"{path}.{key}: free-form JSON; list it in FREE")
        else:
            yield from wrong_values(f"{path}.{key}", val_t, [], cur.get(key))
    elif origin in (typing.Union, types.UnionType) and not _is_json(ann):
        # several types (``int | Literal["auto"]``): what none of them takes; the rest of its
        # wrong values are in EXTRA_WRONG
        yield from ((path, v) for v in ({"a": 1}, [1], HUGE, 7.5))
    elif _is_json(ann):
        yield path, {1, 2}
        yield path, math.nan
        if path not in FREE:
            raise CannotDerive(f"{path}: free-form JSON; list it in FREE")
    else:
        raise CannotDerive(f"{path}: cannot derive a wrong value for {ann!r}")
    for v in EXTRA_WRONG.get(path, []):
        yield path, v


def _is_json(ann: Any) -> bool:
    return "JsonValue" in repr(ann)


# dict fields swept through their own schema below, not as free-form JSON
SWEPT_APART = {("RolloutSpec", "router"), ("CheckSpec", "params")}


def walk(model: type[BaseModel], prefix: str, doc: dict[str, Any]
         ) -> Iterator[tuple[str, Any]]:
    for name, f in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        if (model.__name__, name) in SWEPT_APART:
            yield path, "not-a-mapping"
            continue
        yield from wrong_values(path, f.annotation, list(f.metadata), doc.get(name))


def with_value(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``doc`` with ``value`` at ``path``; an unset (None) model on the way becomes ``{}``,
    an unset list ``[]`` (when the next step is an index)."""
    out = copy.deepcopy(doc)
    *head, last = path.split(".")
    node: Any = out
    for i, p in enumerate(head):
        if isinstance(node, list):
            node = node[int(p)]
            continue
        if node.get(p) is None:
            nxt = [*head, last][i + 1]
            node[p] = [{}] if nxt.isdigit() else {}
        node = node[p]
    if isinstance(node, list):
        while len(node) <= int(last):
            node.append(None)
        node[int(last)] = value
    else:
        node[last] = value
    return out


def rendered_error(doc: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as e:
        RolloutSpec.model_validate(doc)
    return format_validation_error(e.value)


def assert_names(msg: str, path: str) -> None:
    lines = msg.splitlines()
    assert any(line.startswith(f"{path}:") or line.startswith(f"{path}.") for line in lines), \
        f"no error line names {path}:\n{msg}"
    assert "x" * 200 not in msg, f"the error echoes a huge value:\n{msg[:300]}"
    assert all(len(line) < 1200 for line in lines), msg[:300]


def _id(case: tuple[str, Any]) -> str:
    path, v = case
    shown = repr(v)
    return f"{path}={shown[:20]}" + ("..." if len(shown) > 20 else "")


SPEC_CASES = list(walk(RolloutSpec, "", base_doc()))


def test_the_base_spec_is_valid_and_reaches_every_model() -> None:
    spec = RolloutSpec.model_validate(base_doc())
    assert spec.strategy.shadow is not None and spec.analysis.detect is not None
    swept = {p for p, _ in SPEC_CASES}
    for path in ("strategy.steps.0.weight", "candidates.0.batching.max_batch_size",
                 "stable.ray_actor_options.num_cpus", "analysis.detect.latency_sigma",
                 "notifiers.0.timeout_s", "strategy.shadow.rtol", "analysis.guards.0.weight"):
        assert path in swept, path
    assert len(SPEC_CASES) > 300


def test_the_walker_fails_loudly_on_what_it_cannot_derive() -> None:
    class Odd(BaseModel):
        when: complex = 1j

    with pytest.raises(CannotDerive, match="when"):
        list(walk(Odd, "", {}))

    class Text(BaseModel):
        note: str = ""

    with pytest.raises(CannotDerive, match="note: a str with no constraint"):
        list(walk(Text, "", {}))


@pytest.mark.parametrize("case", SPEC_CASES, ids=_id)
def test_every_spec_field_with_a_wrong_value_fails_naming_it(case: tuple[str, Any]) -> None:
    path, value = case
    assert_names(rendered_error(with_value(base_doc(), path, value)), path)


# -- judge params ---------------------------------------------------------------------------


def check_doc(kind: str, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The base spec with a check (or guard) of ``kind`` and ``params``; and its path."""
    doc = base_doc()
    check = {"kind": kind, "name": "swept", "params": params}
    if kind not in SEQUENTIAL_KINDS:
        doc["analysis"]["guards"] = [check]
        return doc, "analysis.guards.0.params"
    doc["analysis"]["checks"].append(check)
    return doc, "analysis.checks.2.params"


def param_cases() -> Iterator[tuple[str, str, Any]]:
    for kind in sorted(JUDGE_KINDS):
        for name, f in params_model(kind).model_fields.items():
            for path, v in wrong_values(name, f.annotation, list(f.metadata), f.default):
                yield kind, path, v
        yield kind, "no_such_param", 1


PARAM_CASES = list(param_cases())


def test_every_constructor_keyword_of_every_judge_is_a_swept_param() -> None:
    import inspect

    for kind, cls in JUDGE_KINDS.items():
        keywords = set(inspect.signature(cls).parameters) - RESERVED
        assert keywords == set(params_model(kind).model_fields), kind
        swept = {p.split(".")[0] for k, p, _ in PARAM_CASES if k == kind}
        assert keywords <= swept, (kind, keywords - swept)


@pytest.mark.parametrize(("kind", "param", "value"), PARAM_CASES,
                         ids=lambda x: repr(x)[:24])
def test_every_judge_param_with_a_wrong_value_fails_naming_it(
    kind: str, param: str, value: Any
) -> None:
    doc, at_path = check_doc(kind, {})
    RolloutSpec.model_validate(doc)  # the check alone is fine
    top = param.split(".")[0]
    doc, at_path = check_doc(kind, {top: value} if top == param else
                             {top: with_value({top: _valid_list(kind, top)}, param, value)[top]})
    assert_names(rendered_error(doc), f"{at_path}.{param}")


def _valid_list(kind: str, name: str) -> list[Any]:
    default = params_model(kind).model_fields[name].default
    return list(default) if isinstance(default, tuple | list) else ["OK"] if name == \
        "outcomes" else [1.0]


def test_reserved_params_say_what_sets_them() -> None:
    for name in sorted(RESERVED):
        doc, at_path = check_doc("errors", {name: 0.1})
        msg = rendered_error(doc)
        assert at_path in msg and f"params.{name} is not a check parameter" in msg


def test_params_that_only_fail_together_still_name_the_check() -> None:
    doc, _ = check_doc("drift", {"lo": 1.0, "hi": 1.0, "edges": [3.0, 1.0]})
    msg = rendered_error(doc)
    assert "check 'swept'" in msg and "edges" in msg


# -- router: keys -----------------------------------------------------------------------------

SET_BY_ROLLOUT = {"model", "weights", "shadow", "flags", "rollout", "fallback", "interface",
                  "predictions"}
ROUTER_BASE: dict[str, Any] = {"sticky_header": "x-rollout-key", "deployment": {}}
ROUTER_CASES = [
    case
    for name, f in RouterConfig.model_fields.items() if name not in SET_BY_ROLLOUT
    for case in wrong_values(f"router.{name}", f.annotation, list(f.metadata),
                             ROUTER_BASE.get(name))
]


@pytest.mark.parametrize("case", ROUTER_CASES, ids=_id)
def test_every_router_key_with_a_wrong_value_fails_before_start(case: tuple[str, Any]) -> None:
    path, value = case
    doc = base_doc()
    doc["router"] = copy.deepcopy(ROUTER_BASE)
    msg = rendered_error(with_value(doc, path, value))
    assert "x" * 200 not in msg
    assert_names(msg, path)


def test_router_keys_the_rollout_sets_are_refused() -> None:
    for key in sorted(SET_BY_ROLLOUT):
        doc = base_doc()
        doc["router"] = {key: {}}
        assert f"router.{key} is set by the rollout" in rendered_error(doc)


# -- semantic errors: valid fields that do not fit together -----------------------------------


def _semantic() -> list[tuple[str, dict[str, Any], str]]:
    no_shadow = with_value(base_doc(), "strategy.shadow", None)
    two = with_value(no_shadow, "candidates", [version("v2"), version("v3")])
    return [
        ("candidate named as the stable", with_value(base_doc(), "candidates.0.name", "v1"),
         "version names must be unique"),
        ("steps not increasing", with_value(base_doc(), "strategy.steps.1.weight", 10),
         "steps must increase"),
        ("shadow phase with two candidates",
         with_value(base_doc(), "candidates", [version("v2"), version("v3")]),
         "strategy.shadow supports one candidate"),
        ("top weight x candidates over 100", with_value(two, "strategy.steps.1.weight", 60),
         "x 2 candidates = 120% > 100%"),
        ("sequential kind as a guard", with_value(base_doc(), "analysis.guards.0.kind",
                                                  "errors"), "is a sequential check"),
        ("guard kind as a check", with_value(base_doc(), "analysis.checks.1.kind",
                                             "threshold_latency"), "is a threshold guard"),
        ("two checks of one name", with_value(base_doc(), "analysis.checks.1",
                                              {"kind": "errors"}), "check names must be unique"),
        ("detect.errors_ratio without an errors check",
         with_value(base_doc(), "analysis.checks.0", {"kind": "latency_tail"}),
         "detect.errors_ratio needs an errors check"),
        ("detect cannot be caught", with_value(base_doc(), "analysis.detect.latency_slower",
                                               1e-9), "analysis.detect"),
        ("disagreement check with no shadow phase", _disagreement_without_shadow(),
         "needs a shadow phase"),
        ("webhook without a url", with_value(base_doc(), "notifiers.0.url", None),
         "needs exactly one of url and url_env"),
        ("a router key the rollout sets", with_value(base_doc(), "router",
                                                     {"weights": {"v1": 100}}),
         "router.weights"),
    ]


def _disagreement_without_shadow() -> dict[str, Any]:
    doc = with_value(base_doc(), "strategy.shadow", None)
    doc["analysis"]["checks"].append({"kind": "disagreement"})
    return doc


SEMANTIC = _semantic()


@pytest.mark.parametrize(("why", "doc", "expect"), SEMANTIC, ids=[c[0] for c in SEMANTIC])
def test_semantic_errors_fail_validation(why: str, doc: dict[str, Any], expect: str) -> None:
    assert expect in rendered_error(doc)


# -- nothing is deployed, whatever the entry point --------------------------------------------

def _bad(path: str, value: Any) -> tuple[str, dict[str, Any]]:
    return path, with_value(base_doc(), path, value)


# (the field the error must name, the bad spec): field errors, then semantic ones
BAD_SAMPLE: list[tuple[str, dict[str, Any]]] = [
    _bad("strategy.steps.0.weight", 0),
    _bad("candidates.0.batching.max_batch_size", HUGE),
    _bad("stable.ray_actor_options.num_gpus", math.inf),
    _bad("analysis.checks.0.params.rho0", -1),
    _bad("analysis.checks.0.params.no_such_param", 1),
    _bad("strategy.no_such_field", 1),
    _bad("candidates.0.name", "v1"),  # the stable's name
    ("analysis.checks.2.kind", _disagreement_without_shadow()),
]
SAMPLE_IDS = [p for p, _ in BAD_SAMPLE]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def assert_nothing_deployed(port: FakeServePort, before: set[str]) -> None:
    assert set(port.apps) == before, "a bad spec deployed an app"
    for r in (r for rs in port.routers.values() for r in rs):
        assert r.table.epoch == 0, "a bad spec pushed a routing table"
    for c in port.controllers.values():
        assert c.core is None, "a bad spec started a rollout"


def _json_safe(doc: dict[str, Any]) -> bool:
    text = repr(doc)
    return "nan" not in text and "inf" not in text


@pytest.mark.parametrize(("path", "doc"), BAD_SAMPLE, ids=SAMPLE_IDS)
def test_python_api_start_deploys_nothing(path: str, doc: dict[str, Any]) -> None:
    port = FakeServePort(Clock())
    with pytest.raises(ValidationError) as e:
        api_start(doc, port=port)
    assert f"{path}:" in format_validation_error(e.value)
    assert_nothing_deployed(port, set())
    assert port.controllers == {}


@pytest.mark.parametrize(("path", "doc"), BAD_SAMPLE, ids=SAMPLE_IDS)
def test_controller_start_deploys_nothing(path: str, doc: dict[str, Any]) -> None:
    port = FakeServePort(Clock())
    port.deploy_router(RouterConfig.model_validate({"model": "m", "weights": {"v1": 100.0}}))
    before = set(port.apps)
    handle = port.controller("m")
    with pytest.raises(BadRequest) as e:
        handle.call("start", doc)
    assert f"{path}:" in str(e.value)
    assert_nothing_deployed(port, before)
    assert port.controllers["m"].store.rollouts("m") == []


@pytest.mark.parametrize(("path", "doc"), BAD_SAMPLE, ids=SAMPLE_IDS)
def test_cli_validate_names_the_field(path: str, doc: dict[str, Any], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "spec.yaml"
    f.write_text(yaml.safe_dump(doc))
    assert cli.main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert "invalid" in err and f"\n{path}:" in err and "x" * 200 not in err


@pytest.mark.parametrize(("path", "doc"), [c for c in BAD_SAMPLE if _json_safe(c[1])],
                         ids=[p for p, d in BAD_SAMPLE if _json_safe(d)])
def test_admin_start_answers_400_and_deploys_nothing(path: str, doc: dict[str, Any]) -> None:
    cfg = RouterConfig.model_validate({"model": "m", "weights": {"v1": 100.0}})
    port = FakeServePort(Clock())
    port.deploy_router(cfg)
    before = set(port.apps)
    env = {cfg.admin_tokens_env: "alice:tok-123"}
    client = AsgiClient(AdminAPI(cfg, port, environ=env).http)
    body = {k: v for k, v in doc.items() if k != "store_path"}  # HTTP may not choose it
    try:
        r = client.post("/start", json=body, headers={"Authorization": "Bearer tok-123"})
    finally:
        client.close()
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "bad_request" and f"\n{path}:" in body["error"]
    assert "x" * 200 not in r.text
    assert_nothing_deployed(port, before)
