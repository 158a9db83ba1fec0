"""Shadow-disagreement judge: betting on the mean disagreement (``H0: E[D] <= d0``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._betting import BettingMeanEProcess
from rayrollout.analysis.base import LabelledEvent
from rayrollout.analysis.judges._common import Evidence, SequentialJudge, capture_params
from rayrollout.dataplane.events import EventBatch, ShadowEvent


class DisagreementJudge(SequentialJudge):
    """Does the shadow candidate disagree with the baseline more than ``d0`` on average?

    Uses ``ShadowEvent``s with ``primary == baseline`` and ``shadow == candidate``; a failed
    shadow call counts as full disagreement (``failed_as_disagree``) or is skipped.

    False-rollback bound: when ``E[D | past] <= d0`` at every comparison,
    ``P(this judge ever FAILs) <= alpha`` (Waudby-Smith & Ramdas betting, Ville).
    """

    kind = "disagreement"

    def __init__(
        self,
        name: str = "disagreement",
        alpha: float = 0.01,
        d0: float = 0.05,
        lambdas: Sequence[float] | None = None,
        warmup_s: float = 0.0,
        start_t: float | None = None,
        min_comparisons: int = 100,
        failed_as_disagree: bool = True,
        max_unreadable_frac: float = 0.05,
    ) -> None:
        params = capture_params(locals())
        super().__init__(name, alpha, warmup_s, start_t, "request", max_unreadable_frac)
        self.proc = BettingMeanEProcess(d0=d0, lambdas=lambdas)
        self.min_comparisons = int(min_comparisons)
        self.failed_as_disagree = bool(failed_as_disagree)
        self.params = params

    def _consume(
        self,
        events: EventBatch,
        shadow: Sequence[ShadowEvent],
        labelled: Sequence[LabelledEvent],
    ) -> float | None:
        assert self.pair is not None
        b, cand = self.pair
        rows = [s for s in shadow if s.primary == b and s.shadow == cand]
        if not rows:
            return None
        t = np.fromiter((s.t for s in rows), dtype=float, count=len(rows))
        d = np.fromiter((s.disagree for s in rows), dtype=float, count=len(rows))
        ok = np.fromiter((bool(s.shadow_ok) for s in rows), dtype=bool, count=len(rows))
        _, live = self._window(t, np.ones(t.size, dtype=bool))
        self.c["warmup_candidate"] += int((~live).sum())
        if self.failed_as_disagree:
            d = np.where(ok, d, 1.0)
        else:
            live &= ok
        readable = (d >= 0.0) & (d <= 1.0)  # False for NaN
        self._mark_unreadable(
            int((live & ~readable).sum()), "disagreement missing or not in [0, 1]"
        )
        use = live & readable
        self.c["readable"] += int(use.sum())
        self.c["candidate"] += int(use.sum())
        self.proc.update_many(d[use])
        return float(t[-1])

    def _evidence(self) -> Evidence:
        p = self.proc
        mean = p.mean
        enough, need = self._need_candidates(p.n, self.min_comparisons, "shadow comparisons")
        shown = "n/a" if math.isnan(mean) else f"{mean:.4f}"
        return Evidence(
            log_e=p.log_e,
            max_log_e=p.max_log_e,
            statistic="disagreement_rate",
            value=None if math.isnan(mean) else mean,
            enough=enough,
            need=need,
            detail=f"mean disagreement {shown} over {p.n} comparisons (H0: <= {p.d0:g})",
            counts={"comparisons": p.n},
        )

    def _stats_state(self) -> dict[str, Any]:
        return {"proc": self.proc.to_state()}

    def _load_stats(self, state: dict[str, Any]) -> None:
        self.proc = BettingMeanEProcess.from_state(state["proc"])
