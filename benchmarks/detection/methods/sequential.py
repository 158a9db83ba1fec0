"""Ours: the anytime-valid tests of STATISTICS.md section 1, as the library deploys them.

Guards (each an e-process; rollback when any log E >= log(m / alpha), m = active guards):

* ``errors`` (test A) on error events, rho0 = 1;
* ``latency``: test B' (arm bets, ``ArmBetLatency``: bets on the randomised arm against each
  latency's mid-rank among the last ``window`` latencies before its batch), tau = delta = 0;
  ``latency="block_paired"`` is the older test B (``ours-blockpaired``);
* ``tail`` (test C) test A on exceedances of stable's p99, refreshed every 60 s from stable
  requests seen before the period (pre-canary traffic included);
* ``drift`` arm bets on the prediction score (``ArmBetDifference``, H0: mean score shift at each
  moment <= ``drift_tol``), bets ``DRIFT_C``; block-paired differences for ``ours-blockpaired``;
* ``disagreement`` bounded-mean betting on shadow disagreement, H0: E[D] <= d0;
* ``accuracy`` the library's ``AccuracyJudge(mode="both")``: test A on wrong answers averaged
  with arm bets (or block pairing) on Brier scores, in label-arrival order.

Events reach the guards as the scenario's event path delivers them (``delivery.py``: the
deployed path releases them in arrival order below the routers' watermark, once per tick);
a guard's decision is issued at the tick that released the batch in which it crossed.

Warm-up: requests in ``[0, warmup_s)`` are left out of the statistics (their exposure counts).
With sticky sessions the session is the statistical unit, as in the judges' session mode.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.detection.methods import guards as gd
from benchmarks.detection.methods import kernels as k
from benchmarks.detection.methods.accuracy import accuracy
from benchmarks.detection.methods.base import Outcome, outcome_at
from benchmarks.detection.methods.guards import DISAGREE_C, DRIFT_C, Stream
from benchmarks.detection.methods.view import path_of, view_of
from benchmarks.detection.scenario import Scenario
from benchmarks.detection.simulator import Run

__all__ = ["DISAGREE_C", "DRIFT_C", "Sequential", "Stream"]


@dataclass
class Sequential:
    alpha: float = 0.05
    warmup_s: float | None = None  # None: the scenario's warm-up exclusion
    rho0: float = 1.0
    tau: float = 0.0
    delta_ms: float = 0.0
    tail_p: float = 0.99
    refresh_s: float = 60.0
    drift_tol: float = 0.0
    disagree_d0: float = 0.05
    latency: str = "arm_bet"  # or "block_paired" (test B, also for drift and Brier)
    bets: str = "mixture"  # arm bets: "mixture" (library), "agrapa", "ons", "prior"
    scale: str = "max"  # arm bets on (A - w) g / max(w, 1 - w) (library) or "none": (A - w) g
    path: str | None = None  # None: the scenario's event path; "completion": before the fix
    window: int = 200
    label: str = "ours"

    @property
    def name(self) -> str:
        return self.label

    def config(self) -> dict[str, Any]:
        return {"family": "sequential", "alpha": self.alpha, "warmup_s": self.warmup_s,
                "rho0": self.rho0, "rho_grid": k.RHO_GRID, "tau": self.tau,
                "delta_ms": self.delta_ms, "sign_lambdas": k.SIGN_LAMBDAS,
                "latency": self.latency, "bets": self.bets, "scale": self.scale,
                "window": self.window, "path": self.path or "scenario's",
                "tail_p": self.tail_p, "refresh_s": self.refresh_s,
                "drift_tol": self.drift_tol, "disagree_d0": self.disagree_d0,
                "correction": "Bonferroni over the scenario's active guards"}

    def warmup(self, sc: Scenario) -> float:
        return sc.warmup_s if self.warmup_s is None else self.warmup_s

    def threshold(self, sc: Scenario) -> float:
        return math.log(len(sc.guards) / self.alpha)

    def event_path(self, sc: Scenario) -> str:
        return path_of(sc, self.path)

    def streams(self, run: Run, sc: Scenario) -> Iterator[tuple[str, Stream]]:
        ws = self.warmup(sc)
        v = view_of(run, sc, self.path)
        for g in sc.guards:
            if g == "accuracy":
                yield g, accuracy(self, run, sc, ws)
            else:
                yield g, getattr(gd, g)(self, v, ws)

    def judge(self, run: Run, sc: Scenario, rng: np.random.Generator) -> Outcome:
        thr = self.threshold(sc)
        best: tuple[float, str] | None = None
        peak: dict[str, float] = {}
        for g, s in self.streams(run, sc):
            peak[g] = float(s.log_e.max()) if s.log_e.size else 0.0
            hit = np.flatnonzero(s.log_e >= thr)
            td = float(s.t[hit[0]]) if hit.size else None
            if td is not None and td <= run.horizon_s and (best is None or td < best[0]):
                best = (td, g)
        if best is None:
            return outcome_at(run, None, peak_log10_e=_log10(peak))
        return outcome_at(run, best[0], f"{best[1]}: E >= {len(sc.guards)}/alpha",
                          guard=best[1], peak_log10_e=_log10(peak))


def _log10(d: dict[str, float]) -> dict[str, float]:
    return {g: round(v / math.log(10), 3) for g, v in d.items()}
