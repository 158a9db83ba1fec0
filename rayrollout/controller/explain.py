"""What a rollout is still waiting for, in words and numbers. Pure: no clock, no I/O.

``waiting_for(state, spec, results, now)`` lists, for the phase the rollout is in, each thing
that keeps it from moving on, e.g. ``v2.errors: needs 88 more candidate requests at the
current rate (~2.0/s: ~44 s)``. The status shows the list (key ``waiting_for``), the status page
and the report render it, and ``decide`` names the same entries in the reason of a pause by
the progress deadline (``strategy.progress_deadline_s``), so the log and the status say the
same thing.

What the entries are made of, all taken from what the controller already holds:

* a check that is INCONCLUSIVE: the judges say what they miss as ``not enough data: <have> of
  <need> <what>`` (``analysis.judges._common``); the rest of the reason is shown as it is;
* a check in ERROR: its reason (a metric that cannot be read, a source that does not answer);
* the step's own minimums: ``min_requests`` and what ``analysis.detect`` needs at the step's
  weight (``RolloutSpec.step_needs``), ``min_duration_s``; the shadow phase's
  ``min_comparisons``;
* a step that passed and waits for a person (approval) or for replicas (capacity).

Rates are "current": the candidate requests (of the least-exposed candidate, as the step
counts them) and the shadow comparisons counted since the phase began or was resumed
(``RolloutState.phase_counts``), over the time since (``phase_since``). A paused step counts
no requests, so it gives no rate. An ETA is the missing count over that rate.

Guarantees: the same inputs give the same list; every entry is JSON (``Entry`` keys below);
``holds`` is True exactly for the entries the progress deadline counts (a check not PASS, the
step's requests or the shadow's comparisons short), never for time alone, approval or capacity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rayrollout.analysis.result import CheckResult, Verdict
from rayrollout.controller.phases import Phase
from rayrollout.controller.state import RolloutState
from rayrollout.spec import RolloutSpec

__all__ = ["Rates", "deadline", "rates", "summary", "waiting_for"]

# "not enough data: 12 of 100 candidate requests (...); log10 E = ..." (the judges' wording)
_SHORT = re.compile(r"not enough data: (\d+) of (\d+) ([^;(]+)")
_EXPLAINED = (Phase.SHADOW, Phase.CANARY, Phase.AWAITING_APPROVAL)


@dataclass(frozen=True)
class Rates:
    """Per second in the current phase; None where nothing says (paused, no time yet)."""

    candidate: float | None = None  # candidate requests, least-exposed candidate
    comparisons: float | None = None  # shadow comparisons
    stable: float | None = None  # stable requests, derived from the candidate's and the weights


def rates(state: RolloutState, now: float) -> Rates:
    """The current rates: counts since ``phase_since`` over the time since."""
    s = state
    elapsed = now - s.phase_since
    if elapsed <= 0:
        return Rates()
    base = s.phase_counts
    cand = comp = stable = None
    if s.phase == Phase.CANARY:
        cand = max(0, s.step_requests - base.get("step_requests", 0)) / elapsed
        active = s.active()
        w = s.weights.get(active[0], 0.0) if active else 0.0
        if w > 0:
            stable = cand * s.weights.get(s.stable, 0.0) / w
    if s.shadow:
        comp = max(0, s.shadow_compared - base.get("shadow_compared", 0)) / elapsed
        if s.phase == Phase.SHADOW and s.shadow_fraction > 0:
            stable = comp / s.shadow_fraction
    return Rates(cand, comp, stable)


def waiting_for(
    state: RolloutState,
    spec: RolloutSpec,
    results: Mapping[str, Sequence[CheckResult]],
    now: float,
) -> list[dict[str, Any]]:
    """What keeps the rollout where it is, one entry per thing (see the module docstring).

    Each entry: ``candidate`` (None for the step or phase itself), ``check`` (a check's name,
    or ``step``, ``shadow``, ``approval``, ``capacity``), ``kind`` (``check``, ``requests``,
    ``comparisons``, ``duration``, ``approval``, ``capacity``), ``verdict`` (a check's, else
    None), ``what`` (the unit counted), ``have``, ``need``, ``rate_per_s``, ``eta_s`` (None
    when unknown), ``holds`` (counted by the progress deadline) and ``text`` (one sentence).
    Empty outside the shadow phase, a canary step, an approval wait, and a pause from them."""
    s = state
    phase = s.paused_from if s.phase == Phase.PAUSED else s.phase
    if phase not in _EXPLAINED:
        return []
    r = rates(s, now) if s.phase != Phase.PAUSED else Rates(
        comparisons=rates(s, now).comparisons)
    if s.pending is not None and phase == Phase.AWAITING_APPROVAL:
        return [_capacity(s)]
    if phase == Phase.AWAITING_APPROVAL:
        return [_approval(s, spec)]
    out: list[dict[str, Any]] = []
    if s.pending is not None:
        out.append(_capacity(s))
    elif phase == Phase.CANARY:
        out += _step(s, spec, r, now)
    else:
        out += _shadow(s, spec, r, now)
    for cand in s.active():
        rs = results.get(cand)
        if not rs:
            if phase == Phase.CANARY:
                out.append(_entry(cand, "checks", "check", None, text="waits for its first "
                                  "check results", holds=True))
            continue
        for res in rs:
            if res.verdict in (Verdict.INCONCLUSIVE, Verdict.ERROR) and (
                    phase == Phase.CANARY or res.verdict == Verdict.ERROR):
                out.append(_check(cand, res, r))
    return out


def summary(entries: Sequence[Mapping[str, Any]], limit: int = 6) -> str:
    """The entries as one line for a log entry or a notification: ``who: text; ...``."""
    parts = []
    for e in entries[:limit]:
        who = ".".join(x for x in (e.get("candidate"), e.get("check")) if x)
        parts.append(f"{who}: {e['text']}")
    more = len(entries) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def deadline(state: RolloutState, spec: RolloutSpec, now: float) -> dict[str, Any] | None:
    """The progress deadline as the status shows it: ``{"deadline_s", "holding_since",
    "left_s"}`` while one runs (None when the spec sets none or nothing holds the phase)."""
    limit = spec.strategy.progress_deadline_s
    if limit is None or state.holding_since is None:
        return None
    left = limit - (now - state.holding_since)
    return {"deadline_s": limit, "holding_since": state.holding_since,
            "left_s": round(max(0.0, left), 1)}


# -- entries -----------------------------------------------------------------------------------


def _entry(candidate: str | None, check: str, kind: str, verdict: Verdict | None, *,
           text: str, what: str = "", have: int | None = None, need: int | None = None,
           rate: float | None = None, eta: float | None = None, holds: bool = False
           ) -> dict[str, Any]:
    return {"candidate": candidate, "check": check, "kind": kind,
            "verdict": None if verdict is None else verdict.name, "what": what,
            "have": have, "need": need,
            "rate_per_s": None if rate is None else round(rate, 3),
            "eta_s": None if eta is None else round(eta, 1), "holds": holds, "text": text}


def _more(have: int, need: int, what: str, rate: float | None, paused: bool = False
          ) -> tuple[str, float | None]:
    """"needs N more <what> at the current rate (~R/s: ~T)" and the ETA in seconds."""
    more = need - have
    head = f"needs {more:,} more {what}"
    if rate is None:
        return head + (" (the step counts none while paused)" if paused else ""), None
    if rate <= 0:
        return head + " (none arrived in this phase yet)", None
    eta = more / rate
    return f"{head} at the current rate (~{_num(rate)}/s: ~{_dur(eta)})", eta


def _step(s: RolloutState, spec: RolloutSpec, r: Rates, now: float) -> list[dict[str, Any]]:
    out = []
    step = spec.strategy.steps[s.step]
    need, why = spec.step_needs()[s.step]
    need = max(need, step.min_requests)
    if s.step_requests < need:
        text, eta = _more(s.step_requests, need, "candidate requests", r.candidate,
                          paused=s.phase == Phase.PAUSED)
        if why and need > step.min_requests:
            text += f" to catch {why}"
        out.append(_entry(None, "step", "requests", None, text=text, what="candidate requests",
                          have=s.step_requests, need=need, rate=r.candidate, eta=eta,
                          holds=True))
    left = step.min_duration_s - (now - s.phase_since)
    if left > 0 and s.phase != Phase.PAUSED:
        out.append(_entry(None, "step", "duration", None, what="seconds", eta=left,
                          text=f"min_duration_s: ~{_dur(left)} more of {step.min_duration_s:g} s"))
    return out


def _shadow(s: RolloutState, spec: RolloutSpec, r: Rates, now: float) -> list[dict[str, Any]]:
    sh = spec.strategy.shadow
    if sh is None:
        return []
    out = []
    if s.shadow_compared < sh.min_comparisons:
        text, eta = _more(s.shadow_compared, sh.min_comparisons, "shadow comparisons",
                          r.comparisons)
        out.append(_entry(None, "shadow", "comparisons", None, text=text,
                          what="shadow comparisons", have=s.shadow_compared,
                          need=sh.min_comparisons, rate=r.comparisons, eta=eta, holds=True))
    left = sh.min_duration_s - (now - s.phase_since)
    if left > 0 and s.phase != Phase.PAUSED:
        out.append(_entry(None, "shadow", "duration", None, what="seconds", eta=left,
                          text=f"min_duration_s: ~{_dur(left)} more of {sh.min_duration_s:g} s"))
    return out


def _check(cand: str, res: CheckResult, r: Rates) -> dict[str, Any]:
    m = _SHORT.search(res.reason) if res.verdict == Verdict.INCONCLUSIVE else None
    if m is None or int(m.group(2)) <= int(m.group(1)):
        head = "cannot judge" if res.verdict == Verdict.ERROR else "inconclusive"
        return _entry(cand, res.check, "check", res.verdict, holds=True,
                      text=f"{head}: {_clip(res.reason) or res.verdict.name}")
    have, need, what = int(m.group(1)), int(m.group(2)), m.group(3).strip()
    rate = _rate(what, have, res.counts, r)
    text, eta = _more(have, need, what, rate)
    if rate is None and what.startswith("labelled"):
        text += " (labels come with feedback posted back)"
    return _entry(cand, res.check, "check", res.verdict, text=text, what=what, have=have,
                  need=need, rate=rate, eta=eta, holds=True)


def _rate(what: str, have: int, counts: Mapping[str, float], r: Rates) -> float | None:
    """The rate of the unit a check counts, from the phase's rates."""
    if what.startswith("labelled"):
        return None  # labels arrive with feedback, at the clients' pace
    if what.startswith("shadow comparisons"):
        return r.comparisons
    if what.startswith("baseline"):
        return r.stable
    if what.startswith("candidate requests"):
        return r.candidate
    judged = counts.get("candidate", 0.0)
    if r.candidate is not None and have > 0 and judged > 0:  # e.g. paired blocks: their
        return r.candidate * have / judged                    # share of candidate requests
    return None


def _approval(s: RolloutState, spec: RolloutSpec) -> dict[str, Any]:
    active = s.active()
    last = s.step >= len(spec.strategy.steps) - 1
    if last and len(active) > 1:
        text = f"waits for a person to pick one of {active}: promote --candidate NAME"
    else:
        text = "waits for a person: approve (or promote, or abort)"
    return _entry(None, "approval", "approval", None, text=text)


def _capacity(s: RolloutState) -> dict[str, Any]:
    p = s.pending or {}
    target = (f"step {int(p['to']) + 1}" if p.get("move") == "step"
              else f"promoting {p.get('to')}")
    sizes = ", ".join(f"{v} {n}" for v, n in sorted(s.sizes.items()))
    return _entry(None, "capacity", "capacity", None,
                  text=f"{target} passed and waits for its replicas to run"
                  + (f" (asked: {sizes})" if sizes else ""))


# -- formatting --------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:.1f}" if x >= 0.95 else f"{x:.2g}"


def _dur(s: float) -> str:
    if not math.isfinite(s):
        return "never"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _clip(text: str, n: int = 300) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
