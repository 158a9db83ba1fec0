"""``rayrollout status`` on a terminal: the status as rich tables, once or live (``--watch``).

``frame`` is a pure function of the admin API's JSON (the status and the newest decisions):
the phase, step and weights, each check's verdict in its colour with its evidence against the
threshold it fails at, what the undecided checks still wait for, and the last decisions.
``watch`` redraws it in place until the outcome is known. Every string from the server goes
through ``safe_text`` and into a ``Text`` (never read as markup), so nothing it carries can
drive the terminal or style the screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rayrollout.cli.render import _need, _num, _pct, _step, deadline, safe_text, waiting_for
from rayrollout.client.admin import AdminClient

ROLLED_BACK_EXIT = 3
DECISIONS = 5  # the newest decisions a frame shows
BAR = 10  # cells of the evidence bar

VERDICT_STYLE = {"PASS": "green", "INCONCLUSIVE": "yellow", "ERROR": "magenta",
                 "FAIL": "bold red"}
PHASE_STYLE = {"promoted": "bold green", "completed": "bold green", "rolled_back": "bold red",
               "paused": "yellow", "awaiting_approval": "yellow", "shadow": "cyan",
               "canary": "cyan", "deploying": "blue", "pending": "blue"}


def _t(text: Any, style: str = "") -> Text:
    """Server text made safe, never parsed as markup."""
    return Text(safe_text(str(text)), style=style)


def _phase_style(phase: Any) -> str:
    return PHASE_STYLE.get(str(phase), "bold")


def _power(x: Any) -> str:
    if x is None:
        return "-"
    return f"10^{x}" if isinstance(x, str) else f"10^{x:.2f}"


def evidence_bar(log10_e: Any, log10_threshold: Any) -> str:
    """How far the evidence has come towards the threshold it fails at, in ``BAR`` cells
    (empty at ``E = 1`` or below, full at the threshold or above); "" when either is missing."""
    if not isinstance(log10_threshold, int | float) or log10_threshold <= 0:
        return ""
    if log10_e == "inf":
        frac = 1.0
    elif isinstance(log10_e, int | float):
        frac = min(1.0, max(0.0, log10_e / log10_threshold))
    else:
        return ""
    full = round(frac * BAR)
    return "▰" * full + "▱" * (BAR - full)


def _header(st: Mapping[str, Any]) -> Table:
    steps = st.get("steps") or []
    i = int(st.get("step", -1))
    step = _step(st) + (f" ({_pct(steps[i]['weight'])} per candidate)"
                        if 0 <= i < len(steps) else "")
    since = ""
    if st.get("phase_since") and st.get("now"):
        since = f" for {max(0.0, st['now'] - st['phase_since']):.0f} s"
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    phase = Text.assemble(_t(str(st.get("phase", "?")).upper(), _phase_style(st.get("phase"))),
                          _t(since))
    grid.add_row("model", Text.assemble(_t(st.get("model")), _t(
        f"  rollout #{st.get('rollout')} (attempt {st.get('attempt', 1)})")))
    grid.add_row("phase", phase)
    grid.add_row("step", _t(f"{step}  epoch {st.get('epoch')}"))
    stable = f"{st.get('stable')}" + (
        f" (previous {st['previous_stable']})" if st.get("previous_stable") else "")
    grid.add_row("stable", _t(stable))
    weights = st.get("weights") or {}
    grid.add_row("weights", _t("  ".join(f"{v} {_pct(w)}" for v, w in sorted(weights.items()))
                               or "-"))
    if st.get("shadow"):
        grid.add_row("shadow", _t(f"{st['shadow']} on {_pct(100 * st.get('shadow_fraction', 0))}"
                                  f" ({st.get('shadow_compared', 0)} compared)"))
    grid.add_row("requests", _t(f"this step {st.get('step_requests', 0)}"
                                + _need(st.get("step_need"))))
    if deadline(st):
        grid.add_row("deadline", _t(deadline(st), "yellow"))
    for c in st.get("candidates") or []:
        grid.add_row("candidate", _t(f"{c.get('name')}: {c.get('status')}"
                                     + (f" ({c['reason']})" if c.get("reason") else "")))
    return grid


def _checks(st: Mapping[str, Any]) -> Table | None:
    rows = [(cand, r) for cand, rs in (st.get("checks") or {}).items() for r in rs]
    if not rows:
        return None
    t = Table(title="checks", title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    for col in ("candidate", "check", "verdict", "evidence", "fails at", "", "statistic",
                "reason"):
        t.add_column(col, overflow="fold")
    for cand, r in rows:
        verdict = str(r.get("verdict", "?"))
        style = VERDICT_STYLE.get(verdict, "")
        stat = f"{r['statistic']}={_num(r.get('value'))}" if r.get("statistic") else ""
        t.add_row(_t(cand), _t(r.get("check")), _t(verdict, style),
                  _t(_power(r.get("log10_e"))), _t(_power(r.get("log10_threshold"))),
                  _t(evidence_bar(r.get("log10_e"), r.get("log10_threshold")), style),
                  _t(stat), _t(r.get("reason") or ""))
    return t


def _waiting(st: Mapping[str, Any]) -> Table | None:
    items = waiting_for(st)
    if not items:
        return None
    t = Table(title="waiting for", title_justify="left", box=None, show_header=False)
    t.add_column(style="yellow")
    t.add_column(overflow="fold")
    for who, what in items:
        t.add_row(_t(who), _t(what))
    return t


def _decisions(entries: Sequence[Any]) -> Table | None:
    entries = [d for d in entries if isinstance(d, Mapping)][-DECISIONS:]
    if not entries:
        return None
    t = Table(title="last decisions", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("#", "time", "actor", "phase", "reason"):
        t.add_column(col, overflow="fold")
    for d in entries:
        when = datetime.fromtimestamp(float(d.get("now") or d.get("ts") or 0)).strftime("%H:%M:%S")
        phase = Text.assemble(_t(f"{d.get('phase_from')} -> "),
                              _t(d.get("phase_to"), _phase_style(d.get("phase_to"))))
        t.add_row(_t(d.get("seq")), _t(when), _t(d.get("actor", "?")), phase,
                  _t(d.get("reason", "")))
    return t


def frame(st: Mapping[str, Any], decisions: Sequence[Any] = (),
          interval: float | None = None) -> RenderableType:
    """One view of a rollout: its state, its checks, what they wait for, the last decisions
    (``decisions``: the newest entries of ``GET .../history``, oldest first)."""
    if st.get("rollout") is None:
        return _t(f"model {st.get('model')}: no rollout")
    parts: list[RenderableType] = [_header(st)]
    parts += [p for p in (_checks(st), _waiting(st), _decisions(decisions)) if p is not None]
    foot = Text()
    if "allowed_verbs" in st:
        foot.append("verbs now: ", style="dim")
        foot.append_text(_t(", ".join(st["allowed_verbs"]) or "none"))
    if interval is not None and not st.get("final"):
        foot.append(f"   refreshing every {interval:g} s, Ctrl-C to stop", style="dim")
    if foot:
        parts.append(foot)
    return Group(*parts)


def recent(c: AdminClient, st: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The newest decisions of the status's rollout (none without one)."""
    return c.history(DECISIONS) if st.get("rollout") is not None else []


def outcome(st: Mapping[str, Any]) -> int:
    """The exit status of a watch that ended: 3 when rolled back, else 0."""
    return ROLLED_BACK_EXIT if st.get("phase") == "rolled_back" else 0


def watch(c: AdminClient, interval: float, console: Console,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Redraw ``frame`` in place every ``interval`` seconds until the outcome is known; the
    decisions are fetched again only when the status counts a new one. Returns ``outcome``."""
    seen: Any = object()
    decisions: list[dict[str, Any]] = []
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            st = c.status()
            if st.get("decisions", seen) != seen or "decisions" not in st:
                decisions, seen = recent(c, st), st.get("decisions")
            live.update(frame(st, decisions, interval), refresh=True)
            if st.get("final"):
                return outcome(st)
            sleep(interval)
