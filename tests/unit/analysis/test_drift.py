from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rayrollout.analysis.eprocess import BinnedDriftEProcess, BinnedToleranceEProcess, theta
from tests.unit.analysis.sim import mc_limit


def test_lindon_malek_hand_computed() -> None:
    # kappa = 2, w = 1/2: prior (1, 1) per bin. Three events in bin 1 (x >= 0.5):
    # canary q = 1/2 -> 1; canary q = 2/3 -> 4/3; stable q = 3/4 -> (1/4)/(1/2) = 1/2.
    p = BinnedDriftEProcess(edges=[0.5], kappa=2.0)
    p.update(0.7, True, 0.5)
    p.update(0.9, True, 0.5)
    p.update(0.6, False, 0.5)
    assert p.log_e == pytest.approx(math.log(2 / 3))
    assert p.max_log_e == pytest.approx(math.log(4 / 3))
    assert p.n_bin.tolist() == [0, 3] and p.n_canary_bin.tolist() == [0, 2]


def test_vectorised_equals_loop_and_state_round_trip() -> None:
    rng = np.random.default_rng(6)
    x = rng.random(3000)
    c = rng.random(3000) < np.where(x > 0.7, 0.2, 0.1)
    w = np.full(3000, 0.1)
    loop = BinnedDriftEProcess(edges=[0.2, 0.4, 0.6, 0.8])
    for i in range(3000):
        loop.update(float(x[i]), bool(c[i]), 0.1)
    vec = BinnedDriftEProcess(edges=[0.2, 0.4, 0.6, 0.8])
    vec.update_many(x[:1234], c[:1234], w[:1234])
    vec = BinnedDriftEProcess.from_state(json.loads(json.dumps(vec.to_state())))
    vec.update_many(x[1234:], c[1234:], w[1234:])
    assert vec.log_e == pytest.approx(loop.log_e, abs=1e-8)
    assert vec.max_log_e == pytest.approx(loop.max_log_e, abs=1e-8)

    t1 = BinnedToleranceEProcess(edges=[0.5])
    for i in range(3000):
        t1.update(float(x[i]), bool(c[i]), 0.1)
    t2 = BinnedToleranceEProcess.from_state(BinnedToleranceEProcess(edges=[0.5]).to_state())
    t2.update_many(x, c, w)
    assert t2.log_e == pytest.approx(t1.log_e, abs=1e-8)


def _rates(shift: float, runs: int, n: int, alpha: float, w: float = 0.1) -> tuple[float, float]:
    """Crossing rates of (drift test, tolerance test) for canary scores Beta(2+shift, 5)."""
    thr = math.log(1 / alpha)
    edges = list(np.quantile(np.random.default_rng(999).beta(2, 5, 5000), np.arange(1, 10) / 10))
    hd = ht = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        c = rng.random(n) < w
        x = np.where(c, rng.beta(2 + shift, 5, n), rng.beta(2, 5, n))
        d = BinnedDriftEProcess(edges)
        d.update_many(x, c, np.full(n, w))
        t = BinnedToleranceEProcess(edges)
        t.update_many(x, c, np.full(n, w))
        hd += d.max_log_e >= thr
        ht += t.max_log_e >= thr
    return hd / runs, ht / runs


def test_validity_under_the_null_many_seeds() -> None:
    alpha, runs = 0.05, 300
    drift, tol = _rates(0.0, runs, 5000, alpha)
    assert drift <= mc_limit(alpha, runs)
    assert tol <= mc_limit(alpha, runs)


def test_tolerance_null_holds_at_the_band_edge() -> None:
    # canary "positive" share exactly hi = 1.25 times stable's: inside H0 (a boundary case)
    alpha, runs, n, w = 0.05, 300, 5000, 0.2
    hits = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        # events in the guarded bin; canary share theta(1.25, w) of them
        a = rng.random(n) < theta(1.25, w)
        t = BinnedToleranceEProcess(edges=[0.5], guarded=[1])
        t.update_many(np.ones(n), a, np.full(n, w))
        hits += t.max_log_e >= math.log(1 / alpha)
    assert hits / runs <= mc_limit(alpha, runs)


def test_power_for_a_large_drift() -> None:
    drift, tol = _rates(1.0, 30, 10_000, 0.05)
    assert drift == 1.0 and tol >= 0.9
