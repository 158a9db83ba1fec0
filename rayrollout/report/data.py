"""What the report shows, computed from the status and the decision log: plain values, no
plotting, so every figure and table is checked without drawing it.

Times are seconds since the rollout's first decision (its start), on the controller's clock.
The decision log records the checks' evidence at each decision, and the status the evidence
now: an evidence series has a point per decision that carried the check and one for now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rayrollout.report.inputs import EntryIn, ResultIn, StatusIn

LN10 = math.log(10.0)


@dataclass(frozen=True)
class Point:
    t: float  # seconds since the start
    log10_e: float  # may be +-inf
    verdict: str


@dataclass(frozen=True)
class EvidenceSeries:
    """One check: its points per candidate and its rollback threshold (log10 of the e-value
    that makes it FAIL; None when the check is not an e-process)."""

    check: str
    threshold: float | None
    points: dict[str, list[Point]]


@dataclass(frozen=True)
class VersionCount:
    """Requests of one version as its checks counted them (None: no check counted them)."""

    version: str
    role: str  # "stable" (the baseline of the comparisons) or "candidate"
    served: int | None
    failed: int | None


@dataclass(frozen=True)
class Row:
    """One decision of the log, for the table."""

    seq: int
    t: float
    ts: float | None
    actor: str
    phase_from: str
    phase_to: str
    step: int
    epoch: int
    actions: list[str]
    reason: str


@dataclass(frozen=True)
class ReportData:
    model: str
    rollout: int | None
    phase: str
    final: bool
    start: float  # the controller clock at the rollout's first decision (or now)
    end: float  # seconds since the start the report covers (now, or the last decision)
    stable: str | None  # the baseline of the comparisons
    candidates: list[tuple[str, str, str]]  # name, status, reason
    versions: list[str]  # every version, baseline first: the colour order of every plot
    facts: list[tuple[str, str]]  # label, value, for the header
    weights: list[tuple[float, dict[str, float]]]  # (t, percent per version), a step function
    shadows: list[tuple[float, float, str, float]]  # (from, to, version, fraction)
    phases: list[tuple[float, str]]  # (t, phase entered) for each phase change
    evidence: list[EvidenceSeries]
    latest: dict[str, list[ResultIn]]  # each candidate's newest check results
    requests: list[VersionCount]
    rows: list[Row]
    waiting: list[str]  # what the checks still wait for, one sentence each
    notes: list[str] = field(default_factory=list)  # about missing or partial data


def _entries_of(status: StatusIn, history: list[EntryIn]) -> tuple[list[EntryIn], list[str]]:
    """The entries of the status's rollout (of the newest one in the log when the status has
    none), oldest first."""
    notes = []
    ids = {e.rollout for e in history if e.rollout is not None}
    want = status.rollout if status.rollout is not None else max(ids, default=None)
    if want is not None and ids - {want}:
        notes.append(f"the log holds other rollouts ({', '.join(map(str, sorted(ids - {want})))}"
                     f"); only rollout {want} is shown")
    entries = [e for e in history if want is None or e.rollout in (None, want)]
    entries.sort(key=lambda e: (e.log_seq if e.log_seq is not None else e.seq, e.now))
    return entries, notes


def _log10(r: ResultIn) -> float | None:
    return None if r.log_e is None or math.isnan(r.log_e) else r.log_e / LN10


def _log10_threshold(r: ResultIn) -> float | None:
    th = r.threshold
    return math.log10(th) if th is not None and th > 0 and math.isfinite(th) else None


def _baseline(status: StatusIn, entries: list[EntryIn], cands: set[str]) -> str | None:
    for e in entries:
        for a in e.actions:
            if a.kind == "routes" and a.weights:
                rest = [v for v in a.weights if v not in cands]
                if rest:
                    return rest[0]
    if status.stable in cands:  # promoted: the baseline was the stable before
        return status.previous_stable
    return status.stable


def _step_text(status: StatusIn) -> str:
    if not status.steps or status.step < 0:
        return "-"
    i = min(status.step, len(status.steps) - 1)
    return f"{status.step + 1} / {len(status.steps)} ({status.steps[i].weight:g}% per candidate)"


def _action_text(kind: str, version: str | None, weights: dict[str, float] | None,
                 shadow: str | None, fraction: float, message: str) -> str:
    if kind == "routes":
        w = " · ".join(f"{v} {p:g}%" for v, p in (weights or {}).items())
        return f"routes: {w}" + (f" + shadow {shadow} {fraction:.0%}" if shadow else "")
    if kind == "notify":
        return f"notify: {message}"
    return f"{kind} {version}" if version else kind


def _who(candidate: object, check: object) -> str:
    return ".".join(str(x) for x in (candidate, check) if x)


def _sentences(w: object) -> list[str]:
    """The status's ``waiting_for`` as ``who: sentence`` lines: the list of
    ``controller.explain.waiting_for`` (entries with ``candidate``, ``check``, ``text``), or a
    mapping ``{check: sentence}`` / ``{candidate: {check: sentence}}``."""
    out: list[str] = []
    if isinstance(w, list | tuple):
        for e in w:
            if isinstance(e, dict) and e.get("text"):
                out.append(f"{_who(e.get('candidate'), e.get('check')) or '-'}: {e['text']}")
            elif isinstance(e, str) and e:
                out.append(e)
    elif isinstance(w, dict):
        for key, val in w.items():
            if isinstance(val, dict):
                out += [f"{key}.{check}: {text}" for check, text in val.items() if text]
            elif val:
                out.append(f"{key}: {val}")
    elif isinstance(w, str) and w:
        out.append(w)
    return out


def _deadline(status: StatusIn) -> list[str]:
    """The progress deadline while one runs (``progress_deadline`` or ``deadline``:
    ``{"deadline_s", "left_s"}``)."""
    d = status.progress_deadline or status.deadline
    if not isinstance(d, dict) or not isinstance(d.get("deadline_s"), int | float):
        return []
    left = d.get("left_s")
    return [f"progress deadline {d['deadline_s']:g} s" + (
        f": the rollout pauses in ~{left:.0f} s if still held"
        if isinstance(left, int | float) else "")]


def _waiting(status: StatusIn) -> list[str]:
    """What keeps the rollout where it is: the status's ``waiting_for`` when it has one, else
    (a controller that does not say) what the step still needs, from ``step_need``."""
    if status.waiting_for is not None:
        return [*_sentences(status.waiting_for), *_deadline(status)]
    out = _deadline(status)
    need = status.step_need or {}
    if "requests" in need:
        eta = need.get("eta_s")
        out.append(f"step: {need.get('seen', '?')} of {need['requests']} candidate requests "
                   f"seen" + ("" if eta is None else f", ~{eta} s to go at "
                              f"{need.get('rate_per_s', '?')}/s")
                   + (f" (to catch {need['to_catch']})" if need.get("to_catch") else ""))
    return out


def _max_count(results: list[ResultIn], key: str) -> int | None:
    vals = [v for r in results if (v := r.counts.get(key)) is not None and math.isfinite(v)]
    return int(max(vals)) if vals else None


def _requests(latest: dict[str, list[ResultIn]], baseline: str | None,
              candidates: list[str]) -> list[VersionCount]:
    out = []
    if baseline is not None:
        every = [r for rs in latest.values() for r in rs]
        out.append(VersionCount(baseline, "stable", _max_count(every, "baseline"),
                                _max_count(every, "bad_baseline")))
    for c in candidates:
        rs = latest.get(c, [])
        out.append(VersionCount(c, "candidate", _max_count(rs, "candidate"),
                                _max_count(rs, "bad_candidate")))
    return out


def extract(status: StatusIn, history: list[EntryIn]) -> ReportData:
    """Every value the report shows; never raises on missing data (a rollout that has just
    started, a model with no rollout), and says what is missing in ``notes``."""
    entries, notes = _entries_of(status, history)
    cand_names = [c.name for c in status.candidates]
    for e in entries:  # a status without candidates (no rollout): take them from the log
        for c in e.evidence:
            if c not in cand_names:
                cand_names.append(c)
    baseline = _baseline(status, entries, set(cand_names))
    start = (entries[0].now if entries else status.phase_since if status.phase_since is not None
             else status.now if status.now is not None else 0.0)
    live = status.rollout is not None and status.now is not None
    end = (status.now if live and status.now is not None else
           entries[-1].now if entries else start) - start
    if not entries:
        notes.append("no decision is recorded yet")

    weights: list[tuple[float, dict[str, float]]] = []
    shadows: list[tuple[float, float, str, float]] = []
    open_shadow: tuple[float, str, float] | None = None
    if baseline is not None:
        weights.append((0.0, {baseline: 100.0}))
    phases: list[tuple[float, str]] = []
    points: dict[str, dict[str, list[Point]]] = {}
    thresholds: dict[str, float | None] = {}
    latest: dict[str, list[ResultIn]] = {}
    rows = []

    def take(t: float, evidence: dict[str, list[ResultIn]]) -> None:
        for cand, results in evidence.items():
            if results:
                latest[cand] = results
            for r in results:
                points.setdefault(r.check, {})
                th = _log10_threshold(r)
                if th is not None or r.check not in thresholds:
                    thresholds[r.check] = th
                x = _log10(r)
                if x is not None:
                    points[r.check].setdefault(cand, []).append(Point(t, x, r.verdict))

    for e in entries:
        t = e.now - start
        for a in e.actions:
            if a.kind != "routes":
                continue
            if a.weights:
                weights.append((t, dict(a.weights)))
            if open_shadow is not None and (a.shadow, a.shadow_fraction) != open_shadow[1:]:
                shadows.append((open_shadow[0], t, open_shadow[1], open_shadow[2]))
                open_shadow = None
            if a.shadow and open_shadow is None:
                open_shadow = (t, a.shadow, a.shadow_fraction)
        if e.phase_to != e.phase_from:
            phases.append((t, e.phase_to))
        take(t, e.evidence)
        rows.append(Row(e.seq, t, e.ts, e.actor, e.phase_from, e.phase_to, e.step, e.epoch,
                        [_action_text(a.kind, a.version, a.weights, a.shadow,
                                      a.shadow_fraction, a.message) for a in e.actions],
                        e.reason))
    if live:
        take(end, status.checks)
        if status.weights and (not weights or weights[-1][1] != status.weights):
            weights.append((end, dict(status.weights)))
    if open_shadow is not None:
        shadows.append((open_shadow[0], max(end, open_shadow[0]), open_shadow[1], open_shadow[2]))

    evidence = [EvidenceSeries(c, thresholds.get(c), pts) for c, pts in points.items()
                if any(pts.values())]
    if not evidence:
        notes.append("no check has reported evidence yet")

    versions = [v for v in [baseline, *cand_names] if v is not None]
    for _, w in weights:
        versions += [v for v in w if v not in versions]
    cands = {c.name: c for c in status.candidates}
    facts = [
        ("model", status.model or "-"),
        ("rollout", "-" if status.rollout is None else
         f"{status.rollout}" + (f" (attempt {status.attempt})" if status.attempt else "")),
        ("phase", status.phase + (" (final)" if status.final else "")),
        ("stable", status.stable or "-"),
        ("candidates", ", ".join(f"{c.name} ({c.status})" for c in status.candidates) or "-"),
        ("step", _step_text(status)),
        ("weights now", " · ".join(f"{v} {p:g}%" for v, p in status.weights.items()) or "-"),
        ("false-rollback bound (alpha)", "-" if status.alpha is None else f"{status.alpha:g}"),
        ("decisions", str(status.decisions if status.decisions is not None else len(entries))),
        ("covers", f"{end:.1f} s since the first decision"),
    ]
    return ReportData(
        model=status.model, rollout=status.rollout, phase=status.phase, final=status.final,
        start=start, end=end, stable=baseline,
        candidates=[(n, cands[n].status if n in cands else "-",
                     cands[n].reason if n in cands else "") for n in cand_names],
        versions=versions, facts=facts, weights=weights, shadows=shadows, phases=phases,
        evidence=evidence, latest=latest,
        requests=_requests(latest, baseline, cand_names), rows=rows,
        waiting=_waiting(status) if live else [], notes=notes,
    )
