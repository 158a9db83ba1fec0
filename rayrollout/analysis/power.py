"""How many candidate requests a check needs to catch a given regression, with a given power.

A step that is left before its checks could have caught what matters passes silently: at 1%
canary weight and 100 req/s, a 10-minute step catches a 3x error rate on a 0.5% base only in
about 40% of runs. These functions turn "catch errors x3 on a 0.5% base with 80% power" into
the candidate requests a step needs, so the spec can say what it wants to catch and
``validate`` and the status can say how long each step needs.

The approximation: the log e-value of the best component of a check's mixture grows by ``g``
per candidate request on average, with variance ``v``; the check fails when it passes
``c = log(J / alpha)`` (``J`` components of equal weight). Treating the sum as Gaussian, the
chance to have crossed after ``n`` requests is ``Phi((n g - c) / sqrt(n v))``; ``needed``
solves it for ``n``. ``tests/unit/analysis/test_power.py`` checks the answers against the
e-processes run on simulated streams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

from rayrollout.analysis._bad_event import DEFAULT_RHO_GRID, theta
from rayrollout.analysis._betting import DEFAULT_LAMBDAS

_N = NormalDist()


def needed(g: float, v: float, c: float, power: float) -> int:
    """Smallest ``n`` with ``n g - z sqrt(n v) >= c`` (``z`` the ``power`` quantile)."""
    if g <= 0.0:
        raise ValueError("the check's bets cannot catch an effect this small")
    z = _N.inv_cdf(power)
    root = (z * math.sqrt(v) + math.sqrt(z * z * v + 4.0 * g * c)) / (2.0 * g)
    return math.ceil(root * root)


def errors_requests(
    ratio: float,
    base_rate: float,
    w: float,
    alpha: float,
    power: float = 0.8,
    grid: Sequence[float] = DEFAULT_RHO_GRID,
    rho0: float = 1.0,
) -> int:
    """Candidate requests for test A to catch a candidate error rate ``ratio`` x a baseline
    ``base_rate``, at candidate weight ``w`` (share of the pair), alpha share ``alpha``."""
    if not (ratio > rho0 and 0.0 < base_rate < 1.0 and 0.0 < w < 1.0):
        raise ValueError(f"need ratio > rho0, base_rate and w in (0, 1): {ratio}, {base_rate}, {w}")
    th = theta(ratio, w)
    th0 = theta(rho0, w)
    best_g, best_v = -math.inf, 0.0
    for gj in grid:
        tj = theta(rho0 * gj, w)
        a, b = math.log(tj / th0), math.log((1.0 - tj) / (1.0 - th0))
        mean = th * a + (1.0 - th) * b
        if mean > best_g:
            best_g, best_v = mean, th * (1.0 - th) * (a - b) ** 2 + mean * mean
    # bad events per candidate request: the candidate's own and the baseline's alongside
    per_request = base_rate * (ratio + (1.0 - w) / w)
    c = math.log(len(grid) / alpha)
    return needed(per_request * best_g, per_request * best_v, c, power)


def latency_requests(
    slower: float,
    sigma: float,
    w: float,
    alpha: float,
    power: float = 0.8,
    tau: float = 0.0,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
) -> int:
    """Candidate requests for test B' to catch a candidate ``slower`` (0.1: 10% slower) than
    the baseline, for latencies whose logarithm has spread ``sigma`` (log-normal), at candidate
    weight ``w``, tolerance ``tau`` and alpha share ``alpha``."""
    if not (slower > tau and sigma > 0.0 and 0.0 < w < 1.0):
        raise ValueError(f"need slower > tau, sigma > 0, w in (0, 1): {slower}, {sigma}, {w}")
    shift = math.log((1.0 + slower) / (1.0 + tau))
    d = 2.0 * _N.cdf(shift / (sigma * math.sqrt(2.0))) - 1.0  # E g(canary) - E g(stable)
    m = max(w, 1.0 - w)
    ez = w * (1.0 - w) * d / m  # per request of either arm
    ez2 = w * (1.0 - w) / 3.0 / (m * m)
    best_g, best_v = -math.inf, 0.0
    for lam in lambdas:  # E log(1 + lam z) to second order, per request
        mean = lam * ez - lam * lam * ez2 / 2.0
        if mean > best_g:
            best_g, best_v = mean, lam * lam * ez2
    c = math.log(len(lambdas) / alpha)
    return needed(best_g / w, best_v / w, c, power)  # per candidate request
