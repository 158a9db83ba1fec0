"""Shared machinery of the sequential judges: version pair, warm-up, exposure, verdicts, state.

Verdict rule (the same for every sequential judge, in this order):

1. ``FAIL`` once ``max log E >= log(1/alpha)`` (latched: the first crossing decides; Ville's
   inequality bounds the probability of *ever* crossing by ``alpha`` under the null);
2. ``ERROR`` when more than ``max_unreadable_frac`` of the relevant events (or a whole batch)
   could not be read;
3. ``INCONCLUSIVE`` until the judge's minimum of data is reached (never PASS without data);
4. ``PASS`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from rayrollout._compat import Self
from rayrollout.analysis._select import EpochWeights
from rayrollout.analysis.base import LabelledEvent
from rayrollout.analysis.result import CheckResult, Verdict
from rayrollout.dataplane.events import EventBatch, Outcome, ShadowEvent

_COLUMNS = (
    "t",
    "version",
    "weight",
    "latency_ms",
    "outcome",
    "prediction",
    "unit",
    "randomised",
    "epoch",
)
UNIT_MODES = ("request", "session")
# Exposure counters every sequential judge reports (requests, not bad events).
COUNT_KEYS = (
    "candidate",  # judged candidate requests
    "baseline",  # judged baseline requests
    "warmup_candidate",  # served during warm-up: exposure, not judged
    "warmup_baseline",
    "not_randomised",  # excluded: routed by header pin or sticky key in request mode
    "readable",
    "unreadable",
)


def column_problem(events: EventBatch) -> str | None:
    """Why a batch cannot be read (missing or ragged columns), or None."""
    n = len(events.t)
    for name in _COLUMNS:
        col = getattr(events, name, None)
        if col is None:
            return f"event column {name!r} is missing"
        if len(col) != n:
            return f"event column {name!r} has {len(col)} values for {n} events"
    return None


def capture_params(args: dict[str, Any]) -> dict[str, Any]:
    """A judge's constructor arguments (``locals()`` taken first thing in ``__init__``) as the
    JSON-able ``params`` that ``to_state`` saves and ``from_state`` passes back."""
    return {
        k: list(v) if isinstance(v, tuple | list) else v
        for k, v in args.items()
        if k not in ("self", "__class__")
    }


@dataclass
class Selected:
    """The pair's events of one batch, in arrival order, with the candidate weight ``w``."""

    t: np.ndarray
    is_canary: np.ndarray
    w: np.ndarray
    latency: np.ndarray
    outcome: np.ndarray
    prediction: np.ndarray
    unit: np.ndarray
    judged: np.ndarray  # started, past warm-up, not REJECTED, randomised (or a session unit)
    reference: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # baseline


@dataclass
class Evidence:
    """What a judge reports to the common verdict rule."""

    log_e: float
    max_log_e: float
    statistic: str
    value: float | None
    enough: bool
    need: str  # what is missing when not ``enough``
    ci: tuple[float, float] | None = None
    counts: dict[str, float] = field(default_factory=dict)
    detail: str = ""
    can_fail: bool = True  # False for warning-only checks
    warning: bool = False


