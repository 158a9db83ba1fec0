"""Accuracy/calibration judge on labelled events: test A on wrong answers, paired Brier bets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rayrollout.analysis._arm_bet import ArmBetDifference
from rayrollout.analysis._bad_event import DEFAULT_RHO_GRID, BadEventEProcess
from rayrollout.analysis._betting import DEFAULT_LAMBDAS
from rayrollout.analysis._block_paired import BlockPairedDifference
from rayrollout.analysis._mix import log_mean_exp
from rayrollout.analysis._mixture import DEFAULT_KAPPA
from rayrollout.analysis.base import LabelledEvent
from rayrollout.analysis.judges._common import Evidence, SequentialJudge, capture_params
from rayrollout.analysis.judges._errors_util import ratio_and_cs
from rayrollout.dataplane.events import EventBatch, ShadowEvent

MODES = ("both", "errors", "brier")


class AccuracyJudge(SequentialJudge):
    """Is the candidate less accurate (or worse calibrated) than the baseline on labels?

    * ``errors``: test A on incorrect labelled answers; H0 error ratio ``<= rho0``.
    * ``brier``: block-paired betting on Brier scores (``(1-prob)^2`` if correct else
      ``prob^2``); H0 the candidate's mean Brier score is at most the baseline's + ``delta``.
    * ``both`` (default): the average of the two e-values, valid under both nulls at once.

    Labelled events are judged in time order within each batch; label delay must not depend on
    the arm. False-rollback bound: under H0, ``P(this judge ever FAILs) <= alpha``.
    """

    kind = "accuracy"

    def __init__(
        self,
        name: str = "accuracy",
        alpha: float = 0.01,
        mode: str = "both",
        rho0: float = 1.0,
        grid: Sequence[float] = DEFAULT_RHO_GRID,
        delta: float = 0.0,
        lambdas: Sequence[float] = DEFAULT_LAMBDAS,
        warmup_s: float = 0.0,
        start_t: float | None = None,
        min_labelled: int = 100,
        cs_kappa: float = DEFAULT_KAPPA,
        max_unreadable_frac: float = 0.05,
    ) -> None:
        params = capture_params(locals())
        super().__init__(name, alpha, warmup_s, start_t, "request", max_unreadable_frac)
        if mode not in MODES:
            raise ValueError(f"{name}: unknown accuracy mode {mode!r}; known: {MODES}")
        self.mode = mode
        self.wrong = BadEventEProcess(rho0=rho0, grid=grid)
        # Brier scores: arm bets at each moment (valid however the inputs' difficulty drifts)
        self.brier: ArmBetDifference | BlockPairedDifference = ArmBetDifference(
            delta=delta, lambdas=lambdas)
        self.min_labelled = int(min_labelled)
        self.cs_kappa = float(cs_kappa)
        self.max_seen = 0.0
        self.params = params

    def _consume(
        self,
        events: EventBatch,
        shadow: Sequence[ShadowEvent],
        labelled: Sequence[LabelledEvent],
    ) -> float | None:
        assert self.pair is not None
        b, cand = self.pair
        rows = sorted((e for e in labelled if e.version in (b, cand)), key=lambda e: e.t)
        if not rows:
            return None
        n = len(rows)
        t = np.fromiter((e.t for e in rows), dtype=float, count=n)
        is_c = np.fromiter((e.version == cand for e in rows), dtype=bool, count=n)
        own = np.fromiter((e.weight for e in rows), dtype=float, count=n)
        epoch = np.fromiter((e.epoch for e in rows), dtype=np.int64, count=n)
        correct = np.fromiter((bool(e.correct) for e in rows), dtype=bool, count=n)
        prob = np.fromiter((e.prob for e in rows), dtype=float, count=n)
        rand = np.fromiter((bool(e.randomised) for e in rows), dtype=bool, count=n)
        bad_w = ~((own >= 0.0) & (own <= 1.0))
        self._mark_unreadable(int(bad_w.sum()), "routing weight missing or outside [0, 1]")
        self.weights.learn(epoch, is_c, own, b, cand)
        w = self.weights.pair_w(epoch, is_c, np.where(bad_w, 0.5, own), b, cand)
        started, live = self._window(t, is_c)
        self.c["warmup_candidate"] += int((started & ~live & is_c).sum())
        self.c["warmup_baseline"] += int((started & ~live & ~is_c).sum())
        live &= ~bad_w
        self.c["not_randomised"] += int((live & ~rand).sum())
        use = live & rand
        self.c["candidate"] += int((use & is_c).sum())
        self.c["baseline"] += int((use & ~is_c).sum())
        wrong = np.flatnonzero(use & ~correct)
        self.wrong.update_many(is_c[wrong], w[wrong])
        if self.mode != "errors":
            p_ok = (prob >= 0.0) & (prob <= 1.0)
            self._mark_unreadable(int((use & ~p_ok).sum()), "probability missing or not in [0, 1]")
            use &= p_ok
            score = np.where(correct, (1.0 - prob) ** 2, prob**2)
            if isinstance(self.brier, ArmBetDifference):
                self.brier.observe_many(is_c[use], w[use], score[use])
            else:  # a block-paired state saved before arm bets
                self.brier.observe_many(is_c[use], score[use])
        self.c["readable"] += int(use.sum())
        self.max_seen = max(self.max_seen, self._log_e())
        return float(t[-1])

    def _log_e(self) -> float:
        if self.mode == "errors":
            return self.wrong.log_e
        if self.mode == "brier":
            return self.brier.log_e
        return log_mean_exp([self.wrong.log_e, self.brier.log_e])

    def _max_log_e(self) -> float:
        if self.mode == "errors":
            return self.wrong.max_log_e
        if self.mode == "brier":
            return self.brier.max_log_e
        return self.max_seen  # the mixture's running maximum, at batch ends

    def _evidence(self) -> Evidence:
        n_c, n_b = self.c["candidate"], self.c["baseline"]
        ratio, ci = ratio_and_cs(self.wrong, n_c, n_b, self.alpha, self.cs_kappa)
        enough, need = self._need_candidates(n_c, self.min_labelled, "labelled candidate requests")
        diff = self.brier.mean_difference
        shown = "n/a" if ratio is None else f"{ratio:.2f}x"
        detail = (
            f"candidate wrong-answer rate {shown} baseline ({self.wrong.n_canary} vs "
            f"{self.wrong.n_baseline} wrong over {n_c} vs {n_b} labelled)"
        )
        if self.mode != "errors":
            shown_d = "n/a" if math.isnan(diff) else f"{diff:+.4f}"
            detail += f"; paired Brier difference {shown_d} over {self.brier.n} blocks"
        stat, value = ("brier_difference", diff) if self.mode == "brier" else ("error_ratio", ratio)
        return Evidence(
            log_e=self._log_e(),
            max_log_e=self._max_log_e(),
            statistic=stat,
            value=None if value is None or math.isnan(value) else value,
            enough=enough,
            need=need,
            ci=None if self.mode == "brier" else ci,
            detail=detail,
            counts={
                "wrong_candidate": self.wrong.n_canary,
                "wrong_baseline": self.wrong.n_baseline,
                "brier_blocks": self.brier.n,
            },
        )

    def _peak_log_e(self) -> float | None:
        return self._max_log_e()

    def _stats_state(self) -> dict[str, Any]:
        return {
            "wrong": self.wrong.to_state(),
            "brier": self.brier.to_state(),
            "max_seen": self.max_seen,
        }

    def _load_stats(self, state: dict[str, Any]) -> None:
        self.wrong = BadEventEProcess.from_state(state["wrong"])
        st = state["brier"]
        self.brier = (BlockPairedDifference.from_state(st) if "open" in st
                      else ArmBetDifference.from_state(st))
        self.max_seen = float(state["max_seen"])
