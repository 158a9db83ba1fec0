from __future__ import annotations

import json

import pytest

import rayrollout.analysis as analysis
from rayrollout.analysis import (
    JUDGE_KINDS,
    CheckResult,
    FakeJudge,
    Judge,
    Verdict,
    make_judge,
    restore_judge,
    split_alpha,
)
from rayrollout.dataplane.events import EventBatch

KINDS = [
    "errors",
    "latency",
    "latency_tail",
    "drift",
    "disagreement",
    "accuracy",
    "threshold_errors",
    "threshold_latency",
    "promql_threshold",
    "promql_compare",
]


def test_registry_knows_exactly_the_documented_kinds() -> None:
    assert sorted(JUDGE_KINDS) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_a_judge_never_passes_without_data_and_round_trips(kind: str) -> None:
    j = make_judge(kind, {"name": f"my-{kind}"})
    assert isinstance(j, Judge) and j.kind == kind and j.name == f"my-{kind}"
    j.observe(EventBatch(), "v1", "v2")
    r = j.result(0.0)
    assert r.verdict is Verdict.INCONCLUSIVE and r.check == f"my-{kind}"
    back = restore_judge(json.loads(json.dumps(j.to_state())))
    assert back.result(0.0) == r


def test_unknown_kind_and_unknown_param_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown judge kind 'erors'"):
        make_judge("erors", {})
    with pytest.raises(ValueError, match=r"bad params for judge kind 'errors'.*rho"):
        make_judge("errors", {"rho": 2.0})
    with pytest.raises(ValueError, match="unknown outcome 'OKAY'"):
        make_judge("latency", {"outcomes": ["OKAY"]})
    with pytest.raises(ValueError, match="unknown drift mode"):
        make_judge("drift", {"mode": "psi"})
    with pytest.raises(ValueError, match="alpha"):
        make_judge("errors", {"alpha": 0.0})


def test_split_alpha_is_bonferroni_weighted_and_explained() -> None:
    b = split_alpha(
        0.05, ["errors", "latency", "latency_tail"], candidates=2, weights={"errors": 2.0}
    )
    assert b.share("errors") == pytest.approx(0.05 * 2 / 4 / 2)
    assert b.share("latency") == pytest.approx(0.05 / 4 / 2)
    assert sum(b.shares.values()) * 2 == pytest.approx(0.05)
    assert b.threshold("latency") == pytest.approx(160.0)
    assert "Bonferroni" in b.explain() and "errors" in b.explain()
    json.dumps(b.to_dict())
    with pytest.raises(ValueError, match="unknown checks"):
        split_alpha(0.05, ["errors"], weights={"latency": 1.0})
    with pytest.raises(ValueError, match="duplicate"):
        split_alpha(0.05, ["errors", "errors"])
    with pytest.raises(KeyError, match="drift"):
        b.share("drift")


def test_fake_judge_scripts_results_and_records_calls() -> None:
    f = FakeJudge("f", script=[Verdict.PASS, CheckResult("f", Verdict.FAIL, reason="boom")])
    assert isinstance(f, Judge)
    f.observe(EventBatch(), "v1", "v2")
    assert f.result(1.0).verdict is Verdict.PASS
    assert f.result(2.0).reason == "boom"
    assert f.result(3.0).verdict is Verdict.FAIL  # repeats the last
    assert f.observed == [(0, "v1", "v2", 0, 0)] and f.asked == [1.0, 2.0, 3.0]
    g = FakeJudge.from_state(json.loads(json.dumps(f.to_state())))
    assert g.result(4.0).verdict is Verdict.FAIL
    assert FakeJudge().result(0.0).verdict is Verdict.INCONCLUSIVE


def test_public_surface_is_curated() -> None:
    for name in analysis.__all__:
        assert hasattr(analysis, name), name
