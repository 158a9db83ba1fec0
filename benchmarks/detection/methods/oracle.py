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


def _segments(cfg: SimConfig) -> list[tuple[float, float]]:
    """(start, canary weight) of each weight step (a constant weight is one step at 0)."""
    if isinstance(cfg.weight, tuple):
        return [(float(s), float(w)) for s, w in cfg.weight]
    return [(0.0, float(cfg.weight))]


def _latency_step(cfg: SimConfig, w: float, span: float, need: float,
                  acc: list[float]) -> bool:
    """Advance the latency information ``acc = [info, canary]`` through one step; True once
    ``info`` reaches ``need`` (``acc`` then holds the canary requests at that point)."""
    per_s = w * (1 - w) * cfg.rate
    dt = min(span, (need - acc[0]) / per_s) if per_s > 0 else span
    acc[0] += per_s * dt
    acc[1] += w * cfg.rate * dt
    return acc[0] >= need - 1e-9


def _errors_step(cfg: SimConfig, w: float, span: float, za: float, zb: float,
                 acc: list[float]) -> bool:
    """Same for the bad-event arm split: ``acc = [drift, var0, var1, canary]``."""
    rho = cfg.err_ratio
    th = w * rho / (w * rho + 1 - w)
    ev_s = cfg.p_err * cfg.rate * (w * rho + 1 - w)  # bad events per second
    drift, var0, var1 = acc[0], acc[1], acc[2]

    def ok(dt: float) -> bool:
        n = ev_s * dt
        return drift + n * (th - w) >= (za * math.sqrt(var0 + n * w * (1 - w))
                                        + zb * math.sqrt(var1 + n * th * (1 - th)))

    lo, hi = 0.0, min(span, 1e7)
    done = ok(hi)
    if done:
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    n = ev_s * hi
    acc[:] = [drift + n * (th - w), var0 + n * w * (1 - w), var1 + n * th * (1 - th),
              acc[3] + w * cfg.rate * hi]
    return done


def stepped_oracle_n(cfg: SimConfig, primary: str, alpha: float, power: float = 0.8) -> float:
    """Canary requests a fixed-horizon test pooling every step needs (weights known per
    request), accumulated along the schedule at ``rate``. Latency: the linear rank statistic
    ``sum (A - w) g`` needs ``sum w (1 - w) >= (z_a + z_b)^2 / (12 (c - 1/2)^2)``; errors: the
    conditional arm split of bad events needs ``sum (theta - w) >= z_a sqrt(sum w (1 - w)) +
    z_b sqrt(sum theta (1 - theta))``. Both reduce to the constant-weight formulas."""
    za, zb = _z(alpha), _z(1 - power)
    segs = _segments(cfg)
    ends = [s for s, _ in segs[1:]] + [math.inf]
    lat = primary == "latency"
    need = (za + zb) ** 2 / (12 * (latency_cles(cfg) - 0.5) ** 2) if lat else math.inf
    acc = [0.0, 0.0] if lat else [0.0, 0.0, 0.0, 0.0]
    for (start, w), end in zip(segs, ends, strict=True):
        done = (_latency_step(cfg, w, end - start, need, acc) if lat
                else _errors_step(cfg, w, end - start, za, zb, acc))
        if done:
            return acc[-1]
    return math.inf


def oracle_n(sc: Scenario, alpha: float | None = None, power: float = 0.8) -> float | None:
    """Canary requests a fixed-horizon test needs for 80% power; None for null scenarios."""
    if sc.truth != "effect":
        return None
    cfg = sc.sim
    a = 0.05 / len(sc.guards) if alpha is None else alpha
    if isinstance(cfg.weight, tuple) and sc.primary in ("errors", "latency"):
        return stepped_oracle_n(cfg, sc.primary, a, power)
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