class SequentialJudge:
    """Base of the e-process judges; subclasses implement ``_consume`` and ``_evidence``."""

    kind: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        alpha: float,
        warmup_s: float,
        start_t: float | None,
        unit_mode: str = "request",
        max_unreadable_frac: float = 0.05,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"{name}: alpha must lie in (0, 1), got {alpha!r}")
        if unit_mode not in UNIT_MODES:
            raise ValueError(f"{name}: unit_mode must be one of {UNIT_MODES}, got {unit_mode!r}")
        if not warmup_s >= 0.0:
            raise ValueError(f"{name}: warmup_s must be >= 0, got {warmup_s!r}")
        self.name = name
        self.alpha = float(alpha)
        self.warmup_s = float(warmup_s)
        self.unit_mode = unit_mode
        self.max_unreadable_frac = float(max_unreadable_frac)
        self.params: dict[str, Any] = {}
        self.start_t = start_t
        self.pair: tuple[str, str] | None = None
        self.weights = EpochWeights()
        self.c: dict[str, int] = dict.fromkeys(COUNT_KEYS, 0)
        self.problem = ""
        self.failed_at: float | None = None

    # ---- the Judge protocol -------------------------------------------------------------
    def observe(
        self,
        events: EventBatch,
        baseline: str,
        candidate: str,
        shadow: Sequence[ShadowEvent] = (),
        labelled: Sequence[LabelledEvent] = (),
    ) -> None:
        """Consume new events; latch FAIL at the first crossing (time of the last event)."""
        if self.pair is None:
            self.pair = (baseline, candidate)
        elif self.pair != (baseline, candidate):
            got = (baseline, candidate)
            raise ValueError(f"{self.name}: judge is bound to {self.pair}, got {got}")
        last_t = self._consume(events, shadow, labelled)
        if self.failed_at is None and last_t is not None:
            peak = self._peak_log_e()
            if peak is not None and peak >= self.log_threshold:
                self.failed_at = last_t

    def result(self, now: float) -> CheckResult:
        """Apply the common verdict rule to the current evidence (does not change state)."""
        ev = self._evidence()
        thr = self.log_threshold
        ln10 = math.log(10.0)

        def make(verdict: Verdict, reason: str) -> CheckResult:
            return CheckResult(
                check=self.name,
                verdict=verdict,
                statistic=ev.statistic,
                value=ev.value,
                log_e=ev.log_e,
                threshold=1.0 / self.alpha,
                ci=ev.ci,
                counts={**self.c, **ev.counts},
                reason=reason,
                warning=ev.warning,
            )

        evid = (
            f"log10 E = {ev.log_e / ln10:.2f} (max {ev.max_log_e / ln10:.2f}; "
            f"threshold {thr / ln10:.2f}, false-rollback bound {self.alpha:g})"
        )
        if ev.can_fail and (self.failed_at is not None or ev.max_log_e >= thr):
            at = "" if self.failed_at is None else f" at t={self.failed_at:.3f}"
            return make(Verdict.FAIL, f"{ev.detail}; evidence crossed the threshold{at}: {evid}")
        unreadable = self._unreadable_reason()
        if unreadable:
            return make(Verdict.ERROR, unreadable)
        if not ev.enough:
            return make(Verdict.INCONCLUSIVE, f"not enough data: {ev.need}; {evid}")
        return make(Verdict.PASS, f"{ev.detail}; {evid}")

    def to_state(self) -> dict[str, Any]:
        """JSON-able state: ``kind``, ``params`` and everything needed to resume."""
        return {
            "kind": self.kind,
            "params": dict(self.params),
            "common": {
                "start_t": self.start_t,
                "pair": None if self.pair is None else list(self.pair),
                "weights": self.weights.to_state(),
                "counts": dict(self.c),
                "problem": self.problem,
                "failed_at": self.failed_at,
            },
            "stats": self._stats_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a judge from ``to_state()``; it continues exactly where it was."""
        if state.get("kind") != cls.kind:
            raise ValueError(f"state of kind {state.get('kind')!r} given to {cls.kind!r}")
        j = cls(**state["params"])
        com = state["common"]
        j.start_t = com["start_t"]
        j.pair = None if com["pair"] is None else (com["pair"][0], com["pair"][1])
        j.weights = EpochWeights.from_state(com["weights"])
        j.c = {k: int(v) for k, v in com["counts"].items()}
        j.problem = com["problem"]
        j.failed_at = com["failed_at"]
        j._load_stats(state["stats"])
        return j

    # ---- helpers for subclasses ---------------------------------------------------------
    @property
    def log_threshold(self) -> float:
        """``log(1/alpha)``: the e-value this judge FAILs at."""
        return math.log(1.0 / self.alpha)

    def _unreadable_reason(self) -> str:
        bad, good = self.c["unreadable"], self.c["readable"]
        if bad and (good == 0 or bad > self.max_unreadable_frac * (bad + good)):
            why = f": {self.problem}" if self.problem else ""
            return f"metric unreadable for {bad} of {bad + good} events{why}"
        return ""

    def _mark_unreadable(self, n: int, problem: str) -> None:
        if n:
            self.c["unreadable"] += int(n)
            self.problem = problem

    def _window(self, t: np.ndarray, is_canary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(started, past warm-up) masks; ``start_t`` defaults to the first candidate event."""
        if self.start_t is None and is_canary.any():
            self.start_t = float(t[np.argmax(is_canary)])
        if self.start_t is None:
            none = np.zeros(t.size, dtype=bool)
            return none, none
        started = t >= self.start_t
        return started, started & (t >= self.start_t + self.warmup_s)

    def _first_per_unit(self, judged: np.ndarray, unit: np.ndarray) -> np.ndarray:
        """In session mode, keep only each unit's first judged request (the session is the
        statistical unit); in request mode, every judged request. Needs ``self.units``."""
        judged = judged.copy()
        if self.unit_mode == "session":
            idx = np.flatnonzero(judged)
            judged[idx] = self.units.first_mask(unit[idx])  # type: ignore[attr-defined]
        return judged

    def _select(self, events: EventBatch) -> Selected | None:
        """The pair's events of a batch, with exposure and warm-up counted."""
        if not len(events):
            return None
        problem = column_problem(events)
        if problem:
            self._mark_unreadable(len(events), problem)
            return None
        assert self.pair is not None
        b, cand = self.pair
        rel = (events.version == cand) | (events.version == b)
        if not rel.any():
            return None
        t = np.asarray(events.t[rel], dtype=float)
        is_c = np.asarray(events.version[rel] == cand, dtype=bool)
        own = np.asarray(events.weight[rel], dtype=float)
        epoch = np.asarray(events.epoch[rel])
        outcome = np.asarray(events.outcome[rel])
        unit = np.asarray(events.unit[rel], dtype=object)
        rand = np.asarray(events.randomised[rel], dtype=bool)
        bad_w = ~((own >= 0.0) & (own <= 1.0))
        self._mark_unreadable(int(bad_w.sum()), "routing weight missing or outside [0, 1]")
        self.weights.learn(epoch, is_c, own, b, cand)
        w = self.weights.pair_w(epoch, is_c, np.where(bad_w, 0.5, own), b, cand)
        started, live = self._window(t, is_c)
        served = outcome != Outcome.REJECTED
        warm = started & ~live & served
        self.c["warmup_candidate"] += int((warm & is_c).sum())
        self.c["warmup_baseline"] += int((warm & ~is_c).sum())
        eligible = rand | ((unit != "") if self.unit_mode == "session" else False)
        live &= served & ~bad_w
        self.c["not_randomised"] += int((live & ~eligible).sum())
        judged = live & eligible
        self.c["candidate"] += int((judged & is_c).sum())
        self.c["baseline"] += int((judged & ~is_c).sum())
        return Selected(
            t=t,
            is_canary=is_c,
            w=w,
            latency=np.asarray(events.latency_ms[rel], dtype=float),
            outcome=outcome,
            prediction=np.asarray(events.prediction[rel], dtype=float),
            unit=unit,
            judged=judged,
            reference=~is_c & served & ~bad_w,
        )

    def _need_candidates(self, have: int, need: int, what: str) -> tuple[bool, str]:
        ok = have >= need
        extra = ""
        if self.c["not_randomised"] and self.unit_mode == "request":
            extra = f" ({self.c['not_randomised']} non-randomised events excluded; "
            extra += "use unit_mode='session' for sticky routing)"
        return ok, f"{have} of {need} {what}{extra}"

    # ---- subclass hooks -----------------------------------------------------------------
    def _consume(
        self,
        events: EventBatch,
        shadow: Sequence[ShadowEvent],
        labelled: Sequence[LabelledEvent],
    ) -> float | None:
        """Update the statistics; return the time of the last relevant event (or None)."""
        raise NotImplementedError

    def _evidence(self) -> Evidence:
        raise NotImplementedError

    def _peak_log_e(self) -> float | None:
        """Running maximum of ``log E`` for the FAIL latch (None: this check cannot fail).
        Subclasses with costly reporting override it with a cheap read."""
        ev = self._evidence()
        return ev.max_log_e if ev.can_fail else None

    def _stats_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_stats(self, state: dict[str, Any]) -> None:
        raise NotImplementedError
