from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rayrollout.analysis.eprocess import BlockPairedDifference, BlockPairedLatency
from tests.unit.analysis.sim import mc_limit

# arrival order: C=canary, S=stable
SEQ = [(True, 100.0), (False, 90.0), (False, 110.0), (True, 50.0), (False, 40.0), (True, 10.0)]


def test_hand_computed_blocks() -> None:
    # block 1: sign(100-90)=+1, sign(100-110)=-1 -> z=0; block 2: sign(50-40)=+1 -> z=1;
    # the last canary's block is still open.
    p = BlockPairedLatency(lambdas=(0.5,))
    for c, x in SEQ:
        p.observe(c, x)
    assert p.n == 2
    assert p.log_e == pytest.approx(math.log(1.0 * 1.5))
    assert p.cles == pytest.approx((0.5 + 1.0) / 2)


def test_hand_computed_relative_tolerance() -> None:
    # tau = 0.2: block 1: 100-108 < 0, 100-132 < 0 -> z=-1; block 2: 50-48 > 0 -> z=+1
    p = BlockPairedLatency(tau=0.2, lambdas=(0.5,))
    for c, x in SEQ:
        p.observe(c, x)
    assert p.log_e == pytest.approx(math.log(0.5 * 1.5))


def test_empty_blocks_are_skipped_and_stable_before_any_canary_ignored() -> None:
    p = BlockPairedLatency(lambdas=(0.5,))
    for c, x in [(False, 1.0), (True, 5.0), (True, 5.0), (False, 1.0), (True, 0.0)]:
        p.observe(c, x)
    assert p.n == 1 and p.log_e == pytest.approx(math.log(1.5))


def test_vectorised_chunks_equal_loop_and_state_round_trip_mid_block() -> None:
    rng = np.random.default_rng(3)
    c = rng.random(5000) < 0.1
    x = rng.lognormal(4.0, 0.5, 5000)
    loop = BlockPairedLatency(tau=0.05)
    for a, v in zip(c, x, strict=True):
        loop.observe(bool(a), float(v))
    vec = BlockPairedLatency(tau=0.05)
    for lo in range(0, 5000, 333):
        vec.observe_many(c[lo : lo + 333], x[lo : lo + 333])
        vec = BlockPairedLatency.from_state(json.loads(json.dumps(vec.to_state())))
    assert vec.n == loop.n
    assert vec.log_e == pytest.approx(loop.log_e, abs=1e-9)
    assert vec.cles == pytest.approx(loop.cles)


def test_difference_variant_hand_computed() -> None:
    p = BlockPairedDifference(lambdas=(0.5,))
    for c, v in [(True, 0.9), (False, 0.1), (False, 0.3), (True, 0.0), (False, 0.5), (True, 0.2)]:
        p.observe(c, v)
    # block 1: mean(0.8, 0.6) = 0.7; block 2: -0.5
    assert p.log_e == pytest.approx(math.log(1.35 * 0.75))
    assert p.mean_difference == pytest.approx(0.1)
    with pytest.raises(ValueError):
        p.observe(True, 1.5)


def _crossing(mult: float, runs: int, n: int, alpha: float) -> float:
    hits = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        c = rng.random(n) < 0.1
        load = 1.0 + 0.3 * np.sin(np.arange(n) / 2000.0)  # common time-varying load
        x = 100.0 * load * rng.lognormal(0.0, 0.3, n) * np.where(c, mult, 1.0)
        p = BlockPairedLatency()
        p.observe_many(c, x)
        hits += p.max_log_e >= math.log(1 / alpha)
    return hits / runs


def test_validity_under_the_null_many_seeds() -> None:
    alpha, runs = 0.05, 400
    assert _crossing(1.0, runs, 10_000, alpha) <= mc_limit(alpha, runs)


def test_power_for_twenty_percent_slower() -> None:
    assert _crossing(1.2, 50, 5000, 0.05) == 1.0
