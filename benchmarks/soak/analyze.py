"""From the worker's raw data to the soak's summary (pure: no Ray, no clock).

Client rows are ``[t_sched, t_done, status, version, kind]``; samples are the ``Sampler``'s
(``t``, ``rss`` by ``"<role>@<pid>"``, ``store`` file sizes, ``buffers`` depths since the
previous sample). Memory growth is judged per process on the medians of its first and last
tenth of samples, so one noisy sample neither raises nor hides a flag."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from benchmarks import _common as c
from benchmarks.soak.config import GROWTH_ABS_MIB, GROWTH_REL

MIB = 1024.0 * 1024.0
LONG_LIVED = 0.5  # a process seen for at least this share of the run is judged on its own


def _ms(values: list[float], q: float) -> float | None:
    return round(c.quantile(values, q), 1) if values else None


def latency_summary(rows: list[list[Any]], t0: float, t_end: float) -> dict[str, Any]:
    """Throughput (200s per second of the run), offered rate, p50/p99/max of the 200s' latency
    (ms from the scheduled send time), and every failure by version and kind."""
    span = max(t_end - t0, 1e-9)
    lat = sorted((r[1] - r[0]) * 1000.0 for r in rows if r[2] == 200)
    errors = Counter(f"{r[3] or '-'} {r[4]}" for r in rows if r[2] != 200)
    return {
        "requests": len(rows),
        "ok": len(lat),
        "offered_per_s": round(len(rows) / span, 1),
        "throughput_per_s": round(len(lat) / span, 1),
        "p50_ms": _ms(lat, 0.50),
        "p99_ms": _ms(lat, 0.99),
        "max_ms": round(lat[-1], 1) if lat else None,
        "errors": sum(errors.values()),
        "errors_by_version_kind": dict(sorted(errors.items())),
        "served_by_version": dict(sorted(Counter(r[3] for r in rows if r[2] == 200).items())),
    }


def windows(rows: list[list[Any]], t0: float, t_end: float, width_s: float
            ) -> list[dict[str, Any]]:
    """``latency_summary`` of the requests scheduled in each ``width_s`` window of the run."""
    n = max(1, int(-(-(t_end - t0) // width_s)))
    parts: list[list[list[Any]]] = [[] for _ in range(n)]
    for r in rows:
        k = int((r[0] - t0) // width_s)
        if 0 <= k < n:
            parts[k].append(r)
    out = []
    for k, part in enumerate(parts):
        a = t0 + k * width_s
        s = latency_summary(part, a, min(a + width_s, t_end))
        out.append({"t_s": round(k * width_s, 1), **{key: s[key] for key in (
            "requests", "throughput_per_s", "p50_ms", "p99_ms", "errors")}})
    return out


def rss_series(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per process (``"<role>@<pid>"``): its role, pid and ``[(t, rss bytes), ...]``."""
    out: dict[str, dict[str, Any]] = {}
    for s in samples:
        for key, p in s["rss"].items():
            d = out.setdefault(key, {"role": p["role"], "pid": p["pid"], "points": []})
            d["points"].append((s["t"], p["rss"]))
    return out


def edges(values: list[float], share: float = 0.1) -> tuple[float, float]:
    """(median of the first ``share`` of ``values``, median of the last), at least one each."""
    k = max(1, int(len(values) * share))
    return statistics.median(values[:k]), statistics.median(values[-k:])


def grew(start: float, end: float, rel: float = GROWTH_REL, abs_mib: float = GROWTH_ABS_MIB
         ) -> bool:
    """Growth beyond noise: ``end`` above ``start`` by more than ``rel`` of it *and* by more than
    ``abs_mib`` MiB (both in bytes)."""
    return end - start > max(rel * start, abs_mib * MIB)


def process_row(d: dict[str, Any]) -> dict[str, Any]:
    """Start / end / max RSS (MiB) of one process, the end/start ratio and the growth flag."""
    t = [p[0] for p in d["points"]]
    rss = [float(p[1]) for p in d["points"]]
    start, end = edges(rss)
    return {
        "role": d["role"],
        "pid": d["pid"],
        "samples": len(rss),
        "seen_s": round(t[-1] - t[0], 1),
        "start_mib": round(start / MIB, 1),
        "end_mib": round(end / MIB, 1),
        "max_mib": round(max(rss) / MIB, 1),
        "end_over_start": round(end / start, 3) if start else None,
        "grew": grew(start, end),
    }


