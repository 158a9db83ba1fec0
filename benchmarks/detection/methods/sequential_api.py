"""Ours, driven through ``rayrollout.analysis.eprocess`` one tick's batch at a time.

This is the deployment shape (the controller feeds each tick's released events to the
e-processes and reads ``max_log_e``); the matrix uses the equivalent vectorised kernels of
``sequential.py`` for speed, and the tests check that both give the same decisions, on the
scenario's event path. ``real=True`` takes the deployed path through the real router
``Recorder`` of each replica and the controller's ``ArrivalOrder`` (``delivery_real.py``).
Request-level routing only; the library has the mixture bets only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.detection.delivery import cached_delivery
from benchmarks.detection.delivery_real import real_watermark_delivery
from benchmarks.detection.methods import kernels as k
from benchmarks.detection.methods.accuracy import label_order
from benchmarks.detection.methods.base import Outcome, outcome_at
from benchmarks.detection.methods.sequential import DISAGREE_C, DRIFT_C, Sequential
from benchmarks.detection.scenario import Scenario
from benchmarks.detection.simulator import Run


class _Accuracy:
    """``AccuracyJudge(mode="both")``'s statistics: the average of test A on wrong answers
    and Brier bets, its running maximum read at batch ends."""

    def __init__(self, m: Sequential) -> None:
        from rayrollout.analysis import eprocess as ep

        self.wrong = ep.BadEventEProcess(rho0=m.rho0, grid=k.RHO_GRID)
        self.brier: Any = (ep.BlockPairedDifference(lambdas=k.SIGN_LAMBDAS)
                           if m.latency == "block_paired"
                           else ep.ArmBetDifference(lambdas=k.SIGN_LAMBDAS, window=m.window))
        self.max_log_e = 0.0

    def observe(self, run: Run, rows: np.ndarray, ws: float) -> None:
        assert run.correct is not None and run.prob is not None and run.labelled is not None
        rows = rows[run.labelled[rows] & (run.t[rows] >= ws)]
        if rows.size == 0:
            return
        c, w, right = run.canary[rows], run.w[rows], run.correct[rows]
        if (~right).any():
            self.wrong.update_many(c[~right], w[~right])
        brier = np.where(right, (1.0 - run.prob[rows]) ** 2, run.prob[rows] ** 2)
        if hasattr(self.brier, "window"):
            self.brier.observe_many(c, w, brier)
        else:
            self.brier.observe_many(c, brier)
        both = np.logaddexp(self.wrong.log_e, self.brier.log_e) - math.log(2.0)
        self.max_log_e = max(self.max_log_e, float(both))


def _processes(m: Sequential, guards: tuple[str, ...]) -> dict[str, Any]:
    from rayrollout.analysis import eprocess as ep

    bp = m.latency == "block_paired"
    made: dict[str, Any] = {}
    for g in guards:
        if g == "errors":
            made[g] = ep.BadEventEProcess(rho0=m.rho0, grid=k.RHO_GRID)
        elif g == "latency":
            made[g] = (ep.BlockPairedLatency(tau=m.tau, delta_ms=m.delta_ms,
                                             lambdas=k.SIGN_LAMBDAS) if bp else
                       ep.ArmBetLatency(tau=m.tau, delta_ms=m.delta_ms, lambdas=k.SIGN_LAMBDAS,
                                        window=m.window))
        elif g == "tail":  # same bins as the kernels' sketch
            made[g] = ep.TailExceedance(
                p=m.tail_p, refresh_s=m.refresh_s, rho0=m.rho0, sketch_size=k.N_BINS,
                lo_ms=math.exp(k.LOG_LO), hi_ms=math.exp(k.LOG_LO + k.N_BINS * k.LOG_STEP))
        elif g == "drift":
            made[g] = (ep.BlockPairedDifference(delta=m.drift_tol, lambdas=DRIFT_C) if bp else
                       ep.ArmBetDifference(delta=m.drift_tol, lambdas=DRIFT_C, window=m.window))
        elif g == "disagreement":
            lam = tuple(c / m.disagree_d0 for c in DISAGREE_C)
            made[g] = ep.BettingMeanEProcess(d0=m.disagree_d0, lambdas=lam)
        elif g == "accuracy":
            made[g] = _Accuracy(m)
    return made


def _feed(procs: dict[str, Any], run: Run, rows: np.ndarray, ws: float) -> None:
    """One tick's released request events (run indices, in delivery order)."""
    t, c, lat, w, err = (run.t[rows], run.canary[rows], run.latency[rows], run.w[rows],
                         run.error[rows])
    judged = t >= ws
    ok = judged & ~err
    for g, p in procs.items():
        if g == "errors":
            e = err & judged
            if e.any():
                p.update_many(c[e], w[e])
        elif g == "latency":
            if hasattr(p, "window"):
                p.observe_many(c[ok], w[ok], lat[ok])
            else:
                p.observe_many(c[ok], lat[ok])
        elif g == "tail":  # judged OK requests, plus every stable OK one as the reference
            feed = (ok & (t >= 0)) | (~c & ~err)
            p.observe_many(t[feed], c[feed], lat[feed], w[feed], judged=(ok & (t >= 0))[feed])
        elif g == "drift":
            assert run.score is not None
            s = run.score[rows]
            if hasattr(p, "window"):
                p.observe_many(c[ok], w[ok], s[ok])
            else:
                p.observe_many(c[ok], s[ok])
        elif g == "disagreement":
            assert run.disagree is not None
            sel = c & judged
            if sel.any():
                p.update_many(run.disagree[rows][sel].astype(float))


@dataclass
class SequentialAPI(Sequential):
    label: str = "ours-api"
    real: bool = False  # deployed path through the real Recorder / ArrivalOrder
    replicas: int = 3
    tick_seconds: list[float] = field(default_factory=list, repr=False)

    def _batches(self, run: Run, sc: Scenario) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """(tick, request rows, label rows) in tick order."""
        path, tick = self.event_path(sc), sc.sim.tick_s
        d = (real_watermark_delivery(run, tick, self.replicas) if self.real and
             path == "watermark" else cached_delivery(run, path, tick))
        by: dict[float, list[np.ndarray]] = {}
        empty = np.zeros(0, np.int64)
        for t_rel, rows in d.batches():
            by[t_rel] = [rows, empty]
        if "accuracy" in sc.guards:
            order, rel = label_order(run, tick)
            cuts = np.flatnonzero(np.diff(rel)) + 1
            for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, rel.size], strict=True):
                by.setdefault(float(rel[lo]), [empty, empty])[1] = order[lo:hi]
        return [(t, r, lab) for t, (r, lab) in sorted(by.items()) if t <= run.horizon_s]

    def judge(self, run: Run, sc: Scenario, rng: np.random.Generator) -> Outcome:
        if run.session is not None:
            raise ValueError("ours-api supports request-level routing only")
        if self.bets != "mixture" or self.scale != "max":
            raise ValueError("the library has the mixture of constant bets only")
        thr, ws = self.threshold(sc), self.warmup(sc)
        procs = _processes(self, sc.guards)
        self.tick_seconds = []
        for now, rows, lab in self._batches(run, sc):
            c0 = time.perf_counter()
            _feed(procs, run, rows, ws)
            if lab.size:
                procs["accuracy"].observe(run, lab, ws)
            hit = [g for g, p in procs.items() if p.max_log_e >= thr]
            self.tick_seconds.append(time.perf_counter() - c0)
            if hit:
                return outcome_at(run, now, f"{hit[0]}: E >= m/alpha", guard=hit[0])
        return outcome_at(run, None)
