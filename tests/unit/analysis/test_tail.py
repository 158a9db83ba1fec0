from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rayrollout.analysis.eprocess import LogHistogram, TailExceedance
from tests.unit.analysis.sim import mc_limit


def test_histogram_quantile_is_within_one_bin() -> None:
    rng = np.random.default_rng(4)
    x = rng.lognormal(4.6, 0.5, 20_000)
    h = LogHistogram()
    h.add_many(x)
    q = h.quantile(0.99)
    assert np.quantile(x, 0.99) <= q <= np.quantile(x, 0.99) * 1.01
    g = LogHistogram.from_state(json.loads(json.dumps(h.to_state())))
    assert g.quantile(0.5) == h.quantile(0.5) and g.total == h.total


def test_threshold_only_from_earlier_periods_and_nothing_judged_before() -> None:
    p = TailExceedance(p=0.5, refresh_s=10.0, min_reference=3, grid=(2.0,))
    # period 0: stable 10, 20, 30 and a slow canary; no threshold yet -> nothing judged
    for t, c, x in [(0.0, False, 10.0), (1.0, False, 20.0), (2.0, False, 30.0), (3.0, True, 1e4)]:
        p.observe(t, c, x, 0.5)
    assert p.threshold is None and p.bad.n == 0 and p.n_judged_canary == 0
    # period 1: threshold = median of period-0 stable data (20 ms, up to one bin)
    p.observe(10.0, False, 500.0, 0.5)  # stable data of this period must not move it
    p.observe(11.0, True, 25.0, 0.5)
    assert p.threshold == pytest.approx(20.0, rel=0.01)
    assert (p.bad.n_canary, p.bad.n_baseline) == (1, 1)
    # canary exceedance at w=1/2, rho1=2: 4/3; stable exceedance: 2/3
    assert p.log_e == pytest.approx(math.log(8 / 9))


def test_warmup_feeds_reference_but_is_not_judged() -> None:
    p = TailExceedance(p=0.5, refresh_s=10.0, min_reference=1)
    p.observe(0.0, False, 10.0, 0.5)
    p.observe(20.0, True, 1e4, 0.5, judged=False)
    assert p.bad.n == 0 and p.threshold is not None


def test_scalar_equals_vectorised_and_state_round_trip() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    t = np.cumsum(rng.exponential(0.01, n))
    c = rng.random(n) < 0.2
    x = rng.lognormal(4.6, 0.4, n) * np.where(c & (rng.random(n) < 0.05), 3.0, 1.0)
    w = np.full(n, 0.2)
    a = TailExceedance(refresh_s=20.0)
    for i in range(n):
        a.observe(float(t[i]), bool(c[i]), float(x[i]), 0.2)
    b = TailExceedance(refresh_s=20.0)
    for lo in range(0, n, 1000):
        s = slice(lo, lo + 1000)
        b.observe_many(t[s], c[s], x[s], w[s])
        b = TailExceedance.from_state(json.loads(json.dumps(b.to_state())))
    assert (a.bad.n_canary, a.bad.n_baseline) == (b.bad.n_canary, b.bad.n_baseline)
    assert a.log_e == pytest.approx(b.log_e, abs=1e-9)
    assert a.threshold == b.threshold


def _crossing(tail_frac: float, runs: int, n: int, alpha: float) -> float:
    hits = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        t = np.cumsum(rng.exponential(0.01, n))
        c = rng.random(n) < 0.1
        drift = 1.0 + 0.3 * np.sin(t / 30.0)  # load-driven latency changes, both arms
        x = 100.0 * drift * rng.lognormal(0.0, 0.3, n)
        x = np.where(c & (rng.random(n) < tail_frac), 3.0 * x, x)
        p = TailExceedance(p=0.95, refresh_s=10.0)
        p.observe_many(t, c, x, np.full(n, 0.1))
        hits += p.max_log_e >= math.log(1 / alpha)
    return hits / runs


def test_validity_under_the_null_many_seeds() -> None:
    alpha, runs = 0.05, 300
    assert _crossing(0.0, runs, 10_000, alpha) <= mc_limit(alpha, runs)


def test_power_for_a_tail_only_regression() -> None:
    assert _crossing(0.05, 30, 20_000, 0.05) >= 0.9
