"""Latency judge: test B' (bets on the randomised arm against the latency's rank), or the older
block-paired test B where its assumptions hold."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._arm_bet import DEFAULT_WINDOW, ArmBetLatency
from rayrollout.analysis._betting import DEFAULT_LAMBDAS
from rayrollout.analysis._block_paired import BlockPairedLatency
from rayrollout.analysis._select import UnitTracker
from rayrollout.analysis.base import LabelledEvent
from rayrollout.analysis.judges._common import Evidence, SequentialJudge, capture_params
from rayrollout.analysis.judges._outcomes import outcome_codes
from rayrollout.dataplane.events import EventBatch, ShadowEvent

METHODS = ("arm_bet", "block_paired")


class LatencyJudge(SequentialJudge):
    """Is the candidate's latency stochastically larger than ``(1 + tau)`` x baseline + delta?

    Uses judged requests whose outcome is in ``outcomes`` (default OK only). In
    ``unit_mode="session"`` only the first judged request of each sticky unit is used (units are
    independent, requests within a unit are not).

    ``method="arm_bet"`` (default, ``rayrollout.analysis._arm_bet``): false-rollback bound
    ``P(this judge ever FAILs) <= alpha`` whenever, at every moment, the candidate's latency is
    not stochastically larger than ``(1 + tau)`` x the stable's at that moment + ``delta_ms``,
    for any latency level the two share (load spikes, drifts) and any event order that does not
    depend on the arm. It rests only on the arm being drawn at random with the recorded weight.

    ``method="block_paired"``: test B, each candidate request against the stable requests that
    follow it. Valid only when the shared latency level does not move within a block and events
    come in arrival order; kept for comparison.
    """

    kind = "latency"

    def __init__(
        self,
        name: str = "latency",
        alpha: float = 0.01,
        tau: float = 0.0,
        delta_ms: float = 0.0,
        lambdas: Sequence[float] = DEFAULT_LAMBDAS,
        warmup_s: float = 0.0,
        start_t: float | None = None,
        min_blocks: int = 30,
        unit_mode: str = "request",
        outcomes: Sequence[str] = ("OK",),
        max_unreadable_frac: float = 0.05,
        method: str = "arm_bet",
        window: int = DEFAULT_WINDOW,
    ) -> None:
        params = capture_params(locals())
        super().__init__(name, alpha, warmup_s, start_t, unit_mode, max_unreadable_frac)
        if method not in METHODS:
            raise ValueError(f"{name}: method must be one of {METHODS}, got {method!r}")
        self.method = method
        self.proc: ArmBetLatency | BlockPairedLatency = (
            ArmBetLatency(tau=tau, delta_ms=delta_ms, lambdas=lambdas, window=window)
            if method == "arm_bet" else
            BlockPairedLatency(tau=tau, delta_ms=delta_ms, lambdas=lambdas))
        self.min_blocks = int(min_blocks)
        self.codes = outcome_codes(outcomes, name)
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
        use = judged & np.isin(sel.outcome, self.codes)
        ok = np.isfinite(sel.latency) & (sel.latency >= 0.0)
        self._mark_unreadable(int((use & ~ok).sum()), "latency missing (NaN) or negative")
        use &= ok
        self.c["readable"] += int(use.sum())
        if isinstance(self.proc, ArmBetLatency):
            self.proc.observe_many(sel.is_canary[use], sel.w[use], sel.latency[use])
        else:
            self.proc.observe_many(sel.is_canary[use], sel.latency[use])
        return float(sel.t[-1])

    def _evidence(self) -> Evidence:
        p = self.proc
        cles = p.cles
        if isinstance(p, ArmBetLatency):
            n, what = self.c["candidate"], "candidate requests"
            over = f"{n} candidate of {p.n} requests compared at their moment"
        else:
            n, what = p.n, "paired candidate blocks"
            over = f"{p.n} paired blocks"
        enough, need = self._need_candidates(n, self.min_blocks, what)
        shown = "n/a" if math.isnan(cles) else f"{cles:.3f}"
        detail = (
            f"P(candidate > {1.0 + p.tau:g} x baseline + {p.delta_ms:g} ms) = {shown} over "
            f"{over} (H0: <= 0.5)"
        )
        return Evidence(
            log_e=p.log_e,
            max_log_e=p.max_log_e,
            statistic="cles",
            value=None if math.isnan(cles) else cles,
            enough=enough,
            need=need,
            detail=detail,
            counts={"blocks" if isinstance(p, BlockPairedLatency) else "compared": p.n},
        )

    def _stats_state(self) -> dict[str, Any]:
        return {"proc": self.proc.to_state(), "units": self.units.to_state()}

    def _load_stats(self, state: dict[str, Any]) -> None:
        proc = state["proc"]
        if "open" in proc:  # a block-paired state (also what judges saved before arm bets)
            self.method, self.proc = "block_paired", BlockPairedLatency.from_state(proc)
        else:
            self.proc = ArmBetLatency.from_state(proc)
        self.units = UnitTracker.from_state(state["units"])
