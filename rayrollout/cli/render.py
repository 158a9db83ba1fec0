"""The status and the decision log as text: what ``rayrollout status`` (once or ``--watch``),
``history`` and the demo print. Pure functions of the admin API's JSON.

They show what the controller computed and carry no rules of their own: the verbs allowed
now (``allowed_verbs``), whether the outcome is known (``final``) and the evidence in decimal
orders of magnitude (``log10_e`` / ``log10_threshold``, ``E = 10^x``) all come in the status.

Everything they return, and everything the CLI prints, goes through ``safe_text``: a reason, a
name or an error message from a server or a spec cannot drive the terminal.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

# Control (C0, DEL, C1), format (bidi overrides, zero-width), line and paragraph separators,
# surrogates: written as escapes. Newline and tab stay.
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escape(c: str) -> str:
    if c in "\n\t" or unicodedata.category(c) not in _UNSAFE:
        return c
    return c.encode("unicode_escape", "backslashreplace").decode("ascii")


def safe_text(text: str) -> str:
    """``text`` with every terminal control character written as a visible escape (ESC as
    ``\\x1b``, a bidi override as ``\\u202e``), so it cannot move the cursor, clear or
    retitle the screen, or reorder a line."""
    if text.isprintable():
        return text
    return "".join(_escape(c) for c in text)


def say(text: str, file: TextIO | None = None, flush: bool = False) -> None:
    """Print ``text`` made safe (``safe_text``)."""
    print(safe_text(text), file=file if file is not None else sys.stdout, flush=flush)


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):  # "inf" / "-inf" in strict JSON
        return x
    return f"{x:.{digits}g}"


def _pct(w: float) -> str:
    return f"{w:g}%"


def _step(st: Mapping[str, Any]) -> str:
    steps = st.get("steps") or []
    i = int(st.get("step", -1))
    return f"{i + 1}/{len(steps)}" if i >= 0 else f"-/{len(steps)}"


def evidence(r: Mapping[str, Any]) -> str:
    """``E=10^1.23/2.00``: the evidence and (after the slash) where the check fails."""
    e10 = r.get("log10_e")
    if e10 is None:
        return ""
    th = r.get("log10_threshold")
    e = e10 if isinstance(e10, str) else f"{e10:.2f}"
    return f"E=10^{e}" + (f"/{th:.2f}" if isinstance(th, int | float) else "")


def render_status(st: Mapping[str, Any]) -> str:
    """The status of a rollout as lines of text."""
    if st.get("rollout") is None:
        return safe_text(f"model {st.get('model')}: no rollout")
    steps = st.get("steps") or []
    i = int(st.get("step", -1))
    step = _step(st)
    if 0 <= i < len(steps):
        step += f" ({_pct(steps[i]['weight'])} per candidate)"
    since = ""
    if st.get("phase_since") and st.get("now"):
        since = f" for {max(0.0, st['now'] - st['phase_since']):.0f} s"
    lines = [
        f"model {st['model']}  rollout #{st['rollout']} (attempt {st.get('attempt', 1)})  "
        f"phase {st['phase'].upper()}{since}",
        f"step {step}  epoch {st.get('epoch')}  stable {st.get('stable')}"
        + (f" (previous {st['previous_stable']})" if st.get("previous_stable") else ""),
        "weights "
        + (
            "  ".join(f"{v} {_pct(w)}" for v, w in sorted(st["weights"].items()))
            if st.get("weights")
            else "-"
        ),
    ]
    if st.get("shadow"):
        lines.append(
            f"shadow {st['shadow']} on {_pct(100 * st.get('shadow_fraction', 0))} "
            f"({st.get('shadow_compared', 0)} compared)"
        )
    lines.append(f"requests this step {st.get('step_requests', 0)}" + _need(st.get("step_need")))
    for c in st.get("candidates") or []:
        lines.append(
            f"candidate {c['name']}: {c['status']}"
            + (f" ({c['reason']})" if c.get("reason") else "")
        )
        for r in (st.get("checks") or {}).get(c["name"], []):
            lines.append("  " + _render_check(r))
    lines += [f"  waiting for {who}: {what}" for who, what in waiting_for(st)]
    if deadline(st):
        lines.append(deadline(st))
    if "allowed_verbs" in st:
        lines.append("verbs now: " + (", ".join(st["allowed_verbs"]) or "none"))
    return safe_text("\n".join(lines))


def waiting_for(st: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What keeps the rollout where it is, as ``(who, sentence)`` pairs, from the status's
    ``waiting_for``: the list of ``controller.explain.waiting_for`` (entries with
    ``candidate``, ``check`` and ``text``; ``who`` is ``candidate.check``, or the check alone
    for the step or phase), or a mapping ``{check: sentence}`` /
    ``{candidate: {check: sentence}}``. Empty when the status has none."""
    w = st.get("waiting_for")
    out: list[tuple[str, str]] = []
    if isinstance(w, list | tuple):
        for e in w:
            if isinstance(e, Mapping) and e.get("text"):
                who = ".".join(str(x) for x in (e.get("candidate"), e.get("check")) if x)
                out.append((who or "-", str(e["text"])))
    elif isinstance(w, Mapping):
        for key, val in w.items():
            if isinstance(val, Mapping):
                out += [(f"{key}.{check}", str(text)) for check, text in val.items() if text]
            elif val:
                out.append((str(key), str(val)))
    return out


