from __future__ import annotations

import json
import math

from rayrollout.analysis.result import CheckResult, Verdict, worst


def test_verdicts_are_ordered_best_to_worst() -> None:
    assert Verdict.PASS < Verdict.INCONCLUSIVE < Verdict.ERROR < Verdict.FAIL


def test_worst_wins_and_no_results_is_never_pass() -> None:
    rs = [CheckResult("a", Verdict.PASS), CheckResult("b", Verdict.ERROR)]
    assert worst(rs) is Verdict.ERROR
    assert worst([]) is Verdict.INCONCLUSIVE


def test_round_trip_through_strict_json() -> None:
    r = CheckResult(
        check="errors",
        verdict=Verdict.FAIL,
        statistic="failure_rate_ratio",
        value=math.inf,
        log_e=5.0,
        threshold=100.0,
        ci=(1.5, math.inf),
        counts={"candidate": 10, "baseline": 90},
        reason="r",
    )
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    back = CheckResult.from_dict(d)
    assert back == CheckResult(**{**r.__dict__, "counts": {"candidate": 10.0, "baseline": 90.0}})
    assert back.e_value == math.exp(5.0)
    assert back.log10_e is not None and abs(back.log10_e - 5.0 / math.log(10)) < 1e-12


def test_nan_value_becomes_null() -> None:
    d = CheckResult("x", Verdict.INCONCLUSIVE, value=math.nan).to_dict()
    assert d["value"] is None and d["verdict"] == "INCONCLUSIVE"
