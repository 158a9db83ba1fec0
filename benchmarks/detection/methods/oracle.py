"""Closed-form fixed-horizon sample sizes (canary requests) for 80% power.

The oracle knows the true effect and uses one fixed-horizon one-sided test on the scenario's
primary metric. "Same alpha" is the per-metric share the sequential rule gets
(alpha / m, m = active guards); ``alpha_total`` gives the variant with the whole 0.05.

* counts (errors, tail exceedances, wrong predictions): conditional binomial test of the arm
  split of bad events, theta = w rho / (w rho + 1 - w) against theta0 = w; the number of bad
  events needed is converted to canary requests by the bad events per canary request;
* latency and score drift: Noether's formula for Mann-Whitney,
  N = (z_a + z_b)^2 / (12 c (1 - c) (P(X > Y) - 1/2)^2), canary n = c N with c = w;
* disagreement: one-sample binomial test of d1 against d0.
"""

from __future__ import annotations

import math

from scipy import integrate, stats

from benchmarks.detection.scenario import Scenario, SimConfig


def _z(a: float) -> float:
    return float(stats.norm.ppf(1.0 - a))


def binomial_n(p0: float, p1: float, alpha: float, power: float = 0.8) -> float:
    num = _z(alpha) * math.sqrt(p0 * (1 - p0)) + _z(1 - power) * math.sqrt(p1 * (1 - p1))
    return (num / (p1 - p0)) ** 2


def conditional_events_n(w: float, rho: float, alpha: float, power: float = 0.8) -> float:
    """Bad events (both arms) for the conditional binomial test of rho against 1."""
    th1 = w * rho / (w * rho + 1 - w)
    return binomial_n(w, th1, alpha, power)


def noether_n(cles: float, c: float, alpha: float, power: float = 0.8) -> float:
    """Total sample size of Noether's formula; the canary share is c."""
    return (_z(alpha) + _z(1 - power)) ** 2 / (12 * c * (1 - c) * (cles - 0.5) ** 2)


def _mean_weight(cfg: SimConfig) -> float:
    return float(cfg.weight[-1][1]) if isinstance(cfg.weight, tuple) else float(cfg.weight)


def tail_rho(cfg: SimConfig, p: float = 0.99) -> float:
    """Ratio of canary to stable probability of exceeding stable's p-quantile (lognormal)."""
    zq = stats.norm.ppf(p)
    def sf(mult: float) -> float:
        return float(stats.norm.sf(zq - math.log(mult) / cfg.lat_sigma))
    pc = (1 - cfg.tail_frac) * sf(cfg.lat_mult) + cfg.tail_frac * sf(cfg.lat_mult * cfg.tail_mult)
    return pc / (1 - p)


def latency_cles(cfg: SimConfig) -> float:
    """P(canary latency > stable latency) for lognormal latencies with a tail mixture."""
    s = cfg.lat_sigma * math.sqrt(2)
    def p(mult: float) -> float:
        return float(stats.norm.cdf(math.log(mult) / s))
    return (1 - cfg.tail_frac) * p(cfg.lat_mult) + cfg.tail_frac * p(cfg.lat_mult * cfg.tail_mult)


def beta_cles(a1: float, b1: float, a0: float, b0: float) -> float:
    """P(X > Y), X ~ Beta(a1, b1), Y ~ Beta(a0, b0)."""
    val, _ = integrate.quad(lambda y: stats.beta.sf(y, a1, b1) * stats.beta.pdf(y, a0, b0), 0, 1)
    return float(val)


def oracle_n(sc: Scenario, alpha: float | None = None, power: float = 0.8) -> float | None:
    """Canary requests a fixed-horizon test needs for 80% power; None for null scenarios."""
    if sc.truth != "effect":
        return None
    cfg = sc.sim
    a = 0.05 / len(sc.guards) if alpha is None else alpha
    w = _mean_weight(cfg)
    if sc.primary == "errors":
        rho, p = cfg.err_ratio, cfg.p_err
        per_canary = (w * rho * p + (1 - w) * p) / w
        return conditional_events_n(w, rho, a, power) / per_canary
    if sc.primary == "tail":
        rho = tail_rho(cfg)
        per_canary = (w * rho * 0.01 + (1 - w) * 0.01) / w
        return conditional_events_n(w, rho, a, power) / per_canary
    if sc.primary == "latency":
        return w * noether_n(latency_cles(cfg), w, a, power)
    if sc.primary == "drift":
        cl = beta_cles(cfg.score_a + cfg.drift_s, cfg.score_b, cfg.score_a, cfg.score_b)
        return w * noether_n(cl, w, a, power)
    if sc.primary == "accuracy":
        e0 = 1 - cfg.accuracy
        rho = (e0 + cfg.acc_drop) / e0
        per_canary = cfg.label_frac * (w * rho * e0 + (1 - w) * e0) / w
        return conditional_events_n(w, rho, a, power) / per_canary
    if sc.primary == "disagreement":
        return binomial_n(0.05, cfg.disagree_rate, a, power)
    raise ValueError(f"no oracle for primary metric {sc.primary!r}")
