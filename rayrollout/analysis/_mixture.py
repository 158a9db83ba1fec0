"""Closed forms for a constant canary weight: Beta mixtures and a confidence sequence for rho.

With a constant weight ``w`` the canary share of bad events is ``theta(rho) = w rho / (w rho +
1 - w)`` and the counts ``(N_c, N_s)`` are sufficient. The Lindon-Malek Beta prior centred on
the null, ``Beta(kappa theta0, kappa (1 - theta0))``, gives conjugate e-values.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.special import betaincc, betaln

DEFAULT_KAPPA = 100.0


def _prior(theta0: float, kappa: float) -> tuple[float, float]:
    if not 0.0 < theta0 < 1.0 or not kappa > 0.0:
        raise ValueError(f"need 0 < theta0 < 1 and kappa > 0, got {theta0!r}, {kappa!r}")
    return kappa * theta0, kappa * (1.0 - theta0)


def beta_mixture_log_e(n_c: int, n_s: int, theta0: float, kappa: float = DEFAULT_KAPPA) -> float:
    """One-sided Beta-mixture ``log E_n`` for ``H0: theta <= theta0`` (prior truncated above).

    ``E_n = B(a+N_c, b+N_s) (1 - I_theta0(a+N_c, b+N_s)) / (B(a,b) (1 - I_theta0(a,b))
    theta0^N_c (1-theta0)^N_s)``. A test supermartingale under the composite null, valid at
    any stopping time; ``-inf`` when the posterior mass above ``theta0`` underflows.
    """
    a, b = _prior(theta0, kappa)
    tail_post = float(betaincc(a + n_c, b + n_s, theta0))
    tail_prior = float(betaincc(a, b, theta0))
    if tail_post <= 0.0:
        return -math.inf
    return (
        float(betaln(a + n_c, b + n_s))
        + math.log(tail_post)
        - float(betaln(a, b))
        - math.log(tail_prior)
        - n_c * math.log(theta0)
        - n_s * math.log1p(-theta0)
    )


def beta_mixture_two_sided_log_e(
    n_c: int | np.ndarray,
    n_s: int | np.ndarray,
    theta0: float | np.ndarray,
    kappa: float = DEFAULT_KAPPA,
) -> np.ndarray:
    """Two-sided (untruncated) Beta-mixture ``log E_n`` for ``H0: theta = theta0`` (vectorised)."""
    th = np.asarray(theta0, dtype=float)
    a, b = kappa * th, kappa * (1.0 - th)
    out: np.ndarray = (
        betaln(a + n_c, b + n_s) - betaln(a, b) - n_c * np.log(th) - n_s * np.log1p(-th)
    )
    return out


@functools.lru_cache(maxsize=8)
def _grid(lo: float, hi: float, points: int) -> np.ndarray:
    g = np.geomspace(lo, hi, points)
    g.flags.writeable = False
    return g


def rho_confidence_sequence(
    n_c: int,
    n_s: int,
    w: float,
    alpha: float,
    kappa: float = DEFAULT_KAPPA,
    lo: float = 1e-2,
    hi: float = 1e2,
    points: int = 401,
) -> tuple[float, float]:
    """Confidence sequence for the bad-event ratio ``rho`` at a constant canary weight ``w``.

    ``{rho : E_n(rho) < 1/alpha}`` with the two-sided mixture, inverted on a log-spaced grid of
    ``points`` values in ``[lo, hi]``; covers the true ``rho`` at all times simultaneously with
    probability ``>= 1 - alpha`` (up to grid resolution). An end of the grid that is inside the
    set is reported as ``0`` or ``inf``.
    """
    if not 0.0 < w < 1.0 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need 0 < w < 1 and 0 < alpha < 1, got w={w!r} alpha={alpha!r}")
    rho = _grid(lo, hi, points)
    th = w * rho / (w * rho + 1.0 - w)
    inside = beta_mixture_two_sided_log_e(n_c, n_s, th, kappa) < math.log(1.0 / alpha)
    if not inside.any():
        return (math.nan, math.nan)
    idx = np.flatnonzero(inside)
    low = 0.0 if idx[0] == 0 else float(rho[idx[0]])
    high = math.inf if idx[-1] == points - 1 else float(rho[idx[-1]])
    return (low, high)
