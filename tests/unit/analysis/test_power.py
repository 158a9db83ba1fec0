"""The sample sizes ``rayrollout.analysis.power`` promises, against the e-processes themselves
on simulated streams: at the promised size the check has caught the regression in at least the
promised share of runs (the approximation errs on the safe side), at a third of it clearly not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rayrollout.analysis._arm_bet import ArmBetLatency
from rayrollout.analysis._bad_event import BadEventEProcess
from rayrollout.analysis.power import errors_requests, latency_requests

ALPHA = 0.0125


def caught_errors(ratio: float, base: float, w: float, n_cand: int, runs: int) -> float:
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(runs):
        n = int(n_cand / w)
        c = rng.random(n) < w
        bad = np.flatnonzero(rng.random(n) < np.where(c, base * ratio, base))
        p = BadEventEProcess()
        p.update_many(c[bad], np.full(bad.size, w))
        hits += p.max_log_e >= math.log(1 / ALPHA)
    return hits / runs


def caught_latency(slower: float, sigma: float, w: float, n_cand: int, runs: int) -> float:
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(runs):
        n = int(n_cand / w)
        c = rng.random(n) < w
        lat = rng.lognormal(0.0, sigma, n) * np.where(c, 1.0 + slower, 1.0)
        p = ArmBetLatency()
        for lo in range(0, n, 100):
            p.observe_many(c[lo:lo + 100], np.full(len(c[lo:lo + 100]), w), lat[lo:lo + 100])
        hits += p.max_log_e >= math.log(1 / ALPHA)
    return hits / runs


@pytest.mark.parametrize(("ratio", "base", "w"), [(5.0, 0.005, 0.1), (3.0, 0.01, 0.5)])
def test_errors_sample_size_delivers_the_power(ratio: float, base: float, w: float) -> None:
    n = errors_requests(ratio, base, w, ALPHA, power=0.8)
    assert caught_errors(ratio, base, w, n, 150) >= 0.75
    assert caught_errors(ratio, base, w, n // 3, 150) < 0.5


def test_latency_sample_size_delivers_the_power() -> None:
    n = latency_requests(0.2, 0.6, 0.1, ALPHA, power=0.8)
    assert caught_latency(0.2, 0.6, 0.1, n, 80) >= 0.75
    assert caught_latency(0.2, 0.6, 0.1, n // 3, 80) < 0.5


def test_sizes_grow_as_the_effect_shrinks_and_the_weight_falls() -> None:
    assert errors_requests(2.0, 0.005, 0.1, ALPHA) > errors_requests(5.0, 0.005, 0.1, ALPHA)
    assert latency_requests(0.05, 0.6, 0.1, ALPHA) > latency_requests(0.1, 0.6, 0.1, ALPHA)
    # in time: at 1% weight a 3x error regression needs far longer than at 10%
    per_s = [errors_requests(3.0, 0.005, w, ALPHA) / (100 * w) for w in (0.01, 0.1)]
    assert per_s[0] > 5 * per_s[1]
    with pytest.raises(ValueError, match="ratio > rho0"):
        errors_requests(1.0, 0.005, 0.1, ALPHA)
    with pytest.raises(ValueError, match="slower > tau"):
        latency_requests(0.1, 0.6, 0.1, ALPHA, tau=0.2)