def rss_summary(samples: list[dict[str, Any]], run_s: float) -> dict[str, Any]:
    """``processes``: one row per process seen for at least ``LONG_LIVED`` of the run;
    ``versions``: per version, its replicas' incarnations (each one a fresh process) pooled."""
    rows = [process_row(d) for d in rss_series(samples).values()]
    long_rows = sorted((r for r in rows if r["seen_s"] >= LONG_LIVED * run_s),
                       key=lambda r: (r["role"], r["pid"]))
    by_version: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["role"].startswith("version:") and r not in long_rows:
            by_version[r["role"]].append(r)
    versions = []
    for role, rs in sorted(by_version.items()):
        judged = [r for r in rs if r["samples"] >= 3]
        versions.append({
            "role": role,
            "incarnations": len(rs),
            "seen_s_median": round(statistics.median(r["seen_s"] for r in rs), 1),
            "start_mib_median": round(statistics.median(r["start_mib"] for r in rs), 1),
            "end_mib_median": round(statistics.median(r["end_mib"] for r in rs), 1),
            "max_mib": max(r["max_mib"] for r in rs),
            "end_over_start_max": max((r["end_over_start"] or 0.0 for r in judged), default=None),
            "grew": any(r["grew"] for r in judged),
        })
    return {"processes": long_rows, "versions": versions,
            "flagged": [f"{r['role']}@{r['pid']}" for r in long_rows if r["grew"]]
            + [v["role"] for v in versions if v["grew"]]}


def store_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The store's total size (file + WAL + shm) at the first and last sample and its max, in
    MiB, with its row counts at the end."""
    sizes = [sum(s["store"].values()) for s in samples]
    last = samples[-1]["store"] if samples else {}
    rows: dict[str, int] = next(
        (s["buffers"]["rows"] for s in reversed(samples) if "rows" in s["buffers"]), {})
    return {
        "start_mib": round(sizes[0] / MIB, 2) if sizes else None,
        "end_mib": round(sizes[-1] / MIB, 2) if sizes else None,
        "max_mib": round(max(sizes) / MIB, 2) if sizes else None,
        "end_files_bytes": last,
        "end_rows": rows,
    }


def buffer_summary(samples: list[dict[str, Any]], capacity: int) -> dict[str, Any]:
    """High-water marks over the run: request events one tick drained (the router buffer's
    depth at the drain), labelled and shadow events, the controller's arrival-order hold, and
    events lost to a full buffer; with the request buffer's capacity for scale."""
    b = [s["buffers"] for s in samples if s["buffers"].get("ticks", 0) or "held" in s["buffers"]]

    def top(key: str) -> int:
        return max((int(x.get(key, 0)) for x in b), default=0)

    events_hw = top("events_max")
    return {
        "ticks_read": sum(int(x.get("ticks", 0)) for x in b),
        "events_high_water": events_hw,
        "events_capacity": capacity,
        "events_high_water_share": round(events_hw / capacity, 5) if capacity else None,
        "labelled_high_water": top("labelled_max"),
        "shadow_high_water": top("shadow_max"),
        "held_high_water": top("held"),
        "events_lost": sum(int(x.get("lost", 0)) for x in b),
    }


def rollout_summary(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rollouts by kind, outcome and who ended them, and each kind's median duration (s)."""
    by = Counter(f"{r['kind']}: {r['outcome']} by {r['by']}" for r in recs)
    secs: dict[str, list[float]] = defaultdict(list)
    for r in recs:
        secs[r["kind"]].append(r["end"] - r["start"])
    return {
        "rollouts": len(recs),
        "by_outcome": dict(sorted(by.items())),
        "median_s": {k: round(statistics.median(v), 1) for k, v in sorted(secs.items())},
    }


def analyze(raw: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    t0, t_end = raw["t0"], raw["t_end"]
    rows = raw["client"]["rows"]
    run_s = t_end - t0
    return {
        "summary": {
            "load": latency_summary(rows, t0, t_end),
            "feedback": raw["client"]["feedback"],
            "client_cpu_ms_per_request": round(1000 * raw["client"]["cpu_s"] / max(1, len(rows)),
                                               3),
            "rollouts": rollout_summary(raw["rollouts"]),
            "rss": rss_summary(raw["samples"], run_s),
            "store": store_summary(raw["samples"]),
            "buffers": buffer_summary(raw["samples"], cfg["event_buffer"]),
            "loadavg_1m": [s["loadavg_1m"] for s in raw["samples"]],
        },
        "windows": windows(rows, t0, t_end, cfg["sample_s"]),
    }
