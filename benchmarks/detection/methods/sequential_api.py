"""Ours, driven through ``rayrollout.analysis.eprocess`` one 1 s batch at a time.

This is the deployment shape (the controller feeds each tick's events to the e-processes and
reads ``max_log_e``); the matrix uses the equivalent vectorised kernels of ``sequential.py``
for speed, and the tests check that both give the same decisions. Request-level routing only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.detection.methods import kernels as k
from benchmarks.detection.methods.base import Outcome, outcome_at
from benchmarks.detection.methods.sequential import DISAGREE_C, DRIFT_C, Sequential
from benchmarks.detection.scenario import Scenario
from benchmarks.detection.simulator import Run


def _processes(m: Sequential, guards: tuple[str, ...]) -> dict[str, Any]:
    from rayrollout.analysis import eprocess as ep

    made: dict[str, Any] = {}
    for g in guards:
        if g in ("errors", "accuracy"):
            made[g] = ep.BadEventEProcess(rho0=m.rho0, grid=k.RHO_GRID)
        elif g == "latency":
            made[g] = ep.BlockPairedLatency(tau=m.tau, delta_ms=m.delta_ms,
                                            lambdas=k.SIGN_LAMBDAS)
        elif g == "tail":  # same bins as the kernels' sketch
            made[g] = ep.TailExceedance(
                p=m.tail_p, refresh_s=m.refresh_s, rho0=m.rho0, sketch_size=k.N_BINS,
                lo_ms=math.exp(k.LOG_LO), hi_ms=math.exp(k.LOG_LO + k.N_BINS * k.LOG_STEP))
        elif g == "drift":
            made[g] = ep.BlockPairedDifference(delta=m.drift_tol, lambdas=DRIFT_C)
        elif g == "disagreement":
            lam = tuple(c / m.disagree_d0 for c in DISAGREE_C)
            made[g] = ep.BettingMeanEProcess(d0=m.disagree_d0, lambdas=lam)
    return made


@dataclass
class SequentialAPI(Sequential):
    label: str = "ours-api"
    tick_seconds: list[float] = field(default_factory=list, repr=False)

    def judge(self, run: Run, sc: Scenario, rng: np.random.Generator) -> Outcome:
        if run.session is not None:
            raise ValueError("ours-api supports request-level routing only")
        thr, ws = self.threshold(sc), self.warmup(sc)
        procs = _processes(self, sc.guards)
        t = run.t
        if "tail" in procs:  # pre-canary stable traffic: reference only, not judged
            pre = t < 0
            procs["tail"].observe_many(t[pre], run.canary[pre], run.latency[pre], run.w[pre],
                                       judged=np.zeros(int(pre.sum()), bool))
        cuts = np.searchsorted(t, np.arange(0.0, run.horizon_s + self.batch_s, self.batch_s))
        lab_cuts = (np.searchsorted(run.label_t, np.arange(0.0, run.horizon_s + self.batch_s,
                                                           self.batch_s))
                    if run.label_t is not None else None)
        self.tick_seconds = []
        for b in range(cuts.size - 1):
            c0 = time.perf_counter()
            sl = slice(int(cuts[b]), int(cuts[b + 1]))
            lab = (slice(int(lab_cuts[b]), int(lab_cuts[b + 1]))
                   if lab_cuts is not None else None)
            self._feed(procs, run, sl, lab, ws)
            hit = [g for g, p in procs.items() if p.max_log_e >= thr]
            self.tick_seconds.append(time.perf_counter() - c0)
            if hit:
                return outcome_at(run, (b + 1) * self.batch_s, f"{hit[0]}: E >= m/alpha",
                                  guard=hit[0])
        return outcome_at(run, None)

    def _feed(self, procs: dict[str, Any], run: Run, sl: slice, lab: slice | None,
              ws: float) -> None:
        t, c, lat, w = run.t[sl], run.canary[sl], run.latency[sl], run.w[sl]
        judged = t >= ws
        for g, p in procs.items():
            if g == "errors":
                e = run.error[sl] & judged
                if e.any():
                    p.update_many(c[e], w[e])
            elif g == "latency":
                p.observe_many(c[judged], lat[judged])
            elif g == "tail":
                p.observe_many(t, c, lat, w, judged=judged)
            elif g == "drift":
                assert run.score is not None
                p.observe_many(c[judged], run.score[sl][judged])
            elif g == "disagreement":
                assert run.disagree is not None
                sel = c & judged
                if sel.any():
                    p.update_many(run.disagree[sl][sel].astype(float))
            elif g == "accuracy" and lab is not None:
                assert run.correct is not None and run.labelled is not None
                sel = run.labelled[lab] & ~run.correct[lab] & (run.t[lab] >= ws)
                if sel.any():
                    p.update_many(run.canary[lab][sel], run.w[lab][sel])
