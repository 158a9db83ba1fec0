"""Error-rate judge: test A on ERROR and TIMEOUT outcomes (``REJECTED`` never counts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._bad_event import DEFAULT_RHO_GRID, BadEventEProcess
from rayrollout.analysis._mixture import DEFAULT_KAPPA
from rayrollout.analysis._select import UnitTracker
from rayrollout.analysis.base import LabelledEvent
from rayrollout.analysis.judges._common import Evidence, SequentialJudge, capture_params
from rayrollout.analysis.judges._errors_util import ratio_and_cs
from rayrollout.dataplane.events import EventBatch, Outcome, ShadowEvent

BAD_OUTCOMES = (int(Outcome.ERROR), int(Outcome.TIMEOUT))
KNOWN_OUTCOMES = tuple(int(o) for o in Outcome)


class ErrorRateJudge(SequentialJudge):
    """Is the candidate's failure rate more than ``rho0`` times the baseline's?

    Bad events are ERROR and TIMEOUT outcomes of judged requests (randomised, past warm-up);
    REJECTED requests (bad input) are neither bad events nor exposure. In ``unit_mode=
    "session"`` each sticky unit counts at most once as bad (its first bad request).

    False-rollback bound: when the candidate's failure rate is at most ``rho0`` times the
    baseline's at every time (any common time-varying baseline rate, any predictable routing
    weights), ``P(this judge ever FAILs) <= alpha`` (Ville's inequality on test A).
    """

    kind = "errors"

    def __init__(
        self,
        name: str = "errors",
        alpha: float = 0.01,
        rho0: float = 1.0,
        grid: Sequence[float] = DEFAULT_RHO_GRID,
        warmup_s: float = 0.0,
        start_t: float | None = None,
        min_candidate_requests: int = 100,
        unit_mode: str = "request",
        cs_kappa: float = DEFAULT_KAPPA,
        max_unreadable_frac: float = 0.05,
    ) -> None:
        params = capture_params(locals())
        super().__init__(name, alpha, warmup_s, start_t, unit_mode, max_unreadable_frac)
        self.proc = BadEventEProcess(rho0=rho0, grid=grid)
        self.min_candidate_requests = int(min_candidate_requests)
        self.cs_kappa = float(cs_kappa)
        self.bad_units = UnitTracker()
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
        known = (sel.outcome >= 0) & (sel.outcome <= max(KNOWN_OUTCOMES))
        self._mark_unreadable(int((sel.judged & ~known).sum()), "unknown outcome code")
        judged = sel.judged & known
        self.c["readable"] += int(judged.sum())
        bad = np.flatnonzero(
            judged & ((sel.outcome == BAD_OUTCOMES[0]) | (sel.outcome == BAD_OUTCOMES[1]))
        )
        if self.unit_mode == "session" and bad.size:
            bad = bad[self.bad_units.first_mask(sel.unit[bad])]
        if bad.size:
            self.proc.update_many(sel.is_canary[bad], sel.w[bad])
        return float(sel.t[-1])

    def _evidence(self) -> Evidence:
        p = self.proc
        n_c, n_b = self.c["candidate"], self.c["baseline"]
        ratio, ci = ratio_and_cs(p, n_c, n_b, self.alpha, self.cs_kappa)
        enough, need = self._need_candidates(n_c, self.min_candidate_requests, "candidate requests")
        shown = "n/a" if ratio is None else f"{ratio:.2f}x"
        unit = "sessions" if self.unit_mode == "session" else "requests"
        detail = (
            f"candidate failure rate {shown} baseline ({p.n_canary} vs {p.n_baseline} bad "
            f"{unit} over {n_c} vs {n_b} requests; H0 ratio <= {p.rho0:g})"
        )
        return Evidence(
            log_e=p.log_e,
            max_log_e=p.max_log_e,
            statistic="failure_rate_ratio",
            value=ratio,
            enough=enough,
            need=need,
            ci=ci,
            detail=detail,
            counts={"bad_candidate": p.n_canary, "bad_baseline": p.n_baseline},
        )

    def _peak_log_e(self) -> float | None:
        return self.proc.max_log_e

    def _stats_state(self) -> dict[str, Any]:
        return {"proc": self.proc.to_state(), "bad_units": self.bad_units.to_state()}

    def _load_stats(self, state: dict[str, Any]) -> None:
        self.proc = BadEventEProcess.from_state(state["proc"])
        self.bad_units = UnitTracker.from_state(state["bad_units"])
