"""Ours: the anytime-valid tests of STATISTICS.md section 1, evaluated per 1 s batch.

Guards (each an e-process; rollback when any log E >= log(m / alpha), m = active guards):

* ``errors`` (test A) on error events, rho0 = 1;
* ``latency`` (test B) block-paired sign bets, tau = 0, delta = 0;
* ``tail`` (test C) test A on exceedances of stable's p99, refreshed every 60 s from stable
  requests seen before the period (pre-canary traffic included);
* ``drift`` (test D) block-paired bets on the score difference with tolerance ``drift_tol``
  (H0: contemporaneous mean score shift <= tol), bets ``DRIFT_C`` on (Z - tol) / (1 + tol);
* ``disagreement`` (test D) bounded-mean betting on shadow disagreement, H0: E[D] <= d0;
* ``accuracy`` (test D) test A on "incorrect" events among labelled requests, in label-arrival
  order.

Warm-up: requests in ``[0, warmup_s)`` are left out of the statistics (their exposure counts).
With sticky sessions (``unit: session``) the session is the statistical unit: errors and tail
use a session's first bad event, latency the session's mean latency at its end.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.detection.methods import kernels as k
from benchmarks.detection.methods.base import Outcome, outcome_at
from benchmarks.detection.scenario import Scenario
from benchmarks.detection.simulator import Run

DRIFT_C = (0.1, 0.2, 0.35, 0.5, 0.7, 0.9)  # bets on (Z - tol) / (1 + tol) in [-1, 1]
DISAGREE_C = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32)


@dataclass
class Stream:
    """One guard's e-process trajectory: value after each event and the event's time."""

    t: np.ndarray
    log_e: np.ndarray


@dataclass
class Sequential:
    alpha: float = 0.05
    batch_s: float = 1.0
    warmup_s: float | None = None  # None: the scenario's warm-up exclusion
    rho0: float = 1.0
    tau: float = 0.0
    delta_ms: float = 0.0
    tail_p: float = 0.99
    refresh_s: float = 60.0
    drift_tol: float = 0.0
    disagree_d0: float = 0.05
    label: str = "ours"

    @property
    def name(self) -> str:
        return self.label

    def config(self) -> dict[str, Any]:
        return {"family": "sequential", "alpha": self.alpha, "batch_s": self.batch_s,
                "warmup_s": self.warmup_s, "rho0": self.rho0, "rho_grid": k.RHO_GRID,
                "tau": self.tau, "delta_ms": self.delta_ms, "sign_lambdas": k.SIGN_LAMBDAS,
                "tail_p": self.tail_p, "refresh_s": self.refresh_s,
                "drift_tol": self.drift_tol, "disagree_d0": self.disagree_d0,
                "correction": "Bonferroni over the scenario's active guards"}

    def warmup(self, sc: Scenario) -> float:
        return sc.warmup_s if self.warmup_s is None else self.warmup_s

    def threshold(self, sc: Scenario) -> float:
        return math.log(len(sc.guards) / self.alpha)

    def streams(self, run: Run, sc: Scenario) -> Iterator[tuple[str, Stream]]:
        ws = self.warmup(sc)
        for g in sc.guards:
            yield g, getattr(self, f"_{g}")(run, ws)

    def judge(self, run: Run, sc: Scenario, rng: np.random.Generator) -> Outcome:
        thr = self.threshold(sc)
        best: tuple[float, str] | None = None
        peak: dict[str, float] = {}
        for g, s in self.streams(run, sc):
            peak[g] = float(s.log_e.max()) if s.log_e.size else 0.0
            td = k.first_batch_crossing(s.t, s.log_e, thr, self.batch_s)
            if td is not None and td <= run.horizon_s and (best is None or td < best[0]):
                best = (td, g)
        if best is None:
            return outcome_at(run, None, peak_log10_e=_log10(peak))
        return outcome_at(run, best[0], f"{best[1]}: E >= {len(sc.guards)}/alpha",
                          guard=best[1], peak_log10_e=_log10(peak))

    # --- guards ---------------------------------------------------------------------------
    def _errors(self, run: Run, ws: float) -> Stream:
        return self._bad_events(run, run.error, ws)

    def _tail(self, run: Run, ws: float) -> Stream:
        n_per = math.ceil(run.horizon_s / self.refresh_s)
        st = ~run.canary
        q = k.refreshed_quantiles(run.t[st], run.latency[st], self.tail_p, self.refresh_s, n_per)
        per = np.clip(np.floor(run.t / self.refresh_s).astype(np.int64), 0, n_per - 1)
        exceed = (run.t >= 0) & (run.latency > q[per])
        return self._bad_events(run, exceed, ws)

    def _bad_events(self, run: Run, bad: np.ndarray, ws: float) -> Stream:
        sel = bad & (run.t >= ws)
        idx = np.flatnonzero(sel)
        if run.session is not None:  # a session's first bad event
            _, first = np.unique(run.session[idx], return_index=True)
            idx = idx[np.sort(first)]
        return Stream(run.t[idx], k.bad_event_log_e(run.canary[idx], run.w[idx], self.rho0))

    def _latency(self, run: Run, ws: float) -> Stream:
        t, can, lat = _analysis_window(run, ws)
        if run.session is not None:
            t, can, lat = _session_means(run, ws)
        z, zt = k.block_pairs(t, can, lat, self.tau, self.delta_ms)
        return Stream(zt, k.bet_log_e(z, k.SIGN_LAMBDAS))

    def _drift(self, run: Run, ws: float) -> Stream:
        assert run.score is not None, "drift guard needs a scenario with ml: true"
        sel = run.t >= ws
        z, zt = k.block_pairs(run.t[sel], run.canary[sel], run.score[sel], kind="diff")
        tol = self.drift_tol  # as rayrollout's BlockPairedDifference(delta=tol, lambdas=DRIFT_C)
        return Stream(zt, k.bet_log_e((z - tol) / (1.0 + tol), DRIFT_C))

    def _disagreement(self, run: Run, ws: float) -> Stream:
        assert run.disagree is not None, "disagreement guard needs a scenario with ml: true"
        sel = run.canary & (run.t >= ws)
        d = run.disagree[sel].astype(float)
        lam = np.asarray(DISAGREE_C) / self.disagree_d0
        return Stream(run.t[sel], k.bet_log_e(d - self.disagree_d0, lam))

    def _accuracy(self, run: Run, ws: float) -> Stream:
        assert run.correct is not None and run.labelled is not None and run.label_t is not None
        sel = run.labelled & ~run.correct & (run.t >= ws) & (run.label_t < run.horizon_s)
        return Stream(run.label_t[sel], k.bad_event_log_e(run.canary[sel], run.w[sel], self.rho0))


def _analysis_window(run: Run, ws: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sel = run.t >= ws
    return run.t[sel], run.canary[sel], run.latency[sel]


def _session_means(run: Run, ws: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per session (requests after ws): end time, arm, mean latency; sorted by end time."""
    assert run.session is not None
    sel = run.t >= ws
    sid = run.session[sel]
    uniq, inv = np.unique(sid, return_inverse=True)
    n = np.bincount(inv)
    mean = np.bincount(inv, weights=run.latency[sel]) / n
    end = np.zeros(uniq.size)
    np.maximum.at(end, inv, run.t[sel])
    arm = np.zeros(uniq.size, bool)
    arm[inv] = run.canary[sel]
    order = np.argsort(end, kind="stable")
    return end[order], arm[order], mean[order]


def _log10(d: dict[str, float]) -> dict[str, float]:
    return {g: round(v / math.log(10), 3) for g, v in d.items()}
