"""RolloutSpec validation: a bad spec fails before anything starts, naming field and value."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from rayrollout.controller.core import ControllerCore, build_judges
from rayrollout.controller.store import Store
from rayrollout.spec import RolloutSpec
from tests.unit.controller.helpers import make_spec, spec_doc

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def invalid(doc: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as e:
        RolloutSpec.model_validate(doc)
    return str(e.value)


def test_a_plain_spec_validates_with_defaults() -> None:
    spec = make_spec()
    assert [s.weight for s in spec.strategy.steps] == [10, 50]
    assert [c.check_name for c in spec.analysis.checks] == ["errors", "latency", "latency_tail"]
    assert spec.digest() == make_spec().digest()
    assert spec.digest() != make_spec(steps=(10, 60)).digest()


def test_steps_must_increase_and_the_error_names_both_steps() -> None:
    msg = invalid(spec_doc(steps=(10, 40, 30)))
    assert "steps must increase: steps[2].weight=30 <= steps[1].weight=40" in msg
    assert "strategy.steps" in msg
    assert "steps[1].weight=10 <= steps[0].weight=10" in invalid(spec_doc(steps=(10, 10)))


@pytest.mark.parametrize("weight", [0, -5, 101])
def test_step_weight_is_a_percentage(weight: float) -> None:
    assert "weight" in invalid(spec_doc(steps=(weight,)))


def test_unknown_judge_kind_is_an_error_not_a_default() -> None:
    msg = invalid(spec_doc(analysis={"checks": [{"kind": "vibes"}]}))
    assert "analysis.checks.0.kind" in msg and "vibes" in msg


def test_threshold_kind_under_checks_is_rejected() -> None:
    msg = invalid(spec_doc(analysis={"checks": [{"kind": "errors"},
                                                {"kind": "threshold_latency"}]}))
    assert "checks[1].kind='threshold_latency' is a threshold guard" in msg


def test_sequential_kind_under_guards_is_rejected() -> None:
    msg = invalid(spec_doc(analysis={"guards": [{"kind": "latency"}]}))
    assert "guards[0].kind='latency' is a sequential check" in msg


def test_guards_take_threshold_kinds() -> None:
    spec = make_spec(analysis={"guards": [{"kind": "threshold_errors"}]})
    assert spec.analysis.guards[0].check_name == "threshold_errors"


def test_duplicate_check_names_are_rejected_until_named() -> None:
    doc = spec_doc(analysis={"checks": [{"kind": "latency"}, {"kind": "latency"}]})
    assert "check names must be unique: ['latency'] repeated" in invalid(doc)
    ok = make_spec(analysis={"checks": [{"kind": "latency"},
                                        {"kind": "latency", "name": "latency-p50"}]})
    assert [c.check_name for c in ok.analysis.checks] == ["latency", "latency-p50"]


def test_candidates_times_top_weight_over_100_is_rejected() -> None:
    msg = invalid(spec_doc(steps=(10, 40), candidates=("v2", "v3", "v4")))
    assert "strategy.steps[-1].weight=40 x 3 candidates = 120% > 100%" in msg
    assert make_spec(steps=(10, 50), candidates=("v2", "v3")).candidates[1].name == "v3"


@pytest.mark.parametrize(
    "where",
    [(), ("stable",), ("strategy",), ("strategy", "steps", 0), ("analysis",)],
    ids=["top", "stable", "strategy", "step", "analysis"],
)
def test_unknown_fields_are_rejected(where: tuple[Any, ...]) -> None:
    doc = spec_doc(analysis={})
    node: Any = doc
    for k in where:
        node = node[k]
    node["colour"] = "blue"
    msg = invalid(doc)
    assert "colour" in msg and "Extra inputs are not permitted" in msg


def test_other_consistency_rules() -> None:
    assert "version names must be unique: ['v1']" in invalid(spec_doc(candidates=("v1",)))
    assert "strategy.shadow supports one candidate" in invalid(
        spec_doc(candidates=("v2", "v3"), shadow={}))
    assert "router.weights is set by the rollout" in invalid(spec_doc(router={"weights": {}}))


def test_spec_is_frozen() -> None:
    spec = make_spec()
    with pytest.raises(ValidationError):
        spec.model = "other"  # type: ignore[misc]


@pytest.mark.parametrize("field", ["rollback_window_s", "min_duration_s"])
def test_a_spec_that_validates_can_be_stored(tmp_path: Path, field: str) -> None:
    doc = spec_doc()
    if field == "rollback_window_s":
        doc["rollback_window_s"] = math.inf
    else:
        doc["strategy"]["steps"][0]["min_duration_s"] = math.inf
    try:
        spec = RolloutSpec.model_validate(doc)
    except ValidationError:
        return  # rejected up front: fine
    store = Store(tmp_path / "s.db")
    try:
        ControllerCore.create(store, spec, 0.0, 0)
    finally:
        store.close()


def rollout_specs() -> list[tuple[str, dict[str, Any]]]:
    """Rollout specs in configs/: whole files (top-level ``model:`` + ``strategy:``) and the
    ``args`` of ``build_rollout`` applications in Serve configs."""
    out = []
    for p in sorted(CONFIGS.glob("*.y*ml")):
        doc = yaml.safe_load(p.read_text())
        if not isinstance(doc, dict):
            continue
        if "model" in doc and "strategy" in doc:
            out.append((p.name, doc))
        for app in doc.get("applications", []):
            if str(app.get("import_path", "")).endswith(":build_rollout"):
                out.append((f"{p.name}:{app['name']}", app["args"]))
    return out


SPECS = rollout_specs() or [("none", {})]


@pytest.mark.parametrize(("where", "doc"), SPECS, ids=[w for w, _ in SPECS])
def test_every_rollout_spec_in_configs_validates_and_builds_its_judges(
    where: str, doc: dict[str, Any]
) -> None:
    if not doc:
        pytest.skip("no rollout spec in configs/ yet")
    spec = RolloutSpec.model_validate(doc)
    judges = build_judges(spec)  # unknown or invalid judge params fail here
    names = [c.check_name for c in [*spec.analysis.checks, *spec.analysis.guards]]
    assert {c: list(js) for c, js in judges.items()} == {
        c.name: names for c in spec.candidates}


@pytest.mark.parametrize("param, value, where", [
    ("alpha", 0.99, "analysis.alpha"), ("start_t", "x", "the controller"),
    ("warmup_s", 0, "analysis.warmup_s"), ("unit_mode", "session", "analysis.unit_mode"),
    ("name", "other", "the check's name"),
])
def test_check_params_cannot_override_what_the_spec_sets(param: str, value: Any,
                                                          where: str) -> None:
    """A check's ``params`` reach the judge's constructor: the arguments the rollout sets
    itself (its alpha share, warm-up, unit mode, name, start time) are refused, naming the
    parameter and where it is set (``alpha: 0.99`` would void the error bound; ``start_t: "x"``
    made every tick raise)."""
    msg = invalid(spec_doc(analysis={"checks": [{"kind": "latency", "params": {param: value}}]}))
    assert f"params.{param}" in msg and where in msg, msg
