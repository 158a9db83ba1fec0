"""Latency judge: test B, block-paired sign betting on contemporaneous latencies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._betting import DEFAULT_LAMBDAS
from rayrollout.analysis._block_paired import BlockPairedLatency
from rayrollout.analysis._select import UnitTracker
from rayrollout.analysis.base import LabelledEvent
from rayrollout.analysis.judges._common import Evidence, SequentialJudge, capture_params
from rayrollout.analysis.judges._outcomes import outcome_codes
from rayrollout.dataplane.events import EventBatch, ShadowEvent


class LatencyJudge(SequentialJudge):
    """Is the candidate's latency stochastically larger than ``(1 + tau)`` x baseline + delta?

    Uses judged requests whose outcome is in ``outcomes`` (default OK only), in arrival order.
    In ``unit_mode="session"`` only the first judged request of each sticky unit is used (units
    are independent, requests within a unit are not).

    False-rollback bound: when, at every time, canary latency is not stochastically larger than
    ``(1 + tau)`` times contemporaneous stable latency plus ``delta_ms`` (``CLES <= 1/2``),
    ``P(this judge ever FAILs) <= alpha``. No distributional assumption (heavy tails fine).
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
    ) -> None:
        params = capture_params(locals())
        super().__init__(name, alpha, warmup_s, start_t, unit_mode, max_unreadable_frac)
        self.proc = BlockPairedLatency(tau=tau, delta_ms=delta_ms, lambdas=lambdas)
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
        self.proc.observe_many(sel.is_canary[use], sel.latency[use])
        return float(sel.t[-1])

    def _evidence(self) -> Evidence:
        p = self.proc
        cles = p.cles
        enough, need = self._need_candidates(p.n, self.min_blocks, "paired candidate blocks")
        shown = "n/a" if math.isnan(cles) else f"{cles:.3f}"
        detail = (
            f"P(candidate > {1.0 + p.tau:g} x baseline + {p.delta_ms:g} ms) = {shown} over "
            f"{p.n} paired blocks (H0: <= 0.5)"
        )
        return Evidence(
            log_e=p.log_e,
            max_log_e=p.max_log_e,
            statistic="cles",
            value=None if math.isnan(cles) else cles,
            enough=enough,
            need=need,
            detail=detail,
            counts={"blocks": p.n},
        )

    def _stats_state(self) -> dict[str, Any]:
        return {"proc": self.proc.to_state(), "units": self.units.to_state()}

    def _load_stats(self, state: dict[str, Any]) -> None:
        self.proc = BlockPairedLatency.from_state(state["proc"])
        self.units = UnitTracker.from_state(state["units"])
