"""Pool the workers' cells, derive the ratios, print the tables."""

from __future__ import annotations

from typing import Any

from benchmarks import _common as c

TARGETS = ("plain", "router")


def aggregate(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the reps of one (target, concurrency): total requests / total window, pooled
    latency quantiles, and the per-rep req/s to show the spread."""
    lat = sorted(x for cell in cells for x in cell["_latencies_ms"])
    dur = sum(cell["duration_s"] for cell in cells)
    n = sum(cell["requests"] for cell in cells)
    cpu: dict[str, float] = {}
    for cell in cells:
        for k, v in cell["server_cpu_s"].items():
            cpu[k] = cpu.get(k, 0.0) + v
    return {
        "rps": round(n / dur, 1),
        "rps_per_rep": [cell["rps"] for cell in cells],
        "p50_ms": round(c.quantile(lat, 0.5), 3),
        "p99_ms": round(c.quantile(lat, 0.99), 3),
        "requests": n,
        "errors": sum(cell["errors"] for cell in cells),
        "window_s": dur,
        # CPU per request (ms), by process: where the two cores go
        "cpu_ms_per_request": {
            "client": round(1000 * sum(cell["client_cpu_s"] for cell in cells) / max(n, 1), 3),
            **{k: round(1000 * v / max(n, 1), 3) for k, v in sorted(cpu.items())},
        },
    }


def aggregate_runs(runs: dict[str, dict[str, Any]], concs: list[int]) -> dict[str, Any]:
    """``"mode/target/cN"`` -> the pooled reps of that cell, for every worker's run."""
    results: dict[str, Any] = {}
    for m, run in runs.items():
        for target in TARGETS:
            for conc in concs:
                cells = [
                    x for x in run["cells"] if x["target"] == target and x["concurrency"] == conc
                ]
                results[f"{m}/{target}/c{conc}"] = aggregate(cells)
    return results


def ratios_of(results: dict[str, Any], modes: list[str], concs: list[int]) -> dict[str, float]:
    """The headline: router ÷ plain req/s in the *same* ingress mode, per concurrency, and the
    p50/p99 latency the router adds at the lowest concurrency (ms). Cross-mode quotients
    (router in a mode over plain on the default proxy path) are kept under ``note:`` keys
    only: they compare two ingress modes, and a plain app gets the faster one too."""
    ratios: dict[str, float] = {}
    low = min(concs)
    for m in modes:
        for conc in concs:
            pa, rb = results[f"{m}/plain/c{conc}"], results[f"{m}/router/c{conc}"]
            ratios[f"{m}: router/plain c{conc}"] = round(rb["rps"] / pa["rps"], 3)
        pa, rb = results[f"{m}/plain/c{low}"], results[f"{m}/router/c{low}"]
        ratios[f"{m}: added p50 ms c{low}"] = round(rb["p50_ms"] - pa["p50_ms"], 3)
        ratios[f"{m}: added p99 ms c{low}"] = round(rb["p99_ms"] - pa["p99_ms"], 3)
    if "proxy" in modes:
        for m in modes:
            if m == "proxy":
                continue
            for conc in concs:
                base = results[f"proxy/plain/c{conc}"]["rps"]
                ratios[f"note: router({m})/plain(proxy) c{conc}"] = round(
                    results[f"{m}/router/c{conc}"]["rps"] / base, 3
                )
    return ratios


def table_rows(results: dict[str, Any], modes: list[str], concs: list[int]) -> list[list[Any]]:
    """One printed row per (mode, concurrency, target)."""
    rows = []
    for m in modes:
        for conc in concs:
            for name in TARGETS:
                r = results[f"{m}/{name}/c{conc}"]
                rows.append(
                    [
                        f"{m}",
                        name,
                        conc,
                        r["rps"],
                        r["p50_ms"],
                        r["p99_ms"],
                        " ".join(f"{x:.0f}" for x in r["rps_per_rep"]),
                        r["errors"],
                    ]
                )
    return rows


def print_report(
    results: dict[str, Any], ratios: dict[str, float], modes: list[str], concs: list[int]
) -> None:
    """The req/s table, the ratio lines and CPU per request at the highest concurrency."""
    rows = table_rows(results, modes, concs)
    print()
    print(
        c.table(rows, ["mode", "target", "conc", "req/s", "p50 ms", "p99 ms", "per rep", "errors"])
    )
    print()
    print("same ingress mode (the headline):")
    for k, v in ratios.items():
        if not k.startswith("note:"):
            print(f"  {k:34s} {v:8.3f}{' ms' if ' ms ' in k else 'x'}")
    print("cross-mode, a note only (a plain app on direct ingress is faster too):")
    for k, v in ratios.items():
        if k.startswith("note:"):
            print(f"  {k[6:]:34s} {v:8.3f}x")
    for conc in concs:
        print()
        print(f"CPU ms per request by process (c={conc}; processes over 0.05 ms):")
        for m in modes:
            for target in TARGETS:
                key = f"{m}/{target}/c{conc}"
                if key in results:
                    cpu = results[key]["cpu_ms_per_request"]
                    print(f"  {m:12s} {target:6s} " + ", ".join(
                        f"{k}={v}" for k, v in cpu.items() if v > 0.05))
