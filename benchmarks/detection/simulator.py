"""Seeded, vectorised request-stream simulator with known ground truth (STATISTICS.md 2.1).

One call of :func:`simulate` returns a :class:`Run`: per-request arrays sorted by time. Times
``t < 0`` are the stable-only period before the canary starts (``pre_canary_s``); the canary
phase is ``0 <= t < horizon_s``. Every random draw comes from one generator seeded with
``numpy.random.SeedSequence([suite_seed, zlib.crc32(name.encode()), run_index])``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from benchmarks.detection.load import Load, draw_load
from benchmarks.detection.scenario import Scenario, SimConfig
from benchmarks.detection.sessions import hashed_arms
from benchmarks.detection.trace import load_trace_for


@dataclass
class Run:
    t: np.ndarray  # float64 seconds, sorted
    canary: np.ndarray  # bool
    w: np.ndarray  # routing probability to the canary at the request's time (0 before t=0)
    latency: np.ndarray  # ms
    error: np.ndarray  # bool
    horizon_s: float
    session: np.ndarray | None = None  # int session id (sticky routing) or None
    key: np.ndarray | None = None  # session key (rendezvous-hashed sessions) or None
    score: np.ndarray | None = None  # prediction score in [0, 1]
    correct: np.ndarray | None = None  # bool, prediction correct
    prob: np.ndarray | None = None  # model's probability for its predicted label (Brier)
    labelled: np.ndarray | None = None  # bool, label comes back
    label_t: np.ndarray | None = None  # time the label arrives
    disagree: np.ndarray | None = None  # bool, shadow disagreement (meaningful on canary rows)
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)  # aggregates shared by methods

    @property
    def n_requests(self) -> int:
        return int(np.count_nonzero(self.t >= 0))

    def exposure_before(self, t_decision: float) -> int:
        """Canary requests served in [0, t_decision)."""
        lo = np.searchsorted(self.t, 0.0, side="left")
        hi = np.searchsorted(self.t, t_decision, side="left")
        return int(np.count_nonzero(self.canary[lo:hi]))


def seed_sequence(suite_seed: int, name: str, run_index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([suite_seed, zlib.crc32(name.encode()), run_index])


def rng_for(suite_seed: int, name: str, run_index: int) -> np.random.Generator:
    return np.random.default_rng(seed_sequence(suite_seed, name, run_index))


def weight_at(cfg: SimConfig, t: np.ndarray) -> np.ndarray:
    """Canary routing probability w(t): constant or a step schedule; 0 before the canary."""
    if isinstance(cfg.weight, tuple):
        starts = np.array([s for s, _ in cfg.weight], dtype=float)
        ws = np.array([w for _, w in cfg.weight], dtype=float)
        idx = np.searchsorted(starts, t, side="right") - 1
        w = np.where(idx >= 0, ws[np.clip(idx, 0, None)], 0.0)
    else:
        w = np.full(t.shape, float(cfg.weight))
    return np.where(t >= 0, w, 0.0)


def _poisson_times(rng: np.random.Generator, rate: float, t0: float, t1: float) -> np.ndarray:
    n = rng.poisson(rate * (t1 - t0))
    gaps = rng.standard_exponential(n + 1)  # uniform order statistics via spacings (no sort)
    cum = np.cumsum(gaps)
    return t0 + (t1 - t0) * cum[:-1] / cum[-1]


def _thinned_times(rng: np.random.Generator, cfg: SimConfig, load: Load,
                   rate: float) -> np.ndarray:
    fmax = load.max_factor()
    t = _poisson_times(rng, rate * fmax, -cfg.pre_canary_s, cfg.horizon_s)
    if fmax == 1.0:
        return t
    keep = rng.random(t.size) < load.factor(t) / fmax
    return t[keep]


def _arrivals(rng: np.random.Generator, cfg: SimConfig,
              load: Load) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Request times, session id per request (or None), number of sessions."""
    if cfg.unit == "request":
        return _thinned_times(rng, cfg, load, cfg.rate), None, 0
    if cfg.unit != "session":
        raise ValueError(f"unit must be request|session, got {cfg.unit!r}")
    starts = _thinned_times(rng, cfg, load, cfg.rate / cfg.session_mean)
    sizes = rng.geometric(1.0 / cfg.session_mean, starts.size)
    sid = np.repeat(np.arange(starts.size), sizes)
    gaps = rng.exponential(cfg.session_gap_s, sid.size)
    first = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    gaps[first] = 0.0
    cum = np.cumsum(gaps)
    t = starts[sid] + cum - np.repeat(cum[first], sizes)
    keep = t < cfg.horizon_s
    t, sid = t[keep], sid[keep]
    order = np.argsort(t, kind="stable")
    return t[order], sid[order], starts.size


