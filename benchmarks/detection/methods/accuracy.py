"""The accuracy guard as the library's ``AccuracyJudge(mode="both")`` runs it.

Labels come back ``label_delay_s`` after the request and are handed to the judges at the next
tick, sorted by request arrival within the tick. Two e-processes on the labelled requests:
test A on wrong answers, and bets on the Brier score (``(1 - p)^2`` if right, ``p^2`` if
wrong): arm bets (``ArmBetDifference``) or, for ``ours-blockpaired``, block pairing
(``BlockPairedDifference``). The guard's e-value is their average, read at the end of each
tick's batch (as the judge's running maximum is).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.detection.methods import armbet as ab
from benchmarks.detection.methods import kernels as k
from benchmarks.detection.methods.guards import SCORE_EFFECTS, Stream
from benchmarks.detection.scenario import Scenario
from benchmarks.detection.simulator import Run

if TYPE_CHECKING:
    from benchmarks.detection.methods.sequential import Sequential


def label_order(run: Run, tick_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(request indices of labels in the order the judge gets them, release tick of each)."""
    assert run.label_t is not None
    rel = (np.floor(run.label_t / tick_s) + 1.0) * tick_s
    order = np.lexsort((run.t, rel))
    return order, rel[order]


def _at_batch_ends(rel: np.ndarray, log_e: np.ndarray, ends: np.ndarray) -> np.ndarray:
    i = np.searchsorted(rel, ends, side="right") - 1
    return np.where(i >= 0, log_e[np.maximum(i, 0)] if log_e.size else 0.0, 0.0)


def _brier_prior(run: Run, sel: np.ndarray, w: np.ndarray) -> tuple[float, ...] | None:
    assert run.label_t is not None and run.prob is not None and run.correct is not None
    pre = run.labelled & (run.label_t < 0) if run.labelled is not None else np.zeros(0, bool)
    b = np.where(run.correct[pre], (1.0 - run.prob[pre]) ** 2, run.prob[pre] ** 2)
    if b.size < 100:
        return None
    eff = np.asarray(SCORE_EFFECTS) / 2.0
    return ab.kelly_prior(eff, float(np.var(b)), float(w[0]) if w.size else 0.1,
                          max(k.SIGN_LAMBDAS))


def accuracy(m: Sequential, run: Run, sc: Scenario, ws: float) -> Stream:
    assert run.correct is not None and run.labelled is not None and run.label_t is not None
    assert run.prob is not None, "accuracy guard needs prediction probabilities (ml: true)"
    order, rel = label_order(run, sc.sim.tick_s)
    keep = run.labelled[order] & (run.t[order] >= ws) & (run.label_t[order] < run.horizon_s)
    idx, rel = order[keep], rel[keep]
    a, w, right = run.canary[idx], run.w[idx], run.correct[idx]
    wrong = ~right
    e_wrong = k.bad_event_log_e(a[wrong], w[wrong], m.rho0)
    brier = np.where(right, (1.0 - run.prob[idx]) ** 2, run.prob[idx] ** 2)
    if m.latency == "block_paired":
        z, zt = k.block_pairs(rel, a, brier, kind="diff")
        b_rel, e_brier = zt, k.bet_log_e(z, k.SIGN_LAMBDAS)
    else:
        key = ("g-brier", sc.sim.tick_s, ws, m.window)
        if key not in run.cache:
            run.cache[key] = ab.level_scores(brier, rel, m.window, 0.0)
        z, ok = ab.arm_z(a, w, run.cache[key], m.scale)
        b_rel = rel[ok]
        prior = _brier_prior(run, idx, w) if m.bets == "prior" else None
        e_brier = ab.log_e(z, b_rel, m.bets, k.SIGN_LAMBDAS, prior)
    ends = np.unique(rel)
    both = np.logaddexp(_at_batch_ends(rel[wrong], e_wrong, ends),
                        _at_batch_ends(b_rel, e_brier, ends)) - math.log(2.0)
    return Stream(ends, both)
