"""The report's plots, drawn by matplotlib on its Agg canvas (no display, no pyplot state):
weights over time, one evidence plot per check, requests by version. They are drawn once, in
one figure (the report's PNG); the page shows each plot cut out of it. Imported only when a
report is built (matplotlib, and Pillow which it requires, are the ``report`` extra).

Text from the rollout (version and check names) is drawn as plain text: mathtext is off, so a
``$`` in a name is a dollar sign, never a formula that could fail to parse.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib
import PIL.Image
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rayrollout.report.data import EvidenceSeries, ReportData

VERDICT_COLOURS = {"PASS": "#2ca02c", "INCONCLUSIVE": "#8c8c8c", "ERROR": "#ff7f0e",
                   "FAIL": "#d62728"}
THRESHOLD_COLOUR = "#d62728"
PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
           "#ccb974", "#64b5cd", "#c44e52"]
WIDTH_IN = 10.0
DPI = 100


def colours(data: ReportData) -> dict[str, str]:
    """One colour per version, the same in every plot (the baseline first)."""
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(data.versions)}


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context({"text.parse_math": False, "font.size": 9, "axes.titlesize": 10,
                                "axes.spines.top": False, "axes.spines.right": False}):
        yield


def _empty(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, what, transform=ax.transAxes, ha="center", va="center", color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


def _xlim(ax: Axes, data: ReportData) -> None:
    ax.set_xlim(0.0, max(data.end, 1.0) * 1.02)
    ax.set_xlabel("seconds since the rollout started")


def _phase_marks(ax: Axes, data: ReportData, named: bool) -> None:
    """A dotted line at each phase change, named (in the weights plot) by the phase entered."""
    for t, phase in data.phases:
        ax.axvline(t, color="#444444", lw=0.6, ls=":")
        if named:
            ax.annotate(phase, (t, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                        fontsize=7, va="top", ha="right", color="#222222",
                        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                              "alpha": 0.7})


def draw_weights(ax: Axes, data: ReportData, col: dict[str, str]) -> None:
    """Each version's share of the traffic (stacked, percent) as the routing tables set it,
    the shadow phases hatched, a dotted line at each phase change."""
    ax.set_title("Traffic weights over time")
    if not data.weights:
        _empty(ax, "no routing table yet")
        return
    steps = [*data.weights, (max(data.end, data.weights[-1][0]), data.weights[-1][1])]
    xs = [t for t, _ in steps]
    lower = [0.0] * len(steps)
    for v in data.versions:
        ys = [w.get(v, 0.0) for _, w in steps]
        if not any(ys):
            continue
        upper = [a + b for a, b in zip(lower, ys, strict=True)]
        ax.fill_between(xs, lower, upper, step="post", color=col[v], alpha=0.85, label=v, lw=0)
        lower = upper
    for t0, t1, version, fraction in data.shadows:
        ax.axvspan(t0, max(t1, t0 + 1e-9), facecolor="none", edgecolor=col.get(version, "k"),
                   hatch="//", lw=0, label=f"shadow: {fraction:.0%} mirrored to {version}")
    _phase_marks(ax, data, named=True)
    ax.set_ylim(0, 100)
    ax.set_ylabel("percent of requests")
    _xlim(ax, data)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)


def _finite_or_edge(y: float, top: float, bottom: float) -> float:
    if math.isinf(y):
        return top if y > 0 else bottom
    return y


def draw_evidence(ax: Axes, data: ReportData, series: EvidenceSeries,
                  col: dict[str, str]) -> None:
    """log10 of each candidate's e-value for one check over time against the rollback
    threshold (a FAIL once a line reaches it); a marker per reading, coloured by verdict."""
    ax.set_title(f"Evidence of harm: check {series.check}")
    finite = [p.log10_e for pts in series.points.values() for p in pts
              if math.isfinite(p.log10_e)]
    th = series.threshold
    hi = max([*finite, th if th is not None else 0.0, 0.0]) + 0.4
    lo = min([*finite, 0.0]) - 0.4
    if th is not None:
        ax.axhspan(th, hi, color=THRESHOLD_COLOUR, alpha=0.07, lw=0)
        ax.axhline(th, color=THRESHOLD_COLOUR, ls="--", lw=1.2,
                   label=f"rollback threshold (log10 E = {th:.2f})")
    ax.axhline(0.0, color="#999999", lw=0.6)
    for cand, pts in series.points.items():
        ts = [p.t for p in pts]
        ys = [_finite_or_edge(p.log10_e, hi - 0.1, lo + 0.1) for p in pts]
        c = col.get(cand, "#333333")
        # straight between readings: the log holds the evidence at decisions only
        ax.plot(ts, ys, "-", color=c, lw=1.4, alpha=0.8,
                label=f"{cand} vs {data.stable or 'stable'}")
        ax.scatter(ts, ys, s=28, zorder=3, edgecolors=c, linewidths=1.0,
                   c=[VERDICT_COLOURS.get(p.verdict, "#ffffff") for p in pts])
    for verdict, vc in VERDICT_COLOURS.items():
        if any(p.verdict == verdict for pts in series.points.values() for p in pts):
            ax.scatter([], [], s=28, c=vc, label=verdict)
    _phase_marks(ax, data, named=False)
    ax.set_ylim(lo, hi)
    ax.set_ylabel("log10 E (evidence)")
    _xlim(ax, data)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)


def draw_requests(ax: Axes, data: ReportData, col: dict[str, str]) -> None:
    """Requests each version served without failing, and those that failed, as its checks
    counted them."""
    ax.set_title("Requests served and failed, by version (as the checks counted them)")
    rows = [r for r in data.requests if r.served is not None]
    if not rows:
        _empty(ax, "no requests counted yet")
        return
    names = [f"{r.version} ({r.role})" for r in rows]
    ok = [max(0, (r.served or 0) - (r.failed or 0)) for r in rows]
    bad = [r.failed or 0 for r in rows]
    ys = list(range(len(rows)))
    ax.barh(ys, ok, color=[col.get(r.version, "#333333") for r in rows])
    ax.barh(ys, bad, left=ok, color=THRESHOLD_COLOUR, label="failed")
    top = max(o + b for o, b in zip(ok, bad, strict=True)) or 1
    for y, r in zip(ys, rows, strict=True):
        failed = "failures not counted" if r.failed is None else f"{r.failed:,} failed"
        ax.text((r.served or 0) + top * 0.01, y, f"{r.served:,} served, {failed}",
                va="center", fontsize=8)
    ax.set_yticks(ys, names)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.35)
    ax.set_xlabel("requests")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)


@dataclass(frozen=True)
class Images:
    """The report's PNGs: all plots in one (``summary``), and each plot alone."""

    summary: bytes
    weights: bytes
    evidence: list[bytes]  # one per ``ReportData.evidence`` series, in order
    requests: bytes


