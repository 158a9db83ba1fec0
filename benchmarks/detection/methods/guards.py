"""The guards of ours as e-process trajectories over a ``View`` (delivery order).

Each returns a ``Stream``: ``log E`` after each event and the tick that releases the event to
the judges (the decision time when ``log E`` first reaches the threshold there). Selections
follow the library's judges: latency, tail and drift use OK requests only; with sticky
sessions each session counts once (its first judged request; errors: its first bad one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.detection.methods import armbet as ab
from benchmarks.detection.methods import kernels as k
from benchmarks.detection.methods.view import View, first_per_unit

if TYPE_CHECKING:
    from benchmarks.detection.methods.sequential import Sequential

DRIFT_C = (0.1, 0.2, 0.35, 0.5, 0.7, 0.9)  # bets on the score arm bets / (Z - tol) / (1 + tol)
DISAGREE_C = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32)
LATENCY_EFFECTS = (1.05, 1.1, 1.2, 1.5)  # data-driven prior: Kelly bets of these slow-downs
SCORE_EFFECTS = (0.01, 0.02, 0.05, 0.1)  # ... and of these mean score shifts
PRIOR_SAMPLE = 4000


@dataclass
class Stream:
    """One guard's e-process trajectory: value after each event and the event's release."""

    t: np.ndarray
    log_e: np.ndarray


def _cached(v: View, key: tuple[object, ...], fn: object) -> np.ndarray:
    full = ("guards", v.path, *key)
    if full not in v.run.cache:
        v.run.cache[full] = fn()  # type: ignore[operator]
    out: np.ndarray = v.run.cache[full]
    return out


def bad_events(m: Sequential, v: View, bad: np.ndarray) -> Stream:
    sel = np.flatnonzero(first_per_unit(bad, v.session))
    return Stream(v.rel[sel], k.bad_event_log_e(v.canary[sel], v.w[sel], m.rho0))


def errors(m: Sequential, v: View, ws: float) -> Stream:
    return bad_events(m, v, v.error & (v.t >= ws))


def _ok_first(v: View, ws: float) -> np.ndarray:
    """Judged OK requests: first judged request per session, then OK only (as the judges)."""
    return first_per_unit(v.t >= ws, v.session) & ~v.error


def _arm_stream(m: Sequential, v: View, sel: np.ndarray, g: np.ndarray,
                lambdas: tuple[float, ...], prior: tuple[float, ...] | None) -> Stream:
    z, keep = ab.arm_z(v.canary[sel], v.w[sel], g, m.scale)
    rel = v.rel[sel][keep]
    return Stream(rel, ab.log_e(z, rel, m.bets, lambdas, prior))


def latency(m: Sequential, v: View, ws: float) -> Stream:
    sel = np.flatnonzero(_ok_first(v, ws))
    a, lat = v.canary[sel], v.latency[sel]
    if m.latency == "block_paired":
        z, zt = k.block_pairs(v.rel[sel], a, lat, m.tau, m.delta_ms)
        return Stream(zt, k.bet_log_e(z, k.SIGN_LAMBDAS))
    x = np.where(a, (lat - m.delta_ms) / (1.0 + m.tau), lat)
    g = _cached(v, ("g-lat", ws, m.window, m.tau, m.delta_ms),
                lambda: ab.midrank_scores(x, v.rel[sel], m.window))
    prior = _latency_prior(v, v.w[sel][:1]) if m.bets == "prior" else None
    return _arm_stream(m, v, sel, g, k.SIGN_LAMBDAS, prior)


def _w0(w: np.ndarray) -> float:
    return float(w[0]) if w.size else 0.1


def _latency_prior(v: View, w_first: np.ndarray) -> tuple[float, ...]:
    pre = np.flatnonzero((v.t < 0) & ~v.canary & ~v.error)
    y = v.latency[pre[:: max(1, pre.size // PRIOR_SAMPLE)]]
    if y.size < 100:
        return k.SIGN_LAMBDAS
    eff = ab.latency_effects(y, LATENCY_EFFECTS)
    return ab.kelly_prior(eff, 1.0 / 3.0, _w0(w_first), max(k.SIGN_LAMBDAS))


def _score_prior(values: np.ndarray, tol: float, w_first: np.ndarray,
                 lambdas: tuple[float, ...]) -> tuple[float, ...]:
    if values.size < 100:
        return lambdas
    var = float(np.var(values)) / (1.0 + tol) ** 2
    eff = np.asarray(SCORE_EFFECTS) / (1.0 + tol)
    return ab.kelly_prior(eff, var, _w0(w_first), max(lambdas))


def tail(m: Sequential, v: View, ws: float) -> Stream:
    run = v.run
    n_per = math.ceil(run.horizon_s / m.refresh_s)
    ok = ~v.error
    ref = ~v.canary & ok
    key = ("q-tail", m.tail_p, m.refresh_s)
    q = _cached(v, key, lambda: k.refreshed_quantiles(v.t[ref], v.latency[ref], m.tail_p,
                                                       m.refresh_s, n_per))
    per = np.clip(np.floor(v.t / m.refresh_s).astype(np.int64), 0, n_per - 1)
    judged = _ok_first(v, ws) & (v.t >= 0)
    exceed = judged & (v.latency > q[per])
    sel = np.flatnonzero(exceed)
    return Stream(v.rel[sel], k.bad_event_log_e(v.canary[sel], v.w[sel], m.rho0))


def drift(m: Sequential, v: View, ws: float) -> Stream:
    assert v.run.score is not None, "drift guard needs a scenario with ml: true"
    judged = first_per_unit((v.t >= ws) & ~v.error, v.session)
    sel = np.flatnonzero(judged)
    a, s = v.canary[sel], v.col("score")[sel]
    tol = m.drift_tol
    if m.latency == "block_paired":  # BlockPairedDifference(delta=tol, lambdas=DRIFT_C)
        z, zt = k.block_pairs(v.rel[sel], a, s, kind="diff")
        return Stream(zt, k.bet_log_e((z - tol) / (1.0 + tol), DRIFT_C))
    x = np.where(a, s - tol, s)
    g = _cached(v, ("g-drift", ws, m.window, tol),
                lambda: ab.level_scores(x, v.rel[sel], m.window, tol))
    prior = None
    if m.bets == "prior":
        pre = (v.t < 0) & ~v.error
        prior = _score_prior(v.col("score")[pre], tol, v.w[sel][:1], DRIFT_C)
    return _arm_stream(m, v, sel, g, DRIFT_C, prior)


def disagreement(m: Sequential, v: View, ws: float) -> Stream:
    assert v.run.disagree is not None, "disagreement guard needs a scenario with ml: true"
    sel = np.flatnonzero(v.canary & (v.t >= ws))
    d = v.col("disagree")[sel].astype(float)
    lam = np.asarray(DISAGREE_C) / m.disagree_d0
    return Stream(v.rel[sel], k.bet_log_e(d - m.disagree_d0, lam))
