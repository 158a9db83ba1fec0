from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rayrollout.analysis.eprocess import BadEventEProcess, theta
from tests.unit.analysis.sim import mc_limit


def test_hand_computed_single_alternative() -> None:
    # w = 1/2, rho0 = 1, rho1 = 2: theta0 = 1/2, theta1 = 2/3.
    # canary factor (2/3)/(1/2) = 4/3, baseline factor (1/3)/(1/2) = 2/3.
    p = BadEventEProcess(rho0=1.0, grid=(2.0,))
    p.update(True, 0.5)
    p.update(True, 0.5)
    log_e = p.update(False, 0.5)
    assert log_e == pytest.approx(math.log(32 / 27))
    assert p.max_log_e == pytest.approx(math.log(16 / 9))
    assert (p.n_canary, p.n_baseline) == (2, 1)


def test_hand_computed_mixture_with_varying_weight() -> None:
    # grid (2, 4), rho0 = 1. Event 1: canary at w = 1/2; event 2: baseline at w = 1/5.
    # rho=2: 4/3 * (1 - theta(2, 1/5)) / (4/5) = 4/3 * (2/3) / (4/5) = 10/9
    # rho=4: 8/5 * (1 - theta(4, 1/5)) / (4/5) = 8/5 * (1/2) / (4/5) = 1
    assert theta(2.0, 0.2) == pytest.approx(1 / 3)
    assert theta(4.0, 0.2) == pytest.approx(1 / 2)
    p = BadEventEProcess(rho0=1.0, grid=(2.0, 4.0))
    assert p.update(True, 0.5) == pytest.approx(math.log((4 / 3 + 8 / 5) / 2))
    assert p.update(False, 0.2) == pytest.approx(math.log((10 / 9 + 1) / 2))


def test_rho0_shifts_the_null() -> None:
    # rho0 = 2, grid (2,): rho1 = 4 against theta0 = theta(2, w).
    p = BadEventEProcess(rho0=2.0, grid=(2.0,))
    w = 0.25
    expect = theta(4.0, w) / theta(2.0, w)
    assert p.update(True, w) == pytest.approx(math.log(expect))


def test_uninformative_weights_leave_e_unchanged() -> None:
    p = BadEventEProcess()
    p.update(True, 1.0)
    p.update(False, 0.0)
    assert p.log_e == 0.0 and p.n == 2
    with pytest.raises(ValueError):
        p.update(True, math.nan)


def test_vectorised_equals_loop_and_state_round_trip() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(3000) < 0.3
    w = np.where(np.arange(3000) < 1500, 0.1, 0.25)
    loop = BadEventEProcess()
    for x, y in zip(a, w, strict=True):
        loop.update(bool(x), float(y))
    vec = BadEventEProcess()
    vec.update_many(a[:1000], w[:1000])
    vec = BadEventEProcess.from_state(json.loads(json.dumps(vec.to_state())))
    vec.update_many(a[1000:], w[1000:])
    assert vec.log_e == pytest.approx(loop.log_e, rel=1e-9, abs=1e-9)
    assert vec.max_log_e == pytest.approx(loop.max_log_e, rel=1e-9, abs=1e-9)
    assert (vec.n_canary, vec.n_baseline) == (loop.n_canary, loop.n_baseline)


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValueError):
        BadEventEProcess(rho0=0.0)
    with pytest.raises(ValueError):
        BadEventEProcess(grid=(1.0, 2.0))


def _crossing_rate(rho: float, runs: int, n: int, alpha: float, grid_down: bool = False) -> float:
    hits = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        w = np.where(np.arange(n) < n // 2, 0.05, 0.2)  # a rollout step halfway
        a = (
            rng.random(n)
            < np.asarray([theta(rho, x) for x in (0.05, 0.2)])[(np.arange(n) >= n // 2).astype(int)]
        )
        p = BadEventEProcess(
            rho0=1.0, grid=(0.8, 0.5, 0.2) if grid_down else (1.25, 1.5, 2, 3, 5, 10)
        )
        p.update_many(a, w)
        hits += p.max_log_e >= math.log(1 / alpha)
    return hits / runs


def test_validity_under_the_null_many_seeds() -> None:
    alpha, runs = 0.05, 500
    assert _crossing_rate(1.0, runs, 2000, alpha) <= mc_limit(alpha, runs)
    # composite null: rho strictly below rho0 is even safer
    assert _crossing_rate(0.7, runs, 2000, alpha) <= alpha
    # mirrored grid tests H0: rho >= rho0
    assert _crossing_rate(1.0, runs, 2000, alpha, grid_down=True) <= mc_limit(alpha, runs)


def test_power_for_a_five_fold_error_ratio() -> None:
    assert _crossing_rate(5.0, 100, 200, 0.05) == 1.0