def deadline(st: Mapping[str, Any]) -> str:
    """``progress deadline 300 s: 120 s left`` while one runs (status key
    ``progress_deadline``: ``controller.explain.deadline``), else ""."""
    d = st.get("progress_deadline")
    if not isinstance(d, Mapping) or not isinstance(d.get("deadline_s"), int | float):
        return ""
    left = d.get("left_s")
    return f"progress deadline {d['deadline_s']:g} s" + (
        f": {left:.0f} s left" if isinstance(left, int | float) else "")


def _need(need: Mapping[str, Any] | None) -> str:
    """`` of 1,901 needed (to catch ...; about 95 s to go)`` when the step needs more."""
    if not need or not need.get("requests"):
        return ""
    why = f"to catch {need['to_catch']}" if need.get("to_catch") else "min_requests"
    eta = need.get("eta_s")
    togo = "" if eta is None or need["seen"] >= need["requests"] else f"; about {eta:.0f} s to go"
    return f" of {need['requests']:,} needed ({why}{togo})"


def _render_check(r: Mapping[str, Any]) -> str:
    ev = evidence(r)
    stat = f" {r['statistic']}={_num(r.get('value'))}" if r.get("statistic") else ""
    counts = " ".join(f"{k}={_num(v, 6)}" for k, v in (r.get("counts") or {}).items())
    return (
        f"{r['check']:<14} {r['verdict']:<12}{stat}"
        + (f" {ev}" if ev else "")
        + (f" [{counts}]" if counts else "")
        + (f" - {r['reason']}" if r.get("reason") else "")
    )


def status_line(st: Mapping[str, Any]) -> str:
    """The status in one line: phase, step, epoch, weights, shadow, each check's verdict."""
    step = f"step {_step(st)}" if st.get("step", -1) >= 0 else ""
    w = " ".join(f"{v}={p:g}%" for v, p in (st.get("weights") or {}).items())
    sh = f" shadow={st['shadow']}" if st.get("shadow") else ""
    checks = []
    for rs in (st.get("checks") or {}).values():
        for r in rs:
            ev = evidence(r).split("/")[0]
            checks.append(f"{r['check']}:{r['verdict']}" + (f" {ev}" if ev else ""))
    return safe_text(f"  {st['phase']:<18} {step:<9} epoch {st.get('epoch', '-')!s:<3} {w}{sh}  "
                     f"{' '.join(checks)}")


def render_history(entries: Sequence[Mapping[str, Any]]) -> str:
    """The decision log, oldest first, one line per decision."""
    if not entries:
        return "no decisions"
    out = []
    for d in entries:
        t = datetime.fromtimestamp(float(d.get("now") or d.get("ts") or 0)).strftime("%H:%M:%S")
        step = d.get("step", -1)
        out.append(
            f"{d.get('seq'):>4} {t} {d.get('actor', '?'):<12} "
            f"{d.get('phase_from')} -> {d.get('phase_to')}  "
            f"step {step + 1 if step >= 0 else '-'} epoch {d.get('epoch')}  "
            f"{d.get('reason', '')}"
        )
    return safe_text("\n".join(out))
