"""Prediction-drift judge: test D on binned predictions (tolerance band, warning, or rank)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._arm_bet import ArmBetLatency
from rayrollout.analysis._bad_event import DEFAULT_RHO_GRID
from rayrollout.analysis._betting import DEFAULT_LAMBDAS
from rayrollout.analysis._block_paired import BlockPairedLatency
from rayrollout.analysis._drift import BinnedDriftEProcess, BinnedToleranceEProcess
from rayrollout.analysis._mix import log_mean_exp
from rayrollout.analysis._select import UnitTracker
from rayrollout.analysis.base import LabelledEvent
from rayrollout.analysis.judges._common import Evidence, SequentialJudge, capture_params
from rayrollout.dataplane.events import EventBatch, Outcome, ShadowEvent

MODES = ("tolerance", "warning", "rank")


def reference_edges(values: np.ndarray, n_bins: int) -> list[float]:
    """Bin edges from baseline reference predictions: midpoints between the distinct values
    when there are at most ``n_bins`` of them (classes), else the inner ``n_bins`` quantiles."""
    uniq = np.unique(values)
    if uniq.size <= n_bins:
        edges = (uniq[:-1] + uniq[1:]) / 2.0 if uniq.size > 1 else uniq
    else:
        edges = np.unique(np.quantile(values, np.arange(1, n_bins) / n_bins))
    return [float(e) for e in edges]


class DriftJudge(SequentialJudge):
    """Do the candidate's predictions differ from the baseline's beyond a tolerance?

    * ``mode="tolerance"`` (default, a guard): per bin ``rho_b = P(b | candidate) / P(b |
      baseline)``; H0: ``lo <= rho_b <= hi`` for every guarded bin.
    * ``mode="warning"``: H0 "same prediction distribution" (Lindon-Malek per bin); a crossing
      sets ``warning`` on a PASS/INCONCLUSIVE result and never FAILs (a new model is expected
      to differ).
    * ``mode="rank"``: two-sided block-paired sign test on scores with absolute tolerance
      ``delta``; H0: ``P(X > Y + delta) <= 1/2`` and ``P(Y > X + delta) <= 1/2``.

    Bins come from ``edges`` or from the first ``reference_n`` baseline predictions; nothing is
    judged before they are fixed. Only OK requests carry predictions.

    False-rollback bound (tolerance and rank modes): under H0, ``P(ever FAIL) <= alpha``.
    """

    kind = "drift"

    def __init__(
        self,
        name: str = "drift",
        alpha: float = 0.01,
        mode: str = "tolerance",
        edges: Sequence[float] | None = None,
        n_bins: int = 10,
        reference_n: int = 1000,
        lo: float = 0.8,
        hi: float = 1.25,
        guarded: Sequence[int] | None = None,
        grid: Sequence[float] = DEFAULT_RHO_GRID,
        kappa: float = 100.0,
        delta: float = 0.0,
        lambdas: Sequence[float] = DEFAULT_LAMBDAS,
        warmup_s: float = 0.0,
        start_t: float | None = None,
        min_candidate_requests: int = 200,
        unit_mode: str = "request",
        max_unreadable_frac: float = 0.05,
    ) -> None:
        params = capture_params(locals())
        super().__init__(name, alpha, warmup_s, start_t, unit_mode, max_unreadable_frac)
        if mode not in MODES:
            raise ValueError(f"{name}: unknown drift mode {mode!r}; known: {MODES}")
        self.mode = mode
        self.n_bins, self.reference_n = int(n_bins), int(reference_n)
        self.lo, self.hi, self.kappa = float(lo), float(hi), float(kappa)
        self.guarded = None if guarded is None else [int(b) for b in guarded]
        self.grid = [float(g) for g in grid]
        self.min_candidate_requests = int(min_candidate_requests)
        self.ref: list[float] = []
        self.units = UnitTracker()
        self.binned: BinnedToleranceEProcess | BinnedDriftEProcess | None = None
        # rank mode: arm bets on each score's rank at its moment, up and down (two-sided)
        self.up: ArmBetLatency | BlockPairedLatency = ArmBetLatency(delta_ms=delta,
                                                                     lambdas=lambdas)
        self.down: ArmBetLatency | BlockPairedLatency = ArmBetLatency(delta_ms=delta,
                                                                       lambdas=lambdas)
        self.rank_max = 0.0
        self.edges: list[float] | None = None
        self.bin_c = np.zeros(0, dtype=np.int64)
        self.bin_b = np.zeros(0, dtype=np.int64)
        if edges is not None and mode != "rank":
            self._fix_edges([float(e) for e in edges])
        self.params = params

    def _fix_edges(self, edges: list[float]) -> None:
        self.edges = edges
        if self.mode == "tolerance":
            self.binned = BinnedToleranceEProcess(edges, self.lo, self.hi, self.grid, self.guarded)
        else:
            self.binned = BinnedDriftEProcess(edges, self.kappa)
        self.bin_c = np.zeros(len(edges) + 1, dtype=np.int64)
        self.bin_b = np.zeros(len(edges) + 1, dtype=np.int64)

    def _consume(
        self,
        events: EventBatch,
        shadow: Sequence[ShadowEvent],
        labelled: Sequence[LabelledEvent],
    ) -> float | None:
        sel = self._select(events)
        if sel is None:
            return None
        okay = sel.outcome == Outcome.OK
        finite = np.isfinite(sel.prediction)
        judged = sel.judged & okay
        self._mark_unreadable(int((judged & ~finite).sum()), "prediction missing (NaN)")
        judged = self._first_per_unit(judged & finite, sel.unit)
        if self.mode != "rank" and self.edges is None:
            judged = self._collect_reference(sel.prediction, sel.reference & okay & finite, judged)
        self.c["readable"] += int(judged.sum())
        x, a, w = sel.prediction[judged], sel.is_canary[judged], sel.w[judged]
        if self.mode == "rank":
            for proc, v in ((self.up, x), (self.down, -x)):
                if isinstance(proc, ArmBetLatency):
                    proc.observe_many(a, w, v)
                else:  # a block-paired state saved before arm bets
                    proc.observe_many(a, v)
            self.rank_max = max(self.rank_max, self._rank_log_e())
        elif self.binned is not None and x.size:
            self.binned.update_many(x, a, w)
            b = np.searchsorted(self.binned.edges, x, side="right")
            self.bin_c += np.bincount(b[a], minlength=self.bin_c.size)
            self.bin_b += np.bincount(b[~a], minlength=self.bin_b.size)
        return float(sel.t[-1])

    def _collect_reference(self, x: np.ndarray, ref: np.ndarray, judged: np.ndarray) -> np.ndarray:
        """Take reference values in order; judge only events after the edges are fixed."""
        idx = np.flatnonzero(ref)[: self.reference_n - len(self.ref)]
        self.ref.extend(float(v) for v in x[idx])
        if len(self.ref) < self.reference_n:
            return np.zeros_like(judged)
        self._fix_edges(reference_edges(np.asarray(self.ref), self.n_bins))
        self.ref = []
        after = np.zeros_like(judged)
        after[(idx[-1] + 1 if idx.size else 0) :] = True
        return judged & after

    def _rank_log_e(self) -> float:
        return log_mean_exp([self.up.log_e, self.down.log_e])

    def _max_ratio(self) -> float | None:
        nc, nb = self.bin_c.sum(), self.bin_b.sum()
        if not nc or not nb:
            return None
        bins = range(self.bin_c.size) if self.guarded is None else self.guarded
        best: float | None = None
        for b in bins:
            if self.bin_b[b] and self.bin_c[b]:
                r = (self.bin_c[b] / nc) / (self.bin_b[b] / nb)
                if best is None or abs(math.log(r)) > abs(math.log(best)):
                    best = float(r)
        return best

    def _evidence(self) -> Evidence:
        if self.mode == "rank":
            log_e, max_log_e = self._rank_log_e(), self.rank_max
            cles = self.up.cles
            value = None if math.isnan(cles) else cles
            ready, stat = True, "cles"
            detail = f"P(candidate score > baseline + {self.up.delta_ms:g}) = {value} (H0 band)"
        else:
            log_e = 0.0 if self.binned is None else self.binned.log_e
            max_log_e = 0.0 if self.binned is None else self.binned.max_log_e
            value, ready, stat = self._max_ratio(), self.edges is not None, "max_bin_ratio"
            detail = f"most shifted prediction bin ratio {value} (edges {self.edges})"
            if self.mode == "tolerance":
                detail += f"; H0 every ratio in [{self.lo:g}, {self.hi:g}]"
        if not ready:
            need = f"{len(self.ref)} of {self.reference_n} baseline predictions for the bins"
            enough = False
        else:
            enough, need = self._need_candidates(
                self.c["candidate"], self.min_candidate_requests, "candidate requests"
            )
        warning = self.mode == "warning" and max_log_e >= self.log_threshold
        if warning:
            detail = "WARNING: prediction distribution differs from baseline; " + detail
        return Evidence(
            log_e=log_e,
            max_log_e=max_log_e,
            statistic=stat,
            value=value,
            enough=enough,
            need=need,
            detail=detail,
            can_fail=self.mode != "warning",
            warning=warning,
        )

    def _stats_state(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "edges": self.edges,
            "binned": None if self.binned is None else self.binned.to_state(),
            "bin_c": self.bin_c.tolist(),
            "bin_b": self.bin_b.tolist(),
            "up": self.up.to_state(),
            "down": self.down.to_state(),
            "rank_max": self.rank_max,
            "units": self.units.to_state(),
        }

    def _load_stats(self, state: dict[str, Any]) -> None:
        self.ref = [float(v) for v in state["ref"]]
        if state["edges"] is not None:
            self._fix_edges([float(e) for e in state["edges"]])
        if state["binned"] is not None:
            cls = BinnedToleranceEProcess if self.mode == "tolerance" else BinnedDriftEProcess
            self.binned = cls.from_state(state["binned"])
        self.bin_c = np.asarray(state["bin_c"], dtype=np.int64)
        self.bin_b = np.asarray(state["bin_b"], dtype=np.int64)
        self.up, self.down = (
            BlockPairedLatency.from_state(st) if "open" in st else ArmBetLatency.from_state(st)
            for st in (state["up"], state["down"]))
        self.rank_max = float(state["rank_max"])
        self.units = UnitTracker.from_state(state["units"])
