"""The report as one self-contained HTML page: inline CSS, the plots as ``data:`` PNG images,
no script, nothing fetched from anywhere (its Content-Security-Policy forbids it), and every
piece of text from the rollout escaped (a reason is shown as written, never interpreted).
"""

from __future__ import annotations

import base64
import math
from datetime import datetime, timezone
from html import escape

from rayrollout.report.data import ReportData

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1d1d1f; max-width: 1100px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f6; font-weight: 600; }
table.facts { width: auto; } table.facts th { background: none; }
td.reason { white-space: pre-wrap; word-break: break-word; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.v-PASS { color: #1a7f37; } .v-FAIL { color: #c62828; font-weight: 600; }
.v-ERROR { color: #b35c00; } .v-INCONCLUSIVE { color: #666; }
.phase { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #e8eefc; }
.phase-rolled_back, .phase-failed, .phase-aborted { background: #fde2e2; }
.phase-promoted, .phase-completed { background: #dff3e4; }
img { max-width: 100%; display: block; margin: 6px 0; }
.note { color: #666; } ul { margin: 4px 0; }
"""


def _e(x: object) -> str:
    return escape(str(x), quote=True)


def _img(png: bytes, alt: str, ident: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img id="{_e(ident)}" alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _when(ts: float | None) -> str:
    if ts is None or not math.isfinite(ts) or ts < 1e8:  # not a Unix time (a test's clock)
        return ""
    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return ""


def _num(x: float | None, fmt: str = ".3g") -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return format(x, fmt)


def _facts(data: ReportData) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in data.facts)
    return f'<table class="facts" id="facts">{rows}</table>'


def _candidates(data: ReportData) -> str:
    items = [f"<li><b>{_e(n)}</b>: {_e(s)}" + (f" ({_e(r)})" if r else "") + "</li>"
             for n, s, r in data.candidates]
    return f'<ul id="candidates">{"".join(items)}</ul>' if items else ""


def _latest(data: ReportData) -> str:
    rows = []
    for cand, results in data.latest.items():
        for r in results:
            log10 = None if r.log_e is None else r.log_e / math.log(10.0)
            th = (math.log10(r.threshold) if r.threshold and r.threshold > 0
                  and math.isfinite(r.threshold) else None)
            rows.append(
                f"<tr><td>{_e(cand)}</td><td>{_e(r.check)}</td>"
                f'<td class="v-{_e(r.verdict)}">{_e(r.verdict)}</td>'
                f"<td>{_e(r.statistic)}</td><td class=num>{_e(_num(r.value))}</td>"
                f"<td class=num>{_e(_num(log10, '.2f'))}</td>"
                f"<td class=num>{_e(_num(th, '.2f'))}</td>"
                f'<td class="reason">{_e(r.reason)}</td></tr>')
    if not rows:
        return '<p class="note" id="checks">No check has reported yet.</p>'
    head = ("<tr><th>candidate</th><th>check</th><th>verdict</th><th>statistic</th>"
            "<th>value</th><th>log10 E</th><th>threshold (log10 E)</th><th>reason</th></tr>")
    return f'<table id="checks">{head}{"".join(rows)}</table>'


def _requests(data: ReportData) -> str:
    def cell(x: int | None) -> str:
        return "-" if x is None else f"{x:,}"

    rows = "".join(f"<tr><td>{_e(r.version)}</td><td>{_e(r.role)}</td>"
                   f"<td class=num>{cell(r.served)}</td><td class=num>{cell(r.failed)}</td></tr>"
                   for r in data.requests)
    head = "<tr><th>version</th><th>role</th><th>served</th><th>failed</th></tr>"
    return f'<table id="requests">{head}{rows}</table>'


def _decisions(data: ReportData) -> str:
    if not data.rows:
        return '<p class="note" id="decisions">No decision is recorded yet.</p>'
    rows = []
    for r in data.rows:
        when = _when(r.ts)
        step = "-" if r.step < 0 else str(r.step + 1)
        acts = "<br>".join(_e(a) for a in r.actions) or "-"
        rows.append(
            f"<tr><td class=num>{r.seq}</td><td class=num>+{r.t:.1f} s"
            + (f"<br><small>{_e(when)}</small>" if when else "") + "</td>"
            f"<td>{_e(r.actor)}</td><td>{_e(r.phase_from)} → {_e(r.phase_to)}</td>"
            f"<td class=num>{step}</td><td class=num>{r.epoch}</td><td>{acts}</td>"
            f'<td class="reason">{_e(r.reason)}</td></tr>')
    head = ("<tr><th>#</th><th>time</th><th>actor</th><th>phase</th><th>step</th>"
            "<th>epoch</th><th>actions</th><th>reason</th></tr>")
    return f'<table id="decisions">{head}{"".join(rows)}</table>'


def render(data: ReportData, weights: bytes, evidence: list[bytes], requests: bytes) -> str:
    """The page; ``evidence`` holds one PNG per ``data.evidence`` series, in order."""
    title = f"{data.model or 'model'}: rollout {data.rollout if data.rollout is not None else '-'}"
    notes = "".join(f"<li>{_e(n)}</li>" for n in data.notes)
    waiting = "".join(f"<li>{_e(w)}</li>" for w in data.waiting)
    plots = "".join(
        f'<h3>{_e(s.check)}</h3>' + _img(png, f"evidence of check {s.check} against its "
                                              f"rollback threshold", f"evidence-{i}")
        for i, (s, png) in enumerate(zip(data.evidence, evidence, strict=True)))
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f'<h1 id="title">{_e(title)} <span class="phase phase-{_e(data.phase)}" id="phase">'
        f"{_e(data.phase)}</span></h1>",
        _facts(data), _candidates(data),
        f'<ul class="note" id="notes">{notes}</ul>' if notes else "",
        "<h2>Weights over time</h2>", _img(weights, "traffic weights over time", "weights"),
        "<h2>Evidence against each check's threshold</h2>",
        '<p class="note">log10 of the e-value of each check, per candidate, at each decision '
        "and now; the rollout rolls back when a line reaches its threshold.</p>",
        f'<div id="evidence">{plots}</div>' if plots else
        '<p class="note" id="evidence">No check has reported evidence yet.</p>',
        "<h2>Checks now</h2>", _latest(data),
        f'<h2>Still waiting for</h2><ul id="waiting">{waiting}</ul>' if waiting else "",
        "<h2>Requests by version</h2>",
        _img(requests, "requests served and failed by version", "requests-plot"),
        _requests(data),
        "<h2>Decisions</h2>", _decisions(data),
        "</body></html>\n",
    ])
