"""Markdown tables of ours against its variants: validity on every null scenario, and power
against the oracle on the effect scenarios the variants apply to."""

from __future__ import annotations

from typing import Any

Line = dict[str, Any]
VALIDITY = ("ours", "ours-blockpaired", "ours-completion", "ours-blockpaired-completion",
            "ours-agrapa", "ours-ons", "ours-prior", "ours-pooled-w")
POWER = ("ours", "ours-blockpaired", "ours-agrapa", "ours-ons", "ours-prior", "ours-pooled-w")


def _cell(lines: list[Line], sc: str, m: str) -> Line | None:
    return next((x for x in lines if x["scenario"] == sc and x["method"] == m), None)


def _present(lines: list[Line], methods: tuple[str, ...], truth: str) -> list[str]:
    return [m for m in methods if any(x["method"] == m and x["truth"] == truth for x in lines)]


def _null_cell(x: Line | None) -> str:
    if x is None:
        return ""
    fr = x["false_rollback"]
    lo, hi = fr["wilson95"]
    ok = fr["rate"] <= 0.05 and hi <= 0.07
    mark = "" if ok else " **x**"
    return f"{100 * fr['rate']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]{mark}"


def validity_table(lines: list[Line]) -> list[str]:
    """False rollbacks [Wilson 95%] per null scenario; **x** marks a cell outside T1."""
    methods = _present(lines, VALIDITY, "null")
    nulls = sorted({x["scenario"] for x in lines if x["truth"] == "null"})
    out = ["| null scenario | runs | " + " | ".join(methods) + " |",
           "|---|---" + "|---" * len(methods) + "|"]
    for sc in nulls:
        first = _cell(lines, sc, "ours")
        n = first["n_runs"] if first else ""
        out.append(f"| {sc} | {n} | " + " | ".join(_null_cell(_cell(lines, sc, m))
                                                  for m in methods) + " |")
    return out


def _effect_cell(x: Line | None) -> str:
    if x is None:
        return ""
    e = x["exposure"]
    med = "miss" if e["median"] is None else f"{e['median']:,.0f}"
    p90 = "miss" if e["p90"] is None else f"{e['p90']:,.0f}"
    miss = f", {100 * x['miss_rate']:.0f}% miss" if x["miss_rate"] > 0 else ""
    eff = f" ({x['efficiency']:.2f}x)" if x.get("efficiency") is not None else ""
    return f"{med} / {p90}{eff}{miss}"


def power_table(lines: list[Line]) -> list[str]:
    """Median / p90 canary requests to rollback (and median / oracle n) per effect scenario."""
    methods = _present(lines, POWER, "effect")
    effects = [sc for sc in dict.fromkeys(x["scenario"] for x in lines if x["truth"] == "effect")
               if any(_cell(lines, sc, m) for m in methods)]
    out = ["| effect scenario | oracle n | " + " | ".join(methods) + " |",
           "|---|---" + "|---" * len(methods) + "|"]
    for sc in sorted(effects):
        o = _cell(lines, sc, "ours")
        oracle = "-" if o is None or o.get("oracle_n") is None else f"{o['oracle_n']:,.0f}"
        out.append(f"| {sc} | {oracle} | " + " | ".join(_effect_cell(_cell(lines, sc, m))
                                                        for m in methods) + " |")
    return out


def variant_sections(lines: list[Line]) -> list[str]:
    return [
        "## Validity: every null scenario", "",
        "False rollback rate [95% Wilson interval] of ours and its variants (**x**: rate > 5% "
        "or upper bound > 7%). `ours` = what the library deploys (test B' arm bets for "
        "latency, drift and Brier); `ours-blockpaired` = the older test B; `-completion` = "
        "the same on the event order before the ordering fix (each tick's completed requests, "
        "sorted by arrival within the tick; deployed-path scenarios only). The betting "
        "variants change only the arm bets.", "",
        *validity_table(lines), "",
        "## Power against the oracle", "",
        "Median / p90 canary requests before the rollback, (median / oracle fixed-horizon n at "
        "the same per-metric alpha), misses count as infinite. Variants: `ours-agrapa` "
        "(predictable aGRAPA bet per request), `ours-ons` (online Newton step, updated per "
        "1 s tick), `ours-prior` (mixture over the Kelly bets of a few target effects, "
        "computed from pre-canary stable data), `ours-pooled-w` (one e-process across steps "
        "betting on (A - w) g, so a bet is the same Kelly fraction at every weight; stepped "
        "scenarios only).", "",
        *power_table(lines), "",
    ]