def _route(rng: np.random.Generator, cfg: SimConfig, t: np.ndarray, sid: np.ndarray | None,
           n_sessions: int, w: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if sid is None:
        return rng.random(t.size) < w, None
    if cfg.sticky == "hash":
        return hashed_arms(rng, cfg, t, sid, n_sessions)
    if cfg.sticky != "draw":
        raise ValueError(f"sticky must be draw|hash, got {cfg.sticky!r}")
    # the session's arm is drawn once, with the weight at its first request
    first_t = np.full(n_sessions, np.inf)
    np.minimum.at(first_t, sid, t)
    u = rng.random(n_sessions)
    return u[sid] < weight_at(cfg, first_t)[sid], None


def _canary_latency(cfg: SimConfig, rng: np.random.Generator, t: np.ndarray,
                    base: np.ndarray) -> np.ndarray:
    lat = base * cfg.lat_mult
    if cfg.warmup_amp:
        lat = lat * (1.0 + cfg.warmup_amp * np.exp(-np.maximum(t, 0.0) / cfg.warmup_tau_s))
    lat = lat + cfg.lat_add_ms
    if cfg.tail_frac > 0:
        lat = np.where(rng.random(t.size) < cfg.tail_frac, lat * cfg.tail_mult, lat)
    return lat


def _flip_errors(cfg: SimConfig, rng: np.random.Generator, err: np.ndarray, p: float) -> np.ndarray:
    """Transform replayed canary errors so that P(error) becomes err_ratio * p."""
    r = cfg.err_ratio
    u = rng.random(err.size)
    if r >= 1.0:
        up = min(1.0, p * (r - 1.0) / max(1e-12, 1.0 - p))
        return err | (u < up)
    return err & (u < r)


def _shift_scores(cfg: SimConfig, s: np.ndarray) -> np.ndarray:
    """Quantile map Beta(a, b) -> Beta(a + drift_s, b): exact drift for Beta(a, b) scores."""
    u = stats.beta.cdf(s, cfg.score_a, cfg.score_b)
    return stats.beta.ppf(u, cfg.score_a + cfg.drift_s, cfg.score_b)


def _ml_fields(cfg: SimConfig, rng: np.random.Generator, run: Run) -> None:
    n, can = run.t.size, run.canary
    if run.score is None:
        score = rng.beta(cfg.score_a, cfg.score_b, n)
        if cfg.drift_s:
            score = np.where(can, rng.beta(cfg.score_a + cfg.drift_s, cfg.score_b, n), score)
        run.score = score
        acc = np.where(can, cfg.accuracy - cfg.acc_drop, cfg.accuracy)
        run.correct = rng.random(n) < acc
    run.labelled = rng.random(n) < cfg.label_frac
    run.label_t = run.t + cfg.label_delay_s
    run.disagree = can & (rng.random(n) < cfg.disagree_rate)
    run.prob = _calibrated_prob(cfg, rng, run.correct)


def _calibrated_prob(cfg: SimConfig, rng: np.random.Generator,
                     correct: np.ndarray | None) -> np.ndarray:
    """The model's probability for its predicted label, calibrated for the stable model:
    p ~ Beta(k acc, k (1 - acc)) and correct | p ~ Bernoulli(p) is, given ``correct``,
    p ~ Beta(k acc + 1, k (1 - acc)) if right, Beta(k acc, k (1 - acc) + 1) if wrong. A
    less accurate canary answers with the same confidence, so its Brier score is worse."""
    assert correct is not None
    a, b = cfg.prob_kappa * cfg.accuracy, cfg.prob_kappa * (1.0 - cfg.accuracy)
    return rng.beta(a + correct, b + ~correct)


def _log_latency(cfg: SimConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-request log latency around the median: lognormal (sigma) or classic Pareto."""
    if cfg.lat_dist == "lognormal":
        return np.log(cfg.lat_median_ms) + cfg.lat_sigma * rng.standard_normal(n)
    if cfg.lat_dist == "pareto":  # x_m U^(-1/a), median x_m 2^(1/a)
        a = cfg.pareto_shape
        return np.log(cfg.lat_median_ms) - np.log(2.0) / a - np.log1p(-rng.random(n)) / a
    raise ValueError(f"lat_dist must be lognormal|pareto, got {cfg.lat_dist!r}")


def simulate(sc: Scenario, run_index: int, suite_seed: int = 0) -> Run:
    """One seeded run of scenario ``sc``."""
    rng = rng_for(suite_seed, sc.name, run_index)
    cfg = sc.sim
    if cfg.trace is not None or cfg.trace_synth is not None:
        return _replay(sc, rng)
    load = draw_load(rng, cfg)
    t, sid, n_sessions = _arrivals(rng, cfg, load)
    n = t.size
    w = weight_at(cfg, t)
    canary, key = _route(rng, cfg, t, sid, n_sessions, w)
    season = np.sin(2 * np.pi * t / cfg.diurnal_period_s)
    lat_log = _log_latency(cfg, rng, n)
    p = cfg.p_err * (1.0 + cfg.diurnal_error_amp * season)
    if sid is not None:
        lat_log = lat_log + cfg.session_latency_sd * rng.standard_normal(n_sessions)[sid]
        k = cfg.session_error_shape
        p = p * rng.gamma(k, 1.0 / k, n_sessions)[sid]
    base = np.exp(lat_log) * (1.0 + cfg.diurnal_latency_amp * season) * load.level(t)
    latency = np.where(canary, _canary_latency(cfg, rng, t, base), base)
    p = np.where(canary, p * cfg.err_ratio, p)
    error = rng.random(n) < np.clip(p, 0.0, 1.0)
    run = Run(t=t, canary=canary, w=w, latency=latency, error=error, horizon_s=cfg.horizon_s,
              session=sid, key=key)
    if cfg.ml:
        _ml_fields(cfg, rng, run)
    return run


def _replay(sc: Scenario, rng: np.random.Generator) -> Run:
    """Trace replay: arms drawn with w(t); canary outcomes transformed by the deltas."""
    cfg = sc.sim
    tr = load_trace_for(cfg)
    t = tr["timestamp"] - tr["timestamp"][0] - cfg.pre_canary_s
    keep = t < cfg.horizon_s
    t = t[keep]
    n = t.size
    w = weight_at(cfg, t)
    canary = rng.random(n) < w
    src = np.arange(n)
    if cfg.resample:  # canary outcomes bootstrapped from the whole trace
        src = np.where(canary, rng.integers(0, n, n), src)
    lat0 = tr["latency_ms"][keep][src]
    err0 = tr["error"][keep][src].astype(bool)
    latency = np.where(canary, _canary_latency(cfg, rng, t, lat0), lat0)
    error = np.where(canary, _flip_errors(cfg, rng, err0, float(err0.mean())), err0)
    run = Run(t=t, canary=canary, w=w, latency=latency, error=error,
              horizon_s=min(cfg.horizon_s, float(t[-1]) if n else 0.0))
    if cfg.ml and "score" in tr:
        s = tr["score"][keep][src]
        run.score = np.where(canary, _shift_scores(cfg, s), s) if cfg.drift_s else s
        c = tr["correct"][keep][src].astype(bool) if "correct" in tr else np.ones(n, bool)
        if cfg.acc_drop:  # flip correct -> wrong so that accuracy drops by acc_drop points
            a = max(1e-12, float(c.mean()))
            c = np.where(canary, c & (rng.random(n) >= cfg.acc_drop / a), c)
        run.correct = c
    if cfg.ml:
        _ml_fields(cfg, rng, run)
    return run
