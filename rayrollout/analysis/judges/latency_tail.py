"""Latency-tail judge: test C, exceedances of a predictable stable quantile into test A."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._bad_event import DEFAULT_RHO_GRID
from rayrollout.analysis._mixture import DEFAULT_KAPPA
from rayrollout.analysis._select import UnitTracker
from rayrollout.analysis._tail import TailExceedance
from rayrollout.analysis.base import LabelledEvent
from rayrollout.analysis.judges._common import Evidence, SequentialJudge, capture_params
from rayrollout.analysis.judges._errors_util import ratio_and_cs
from rayrollout.analysis.judges._outcomes import outcome_codes
from rayrollout.dataplane.events import EventBatch, ShadowEvent


class LatencyTailJudge(SequentialJudge):
    """Does the candidate exceed the baseline's ``p``-quantile more often than ``rho0`` allows?

    The threshold is the baseline ``p``-quantile of all baseline latencies seen before the
    current ``refresh_s`` period (warm-up and pre-start baseline traffic included); judged
    requests of both arms above it are bad events for test A.

    False-rollback bound: when the candidate's probability of exceeding any such threshold is
    at most ``rho0`` times the baseline's at every time, ``P(this judge ever FAILs) <= alpha``.
    """

    kind = "latency_tail"

    def __init__(
        self,
        name: str = "latency_tail",
        alpha: float = 0.01,
        p: float = 0.99,
        refresh_s: float = 60.0,
        rho0: float = 1.0,
        grid: Sequence[float] = DEFAULT_RHO_GRID,
        sketch_size: int = 2048,
        min_reference: int | None = None,
        warmup_s: float = 0.0,
        start_t: float | None = None,
        min_candidate_requests: int = 500,
        unit_mode: str = "request",
        outcomes: Sequence[str] = ("OK",),
        cs_kappa: float = DEFAULT_KAPPA,
        max_unreadable_frac: float = 0.05,
    ) -> None:
        params = capture_params(locals())
        super().__init__(name, alpha, warmup_s, start_t, unit_mode, max_unreadable_frac)
        self.proc = TailExceedance(
            p=p,
            refresh_s=refresh_s,
            rho0=rho0,
            sketch_size=sketch_size,
            grid=grid,
            min_reference=min_reference,
        )
        self.min_candidate_requests = int(min_candidate_requests)
        self.codes = outcome_codes(outcomes, name)
        self.cs_kappa = float(cs_kappa)
        self.units = UnitTracker()
        self.params = params

    def _consume(
        self,
        events: EventBatch,
        shadow: Sequence[ShadowEvent],
        labelled: Sequence[LabelledEvent],
    ) -> float | None:
        sel = self._select(events)
        if sel is None:
            return None
        judged = self._first_per_unit(sel.judged, sel.unit)
        wanted = np.isin(sel.outcome, self.codes)
        ok = np.isfinite(sel.latency) & (sel.latency >= 0.0)
        self._mark_unreadable(
            int((judged & wanted & ~ok).sum()), "latency missing (NaN) or negative"
        )
        judged &= wanted & ok
        self.c["readable"] += int(judged.sum())
        feed = judged | (sel.reference & wanted & ok)
        self.proc.observe_many(
            sel.t[feed], sel.is_canary[feed], sel.latency[feed], sel.w[feed], judged[feed]
        )
        return float(sel.t[-1])

    def _evidence(self) -> Evidence:
        p = self.proc
        n_c, n_b = p.n_judged_canary, p.n_judged_baseline
        ratio, ci = ratio_and_cs(p.bad, n_c, n_b, self.alpha, self.cs_kappa)
        if p.threshold is None:
            enough = False
            need = (
                f"{p.hist.total} of {p.min_reference} baseline latencies for the p{p.p:g} threshold"
            )
        else:
            enough, need = self._need_candidates(
                n_c, self.min_candidate_requests, "candidate requests past the threshold's start"
            )
        thr = "unset" if p.threshold is None else f"{p.threshold:.1f} ms"
        shown = "n/a" if ratio is None else f"{ratio:.2f}x"
        detail = (
            f"candidate exceeds the baseline p{p.p:g} ({thr}) {shown} as often "
            f"({p.bad.n_canary} vs {p.bad.n_baseline} exceedances over {n_c} vs {n_b}; "
            f"H0 ratio <= {p.bad.rho0:g})"
        )
        counts: dict[str, float] = {
            "exceed_candidate": p.bad.n_canary,
            "exceed_baseline": p.bad.n_baseline,
            "judged_candidate": n_c,
            "judged_baseline": n_b,
        }
        if p.threshold is not None and math.isfinite(p.threshold):
            counts["threshold_ms"] = p.threshold
        return Evidence(
            log_e=p.log_e,
            max_log_e=p.max_log_e,
            statistic="tail_exceedance_ratio",
            value=ratio,
            enough=enough,
            need=need,
            ci=ci,
            detail=detail,
            counts=counts,
        )

    def _peak_log_e(self) -> float | None:
        return self.proc.max_log_e

    def _stats_state(self) -> dict[str, Any]:
        return {"proc": self.proc.to_state(), "units": self.units.to_state()}

    def _load_stats(self, state: dict[str, Any]) -> None:
        self.proc = TailExceedance.from_state(state["proc"])
        self.units = UnitTracker.from_state(state["units"])
