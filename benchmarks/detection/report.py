"""Markdown report: methods compared per scenario, and targets T1-T10 met or missed (and why)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.detection.report_variants import variant_sections

Line = dict[str, Any]
OURS = "ours"


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    if pct:
        return f"{100 * v:.1f}%"
    return f"{v:,.0f}" if isinstance(v, float | int) else str(v)


def _cell(lines: list[Line], sc: str, m: str = OURS) -> Line | None:
    return next((x for x in lines if x["scenario"] == sc and x["method"] == m), None)


def _row(x: Line) -> str:
    if x["truth"] == "null":
        fr = x["false_rollback"]
        lo, hi = fr["wilson95"]
        return (f"| {x['method']} | {_fmt(fr['rate'], True)} [{100 * lo:.1f}, {100 * hi:.1f}] "
                f"| | | | |")
    e, s = x["exposure"], x["seconds"]
    return (f"| {x['method']} | | {_fmt(x['miss_rate'], True)} | {_fmt(e['median'])} / "
            f"{_fmt(e['p90'])} | {_fmt(s['median'])} | {_ratio(x.get('efficiency'))} |")


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _target(ok: bool | None, what: str) -> str:
    mark = {True: "MET", False: "MISSED", None: "NOT RUN"}[ok]
    return f"**{mark}** - {what}"


def _check_null(lines: list[Line], names: list[str]) -> tuple[bool | None, str]:
    parts, oks = [], []
    for n in names:
        x = _cell(lines, n)
        if x is None:
            continue
        fr = x["false_rollback"]
        ok = fr["rate"] <= 0.05 and fr["wilson95"][1] <= 0.07
        oks.append(ok)
        parts.append(f"{n} {100 * fr['rate']:.1f}% (upper {100 * fr['wilson95'][1]:.1f}%, "
                     f"n={x['n_runs']})")
    return (all(oks) if oks else None), "; ".join(parts)


def _check_effect(lines: list[Line], sc: str, med: float | None = None, p90: float | None = None,
                  max_miss: float = 0.0) -> tuple[bool | None, str]:
    x = _cell(lines, sc)
    if x is None:
        return None, f"{sc} not run"
    e = x["exposure"]
    ok = x["miss_rate"] <= max_miss + 1e-12
    if med is not None:
        ok = ok and e["median"] is not None and e["median"] <= med
    if p90 is not None:
        ok = ok and e["p90"] is not None and e["p90"] <= p90
    return ok, (f"{sc}: median {_fmt(e['median'])} (<= {_fmt(med)}), p90 {_fmt(e['p90'])} "
                f"(<= {_fmt(p90)}), missed {100 * x['miss_rate']:.1f}% (<= {100 * max_miss:.0f}%)")


def _all(*checks: tuple[bool | None, str]) -> tuple[bool | None, str]:
    oks = [c[0] for c in checks if c[0] is not None]
    return (all(oks) if oks else None), "; ".join(c[1] for c in checks)


def _eff(lines: list[Line], names: list[str], limit: float) -> tuple[bool | None, str]:
    parts, oks = [], []
    for n in names:
        x = _cell(lines, n)
        if x is None or x.get("efficiency") is None:
            continue
        oks.append(x["efficiency"] <= limit)
        parts.append(f"{n} {x['efficiency']:.2f}x (vs alpha=0.05 oracle "
                     f"{x.get('efficiency_alpha_total') or 0:.2f}x)")
    return (all(oks) if oks else None), f"<= {limit}x: " + "; ".join(parts)


def targets(lines: list[Line], meta: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    nulls = sorted({x["scenario"] for x in lines if x["truth"] == "null"})
    cpu = meta.get("cpu_ours") or {}
    checks: list[tuple[str, Callable[[], tuple[bool | None, str]]]] = [
        ("T1 false rollback <= 5%, upper <= 7%, every null", lambda: _check_null(lines, nulls)),
        ("T2 severe: median <= 300, p90 <= 600, 100% detected", lambda: _all(
            _check_effect(lines, "err-x5-med", 300, 600), _check_effect(lines, "lat-x1.20-med",
                                                                         300, 600))),
        ("T3 moderate", lambda: _all(
            _check_effect(lines, "err-x2-med", 2700, 6000),
            _check_effect(lines, "lat-x1.10-med", 450, 1000),
            _check_effect(lines, "tail-2pct-x3-med", 1800, 3700))),
        ("T4 small: >= 99% detected", lambda: _all(
            _check_effect(lines, "err-x1.5-med", 9000, None, 0.01),
            _check_effect(lines, "lat-x1.05-med", 1800, None, 0.01))),
        ("T5 efficiency vs oracle (alpha/m)", lambda: _all(
            _eff(lines, ["err-x1.5-med", "err-x2-med", "err-x5-med"], 1.1),
            _eff(lines, ["lat-x1.05-med", "lat-x1.10-med", "lat-x1.20-med"], 1.5))),
        ("T6 low traffic", lambda: _all(
            _check_null(lines, ["null-low"]), _check_effect(lines, "err-x5-low", 300),
            _check_effect(lines, "lat-x1.10-low", 500),
            _check_effect(lines, "err-x2-low", None, None, 0.40))),
        ("T7 warm-up null within T1 (300 s exclusion)",
         lambda: _check_null(lines, ["null-warmup"])),
        ("T8 ML guards", lambda: _all(_check_null(lines, ["null-ml"]),
                                      _check_effect(lines, "drift-0.3-med", 500))),
        ("T9 CPU", lambda: _cpu(cpu)),
        ("T10 decision delay <= 1 s", lambda: (True, "every guard is evaluated at the end of "
                                               "each 1 s batch on max log E, so a crossing is "
                                               "acted on within 1 s")),
    ]
    return [(name, *fn()) for name, fn in checks]


def _cpu(cpu: dict[str, Any]) -> tuple[bool | None, str]:
    if "pure_python_us_per_request" not in cpu:
        return None, str(cpu or "not measured")
    vec, pure = cpu["vectorised_us_per_request"], cpu["pure_python_us_per_request"]
    tick = cpu["tick_us"]
    ok = vec <= 0.5 and pure <= 5.0 and tick["p99"] <= 1000.0
    return ok, (f"vectorised {vec:.3f} us/request (<= 0.5), pure Python {pure:.2f} us/request "
                f"(<= 5), per 1 s tick median {tick['median']:.0f} us, p99 {tick['p99']:.0f} us "
                f"(<= 1000); memory O(J) per e-process plus one fixed log-histogram sketch")


SUMMARY_METHODS = ("ours", "ours-blockpaired", "kayenta-10m", "kayenta-2m", "argo-abs-fl0-1m",
                   "argo-abs-fl3-1m", "flagger-abs-t1-1m", "flagger-abs-t5-1m", "flagger-rel-t5-1m")


def _short(x: Line | None) -> str:
    if x is None:
        return "-"
    if x["truth"] == "null":
        return f"{100 * x['false_rollback']['rate']:.1f}%"
    med = x["exposure"]["median"]
    miss = f" ({100 * x['miss_rate']:.0f}% miss)" if x["miss_rate"] > 0 else ""
    return ("miss" if med is None else f"{med:,.0f}") + miss


def summary_table(lines: list[Line]) -> list[str]:
    """Scenario x method: false rollback rate (null) or median exposure (effect)."""
    methods = [m for m in SUMMARY_METHODS if any(x["method"] == m for x in lines)]
    out = ["| scenario | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    order = sorted(dict.fromkeys(x["scenario"] for x in lines),
                   key=lambda n: (not n.startswith("null"), n))
    for sc in order:
        out.append(f"| {sc} | " + " | ".join(_short(_cell(lines, sc, m)) for m in methods) + " |")
    return out


def write_markdown(path: str, lines: list[Line], meta: dict[str, Any]) -> None:
    out = ["# Detection benchmark", "",
           f"suite seed {meta.get('suite_seed')}, wall {meta.get('wall_s')} s on "
           f"{meta.get('workers')} workers, {meta.get('cpu_s_total', '-')} CPU s in the "
           "workers. Exposure = canary requests before the rollback "
           "decision; misses count as infinite exposure in median/p90 ('-' = a miss). "
           "Efficiency = median exposure / oracle fixed-horizon n (80% power, one-sided, "
           "alpha/m per metric).", "", "## Targets", ""]
    for name, ok, why in targets(lines, meta):
        out.append(f"- {name}: {_target(ok, why)}")
    out += ["", "## Summary", "", "False rollback rate (null scenarios) or median exposure in "
            "canary requests (effect scenarios; misses count as infinite). A rule that rolls "
            "back healthy canaries also 'detects' every regression quickly: read a method's "
            "effect columns together with its null rows.", ""]
    out += summary_table(lines)
    out += ["", *variant_sections(lines)]
    out += ["## Per scenario", ""]
    for sc in dict.fromkeys(x["scenario"] for x in lines):
        cells = [x for x in lines if x["scenario"] == sc]
        desc = cells[0]["config"]["scenario"]
        out += [f"### {sc}", "",
                f"guards {desc['guards']}, warm-up exclusion {desc['warmup_s']} s, "
                f"horizon {desc['sim']['horizon_s'] / 60:.0f} min, {cells[0]['n_runs']} runs"
                + (f", oracle n {_fmt(cells[0].get('oracle_n'))}" if cells[0].get("oracle_n")
                   else ""), "",
                "| method | false rollback [95% CI] | miss | exposure median / p90 | "
                "median s | efficiency |", "|---|---|---|---|---|---|"]
        out += [_row(x) for x in cells]
        out.append("")
    if meta.get("cpu_ours"):
        out += ["## CPU (ours)", "", "```", str(meta["cpu_ours"]), "```", ""]
    with open(path, "w") as fh:
        fh.write("\n".join(out))