def _encode(image: PIL.Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="png", optimize=False)
    return buf.getvalue()


def draw(data: ReportData) -> Images:
    """Every plot, drawn once in one figure under a title naming the model, the rollout and
    its phase; each plot alone is cut out of that image (axes, title, legend and labels)."""
    col = colours(data)
    heights = [3.0] + [2.8] * len(data.evidence) + [0.9 + 0.45 * max(1, len(data.requests))]
    with _style():
        fig = Figure(figsize=(WIDTH_IN, sum(heights) + 0.5), dpi=DPI, layout="constrained")
        canvas = FigureCanvasAgg(fig)
        rollout = "no rollout" if data.rollout is None else f"rollout {data.rollout}"
        fig.suptitle(f"{data.model or 'model'}: {rollout}, {data.phase}", fontsize=12)
        axes = fig.subplots(len(heights), 1, gridspec_kw={"height_ratios": heights},
                            squeeze=False)[:, 0]
        draw_weights(axes[0], data, col)
        for ax, series in zip(axes[1:-1], data.evidence, strict=True):
            draw_evidence(ax, data, series, col)
        draw_requests(axes[-1], data, col)
        canvas.draw()
        whole = PIL.Image.frombuffer("RGBA", canvas.get_width_height(),
                                     canvas.buffer_rgba()).convert("RGB")
        renderer = canvas.get_renderer()
        height = whole.height

        def cut(ax: Axes) -> bytes:
            box = ax.get_tightbbox(renderer)
            if box is None:
                return _encode(whole)
            pad = 6  # pixels around the plot
            left, right = max(0, int(box.x0) - pad), min(whole.width, int(box.x1) + pad + 1)
            top = max(0, height - int(box.y1) - pad)  # display y grows upwards, rows down
            bottom = min(height, height - int(box.y0) + pad + 1)
            return _encode(whole.crop((left, top, right, bottom)))

        return Images(_encode(whole), cut(axes[0]), [cut(ax) for ax in axes[1:-1]],
                      cut(axes[-1]))
