from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rayrollout.analysis.eprocess import BettingMeanEProcess, SignBetEProcess, default_mean_bets
from tests.unit.analysis.sim import mc_limit


def test_sign_bet_hand_computed() -> None:
    p = SignBetEProcess(lambdas=(0.5, 0.1))
    for z in (1.0, -1.0, 0.5):
        p.update(z)
    e1 = 1.5 * 0.5 * 1.25
    e2 = 1.1 * 0.9 * 1.05
    assert p.log_e == pytest.approx(math.log((e1 + e2) / 2))
    assert p.max_log_e == pytest.approx(math.log((1.5 + 1.1) / 2))
    assert p.n == 3 and p.mean_z == pytest.approx(0.5 / 3)


def test_sign_bet_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError):
        SignBetEProcess(lambdas=(1.0,))
    with pytest.raises(ValueError):
        SignBetEProcess(lambdas=(-0.1,))
    p = SignBetEProcess()
    with pytest.raises(ValueError):
        p.update(1.5)
    with pytest.raises(ValueError):
        p.update_many(np.array([0.0, math.nan]))


def test_betting_mean_hand_computed() -> None:
    p = BettingMeanEProcess(d0=0.2, lambdas=(2.0,))
    p.update(1.0)
    p.update(0.0)
    assert p.log_e == pytest.approx(math.log((1 + 2 * 0.8) * (1 - 2 * 0.2)))
    assert p.mean == pytest.approx(0.5)
    with pytest.raises(ValueError):
        BettingMeanEProcess(d0=0.2, lambdas=(5.0,))  # not < 1/d0
    assert max(default_mean_bets(0.05)) < 1 / 0.05


def test_vectorised_equals_loop_and_state_round_trip() -> None:
    rng = np.random.default_rng(2)
    z = rng.uniform(-1, 1, 2000)
    loop = SignBetEProcess()
    for v in z:
        loop.update(float(v))
    vec = SignBetEProcess()
    vec.update_many(z[:700])
    vec = SignBetEProcess.from_state(json.loads(json.dumps(vec.to_state())))
    vec.update_many(z[700:])
    assert vec.log_e == pytest.approx(loop.log_e, abs=1e-9)
    assert vec.max_log_e == pytest.approx(loop.max_log_e, abs=1e-9)

    d = (rng.random(2000) < 0.06).astype(float)
    m1 = BettingMeanEProcess(d0=0.05)
    for v in d:
        m1.update(float(v))
    m2 = BettingMeanEProcess.from_state(BettingMeanEProcess(d0=0.05).to_state())
    m2.update_many(d)
    assert m2.log_e == pytest.approx(m1.log_e, abs=1e-9)


def test_betting_mean_validity_and_power() -> None:
    alpha, runs, n = 0.05, 400, 3000
    thr = math.log(1 / alpha)
    null_hits = power_hits = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        u = rng.random(n)
        p = BettingMeanEProcess(d0=0.05)
        p.update_many((u < 0.05).astype(float))
        null_hits += p.max_log_e >= thr
        if seed < 100:
            q = BettingMeanEProcess(d0=0.05)
            q.update_many((u < 0.08).astype(float))
            power_hits += q.max_log_e >= thr
    assert null_hits / runs <= mc_limit(alpha, runs)
    assert power_hits / 100 >= 0.8
