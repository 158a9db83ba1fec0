from __future__ import annotations

import math

import pytest
from scipy import integrate, stats

from rayrollout.analysis.eprocess import (
    beta_mixture_log_e,
    beta_mixture_two_sided_log_e,
    rho_confidence_sequence,
)


def _numeric(n_c: int, n_s: int, th0: float, kappa: float, one_sided: bool) -> float:
    a, b = kappa * th0, kappa * (1 - th0)
    prior = stats.beta(a, b)
    lo = th0 if one_sided else 0.0
    num = integrate.quad(
        lambda th: (th / th0) ** n_c * ((1 - th) / (1 - th0)) ** n_s * prior.pdf(th),
        lo,
        1.0,
        points=[n_c / max(n_c + n_s, 1)],
        limit=200,
    )[0]
    mass = prior.sf(th0) if one_sided else 1.0
    return math.log(num / mass)


@pytest.mark.parametrize(
    ("n_c", "n_s", "th0"), [(0, 0, 0.1), (5, 20, 0.1), (30, 70, 0.2), (3, 40, 0.1)]
)
def test_beta_mixture_matches_numeric_integration(n_c: int, n_s: int, th0: float) -> None:
    assert beta_mixture_log_e(n_c, n_s, th0, 100) == pytest.approx(
        _numeric(n_c, n_s, th0, 100, True), abs=1e-6
    )
    two = float(beta_mixture_two_sided_log_e(n_c, n_s, th0, 100))
    assert two == pytest.approx(_numeric(n_c, n_s, th0, 100, False), abs=1e-6)


def test_confidence_sequence_for_rho() -> None:
    lo, hi = rho_confidence_sequence(n_c=10, n_s=90, w=0.1, alpha=0.05)
    assert lo < 1.0 < hi  # a 1:9 split at w = 0.1 is exactly rho = 1
    lo5, hi5 = rho_confidence_sequence(n_c=60, n_s=140, w=0.1, alpha=0.05)
    assert 1.0 < lo5 < 3.86 < hi5  # rho_hat = (60/0.1)/(140/0.9) = 3.86
    lo0, hi0 = rho_confidence_sequence(n_c=0, n_s=0, w=0.1, alpha=0.05)
    assert lo0 == 0.0 and hi0 == math.inf
