"""The printed report of a soak run, and the result JSON."""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks import _common as c
from benchmarks.soak.config import CYCLE, GROWTH_ABS_MIB, GROWTH_REL, NAME


def rss_table(r: dict[str, Any]) -> str:
    """One row per long-lived process, then one per version (its incarnations pooled)."""
    rows = [[f"{p['role']} (pid {p['pid']})", p["samples"], p["start_mib"], p["end_mib"],
             p["max_mib"], f"{p['end_over_start']:.2f}x", "GREW" if p["grew"] else "flat"]
            for p in r["processes"]]
    rows += [[f"{v['role']} ({v['incarnations']} replicas, ~{v['seen_s_median']:g} s each)", "-",
              v["start_mib_median"], v["end_mib_median"], v["max_mib"],
              "-" if v["end_over_start_max"] is None else f"<= {v['end_over_start_max']:.2f}x",
              "GREW" if v["grew"] else "flat"] for v in r["versions"]]
    return c.table(rows, ["RSS (MiB)", "samples", "start", "end", "max", "end/start", "growth"])


def load_table(s: dict[str, Any]) -> str:
    ld = s["load"]
    rows = [
        ["offered req/s", ld["offered_per_s"]],
        ["throughput (200s) req/s", ld["throughput_per_s"]],
        ["p50 ms (from the scheduled send)", ld["p50_ms"]],
        ["p99 ms", ld["p99_ms"]],
        ["max ms", ld["max_ms"]],
        ["requests / answered 200", f"{ld['requests']} / {ld['ok']}"],
        ["errors", ld["errors"]],
    ]
    rows += [[f"  {k}", n] for k, n in ld["errors_by_version_kind"].items()]
    fb = s["feedback"]
    rows.append(["labels posted back (posts failed)", f"{fb['labels']} ({fb['failed_posts']})"])
    ro = s["rollouts"]
    rows.append(["rollouts", ro["rollouts"]])
    rows += [[f"  {k}", n] for k, n in ro["by_outcome"].items()]
    rows += [[f"  median s, {k}", v] for k, v in ro["median_s"].items()]
    st, b = s["store"], s["buffers"]
    rows += [
        ["store MiB (file+WAL+shm) start / end / max",
         f"{st['start_mib']} / {st['end_mib']} / {st['max_mib']}"],
        ["store rows at the end (ticks, log, rollouts)",
         ", ".join(str(st["end_rows"].get(k, "-")) for k in ("ticks", "log", "rollouts"))],
        ["request-event buffer high-water (of capacity)",
         f"{b['events_high_water']} of {b['events_capacity']}"],
        ["labelled-event buffer high-water", b["labelled_high_water"]],
        ["shadow-event buffer high-water", b["shadow_high_water"]],
        ["controller arrival-order hold, high-water", b["held_high_water"]],
        ["events lost to a full buffer", b["events_lost"]],
    ]
    return c.table(rows, ["run", "value"])


def window_table(windows: list[dict[str, Any]], per: int) -> str:
    """The per-sample windows pooled ``per`` at a time (requests-weighted req/s, worst p99)."""
    rows = []
    for k in range(0, len(windows), per):
        ws = windows[k:k + per]
        p50 = [w["p50_ms"] for w in ws if w["p50_ms"] is not None]
        p99 = [w["p99_ms"] for w in ws if w["p99_ms"] is not None]
        rows.append([f"{ws[0]['t_s']:g} s", round(sum(w["throughput_per_s"] for w in ws) / len(ws),
                                                   1),
                     max(p50, default="-"), max(p99, default="-"), sum(w["errors"] for w in ws)])
    return c.table(rows, ["from", "req/s", "worst p50 ms", "worst p99 ms", "errors"])


def print_report(s: dict[str, Any], windows: list[dict[str, Any]], per: int) -> None:
    print()
    print(rss_table(s["rss"]))
    print(f"growth: end (median of the last tenth of samples) over start (of the first tenth) "
          f"by > {GROWTH_REL:.0%} and > {GROWTH_ABS_MIB:g} MiB; flagged: "
          f"{', '.join(s['rss']['flagged']) or 'none'}")
    print()
    print(load_table(s))
    print()
    print(window_table(windows, per))


def result_doc(command: str, cfg: dict[str, Any], raw: dict[str, Any], res: dict[str, Any],
               meta: dict[str, Any], t0: float) -> dict[str, Any]:
    """The result JSON: config, machine, the run's summary, windows, samples and rollouts."""
    return {
        "benchmark": NAME,
        "command": command,
        "config": {
            **cfg,
            "mode": "proxy (Serve's default HTTP proxy)",
            "mode_env": raw["env"],
            "cycle": [f"{s} -> {cand} ({kind})" for s, cand, kind in CYCLE],
            "request": "POST one held-out row {'instances': [[64 x FP32]]} "
                       "(models/heldout.npz, in turn); its label posted back in batches",
            "load_generator": f"separate client process, open loop at {cfg['rate']:g} req/s",
            "latency": "t_done - t_scheduled of each 200 (open loop: waiting counts)",
            "growth_rule": f"median of the last tenth of a process's samples over the median of "
                           f"its first tenth by > {GROWTH_REL:.0%} and > {GROWTH_ABS_MIB:g} MiB",
            "pids_from": raw["pid_source"],
        },
        "machine": {**meta, "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
        "git": c.git_rev(),
        "wall_s": round(time.time() - t0, 1),
        "setup_s": raw["setup_s"],
        "store_verify": raw["verify"],
        "final_status": raw["final_status"],
        "summary": res["summary"],
        "windows": res["windows"],
        "samples": raw["samples"],
        "rollouts": raw["rollouts"],
    }
