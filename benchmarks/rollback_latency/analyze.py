"""From the worker's raw data to per-rollback samples and the run's summary (pure: no Ray,
no timing). Events are ``[t, version, epoch, outcome, latency_ms]``; client rows are
``[t_send, t_recv, status, version, epoch, note]``."""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from typing import Any

from benchmarks import _common as c
from benchmarks.rollback_latency.config import CANDIDATE, GOAL_P99_MS, STABLE, STRANDED_MS


def _q(values: list[float]) -> dict[str, Any]:
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {
        "n": len(v),
        "p50": round(c.quantile(v, 0.50), 1),
        "p90": round(c.quantile(v, 0.90), 1),
        "p99": round(c.quantile(v, 0.99), 1),
        "max": round(v[-1], 1),
        "min": round(v[0], 1),
    }


def _col(samples: list[dict[str, Any]], key: str) -> list[Any]:
    """``key`` of every sample that has it."""
    return [s[key] for s in samples if key in s]


def epoch_tables(
    hist: list[dict[str, Any]], initial_epoch: Any
) -> tuple[dict[int, set[str]], list[float]]:
    """The routing table of every epoch (versions with weight > 0), and the sorted times of the
    decisions that gave the candidate traffic."""
    tables: dict[int, set[str]] = {int(initial_epoch): {STABLE}}
    enables: list[float] = []
    for d in hist:
        for a in d["actions"]:
            if a["kind"] == "routes":
                live = {v for v, w in (a.get("weights") or {}).items() if w > 0}
                tables[int(a["epoch"])] = live
                if CANDIDATE in live:
                    enables.append(d["now"])
    enables.sort()
    return tables, enables


def _cycle_of(cycles: list[dict[str, Any]], t_dec: float) -> dict[str, Any] | None:
    """The cycle whose verb call was under way at decision time ``t_dec``, if any."""
    return next(
        (
            cy
            for cy in cycles
            if "call" in cy and cy["call"] - 0.001 <= t_dec <= cy["returned"] + 0.001
        ),
        None,
    )


def _server_side(s: dict[str, Any], window: list[list[Any]], t_dec: float, epoch: int) -> None:
    """Into ``s``: the routers' view of the candidate's requests around one rollback."""
    last = window[-1]
    s["last_candidate_arrival_t"] = last[0]
    s["server_ms"] = round((last[0] - t_dec) * 1000.0, 2)
    s["candidate_arrivals_after_decision"] = sum(1 for e in window if e[0] >= t_dec)
    s["candidate_in_flight_at_decision"] = sum(
        1 for e in window if e[0] < t_dec <= e[0] + e[4] / 1000.0
    )
    s["candidate_events_at_or_after_rollback_epoch"] = sum(1 for e in window if e[2] >= epoch)
    # when the candidate really stopped serving: the last version call to finish
    s["last_candidate_finish_ms"] = round(
        (max(e[0] + e[4] / 1000.0 for e in window) - t_dec) * 1000.0, 2
    )
    stranded = [e for e in window if e[4] > STRANDED_MS and e[0] < t_dec + 1.0]
    s["candidate_stranded"] = len(stranded)
    s["candidate_stranded_outcomes"] = sorted({int(e[3]) for e in stranded})
    # resolution: the candidate's inter-arrival gap just before the decision
    before = [e[0] for e in window if e[0] < t_dec][-50:]
    if len(before) > 1:
        gaps = sorted(b - a for a, b in itertools.pairwise(before))
        s["candidate_gap_ms_median"] = round(gaps[len(gaps) // 2] * 1000.0, 2)


def _client_side(
    s: dict[str, Any],
    cyc: dict[str, Any],
    t_dec: float,
    cand_ans: list[list[Any]],
    cand_send: list[float],
) -> None:
    """Into ``s``: the verb's timings and the client's view of the candidate in that cycle."""
    s["verb_call_to_decision_ms"] = round((t_dec - cyc["call"]) * 1000.0, 2)
    s["decision_to_verb_return_ms"] = round((cyc["returned"] - t_dec) * 1000.0, 2)
    s["verb_round_trip_ms"] = round((cyc["returned"] - cyc["call"]) * 1000.0, 2)
    c_lo = bisect_left(cand_send, cyc["start"])
    c_hi = bisect_left(cand_send, cyc.get("retry_call", float("inf")))
    cw = cand_ans[c_lo:c_hi]
    if cw:
        s["client_ms"] = round((max(r[1] for r in cw) - cyc["returned"]) * 1000.0, 2)
        s["client_last_send_ms"] = round((max(r[0] for r in cw) - cyc["returned"]) * 1000.0, 2)
        s["client_candidate_responses_after_return"] = sum(1 for r in cw if r[1] > cyc["returned"])
        s["client_candidate_in_flight_at_return"] = sum(
            1 for r in cw if r[0] < cyc["returned"] < r[1]
        )


def rollback_samples(
    raw: dict[str, Any], enables: list[float], ev: list[list[Any]], rows: list[list[Any]]
) -> list[dict[str, Any]]:
    """One sample per decision to ``rolled_back``: server side from the routers' events between
    the candidate's enabling decisions around it, client side from that cycle's rows."""
    cand_ev = [e for e in ev if e[1] == CANDIDATE]
    cand_t = [e[0] for e in cand_ev]
    # every answer from the candidate (errors carry x-model-version too), by send time: a
    # request sent before the rollback belongs to it however late it is answered
    cand_ans = sorted((r for r in rows if r[3] == CANDIDATE), key=lambda r: r[0])
    cand_send = [r[0] for r in cand_ans]
    samples = []
    for d in raw["history"]:
        if d["phase_to"] != "rolled_back":
            continue
        t_dec, epoch = d["now"], int(d["epoch"])
        cyc = _cycle_of(raw["cycles"], t_dec)
        kind = ("undo" if cyc["kind"] == "promote" else "abort") if cyc else "auto"
        i_en = bisect_right(enables, t_dec)
        lower = enables[i_en - 1] if i_en else float("-inf")
        upper = enables[i_en] if i_en < len(enables) else float("inf")
        window = cand_ev[bisect_left(cand_t, lower) : bisect_left(cand_t, upper)]
        s: dict[str, Any] = {
            "seq": d["seq"],
            "kind": kind,
            "decision_t": t_dec,
            "epoch": epoch,
            "reason": d["reason"][:120],
        }
        if window:
            _server_side(s, window, t_dec, epoch)
        if cyc:
            _client_side(s, cyc, t_dec, cand_ans, cand_send)
        samples.append(s)
    return samples


def failure_windows(
    cycles: list[dict[str, Any]], settle_s: float
) -> list[tuple[float, float, str]]:
    """(start, end, name) of every promotion and rollback window."""
    windows: list[tuple[float, float, str]] = []
    for cy in cycles:
        if "promote_call" in cy:
            windows.append((cy["promote_call"], cy["call"], "promotion"))
        if "call" in cy:
            windows.append(
                (cy["call"], cy["returned"] + settle_s + cy.get("delete_wait_s", 0), "rollback")
            )
    return windows


def window_of(r: list[Any], windows: list[tuple[float, float, str]]) -> str:
    """The first window a request's [sent, answered] interval overlaps."""
    for a, b, name in windows:
        if r[0] <= b and r[1] >= a:
            return name
    return "other"


def router_failures(
    ev: list[list[Any]], hist: list[dict[str, Any]]
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Failed router events: count by version, and each with its distance to the nearest
    rollback decision."""
    router_failed: dict[str, int] = {}
    router_failed_detail = []
    rb_times = sorted(d["now"] for d in hist if d["phase_to"] == "rolled_back")
    for e in ev:
        if e[3] != 0:
            router_failed[e[1]] = router_failed.get(e[1], 0) + 1
            near = min(rb_times, key=lambda t: abs(t - e[0])) if rb_times else None
            router_failed_detail.append(
                {
                    "t": e[0],
                    "version": e[1],
                    "epoch": e[2],
                    "outcome": e[3],
                    "latency_ms": round(e[4], 1),
                    "arrival_minus_nearest_rollback_decision_ms": None
                    if near is None
                    else round((e[0] - near) * 1000.0, 1),
                }
            )
    return router_failed, router_failed_detail


def latency_summary(samples: list[dict[str, Any]], push_rtt_ms: list[float]) -> dict[str, Any]:
    """The per-rollback timings, pooled (``rb``: rollbacks with candidate traffic)."""
    rb = [s for s in samples if "server_ms" in s]
    return {
        "rollbacks": len(samples),
        "rollbacks_with_candidate_traffic": len(rb),
        "by_kind": {
            k: sum(1 for s in samples if s["kind"] == k) for k in ("abort", "undo", "auto")
        },
        "server_ms": _q([s["server_ms"] for s in rb]),
        "server_ms_abort": _q([s["server_ms"] for s in rb if s["kind"] == "abort"]),
        "server_ms_undo": _q([s["server_ms"] for s in rb if s["kind"] == "undo"]),
        "last_candidate_finish_ms": _q([s["last_candidate_finish_ms"] for s in rb]),
        "candidate_stranded": sum(s.get("candidate_stranded", 0) for s in rb),
        "rollbacks_with_stranded": sum(1 for s in rb if s.get("candidate_stranded")),
        "client_ms": _q(_col(samples, "client_ms")),
        "client_last_send_ms": _q(_col(samples, "client_last_send_ms")),
        "verb_round_trip_ms": _q(_col(samples, "verb_round_trip_ms")),
        "verb_call_to_decision_ms": _q(_col(samples, "verb_call_to_decision_ms")),
        "decision_to_verb_return_ms": _q(_col(samples, "decision_to_verb_return_ms")),
        "candidate_in_flight_at_decision": _q(
            [float(s["candidate_in_flight_at_decision"]) for s in rb]
        ),
        "candidate_arrivals_after_decision": _q(
            [float(s["candidate_arrivals_after_decision"]) for s in rb]
        ),
        "candidate_gap_ms_median": _q(_col(rb, "candidate_gap_ms_median")),
        "set_routes_broadcast_rtt_ms": _q(list(push_rtt_ms)),
    }


def traffic_summary(
    raw: dict[str, Any],
    ev: list[list[Any]],
    rows: list[list[Any]],
    tables: dict[int, set[str]],
    settle_s: float,
) -> dict[str, Any]:
    """The whole run's requests: throughput, every non-200 (by the version that answered and by
    window), and every request served by a version not in its epoch's table."""
    windows = failure_windows(raw["cycles"], settle_s)
    failures = [r for r in rows if r[2] != 200]
    by_version: dict[str, int] = {}
    by_window: dict[str, int] = {}
    for r in failures:
        by_version[r[3] or "(none)"] = by_version.get(r[3] or "(none)", 0) + 1
        w = window_of(r, windows)
        by_window[w] = by_window.get(w, 0) + 1
    stable_path = [r for r in failures if r[3] in (STABLE, "")]
    router_failed, router_failed_detail = router_failures(ev, raw["history"])
    # a version served under a table that does not list it
    bad_client = [r for r in rows if r[2] == 200 and r[3] not in tables.get(r[4], set())]
    bad_router = [e for e in ev if e[1] not in tables.get(e[2], set())]
    t0 = min(r[0] for r in rows) if rows else 0.0
    t1 = max(r[1] for r in rows) if rows else 0.0
    served: dict[str, int] = {}
    for r in rows:
        if r[2] == 200:
            served[r[3]] = served.get(r[3], 0) + 1
    return {
        "requests": len(rows),
        "requests_per_s": round(len(rows) / max(1e-9, t1 - t0), 1),
        "served": served,
        "client_cpu_ms_per_request": round(1000.0 * raw["client_cpu_s"] / max(1, len(rows)), 3),
        "router_events": len(ev),
        "failed_requests": len(failures),
        "failed_by_version": by_version,
        "failed_by_window": by_window,
        "failed_stable_path": len(stable_path),
        "failed_examples": [r for r in failures[:10]],
        "router_failed_events_by_version": router_failed,
        "router_failed_events": router_failed_detail[:20],
        "served_outside_epoch_table_client": len(bad_client),
        "served_outside_epoch_table_router": len(bad_router),
        "outside_examples": bad_client[:5] + [e[:3] for e in bad_router[:5]],
    }


def goals(summary: dict[str, Any]) -> dict[str, bool]:
    """The goals, from the summary's counts."""
    p99 = summary["server_ms"].get("p99")
    return {
        "p99_server_ms_under_250": p99 is not None and p99 < GOAL_P99_MS,
        "zero_failed_stable_path": summary["failed_stable_path"] == 0,
        "zero_failed_any": summary["failed_requests"] == 0,
        "zero_served_outside_table": summary["served_outside_epoch_table_client"] == 0
        and summary["served_outside_epoch_table_router"] == 0,
        "zero_stranded_candidate_requests": summary["candidate_stranded"] == 0,
    }


def analyze(raw: dict[str, Any], settle_s: float) -> dict[str, Any]:
    tables, enables = epoch_tables(raw["history"], raw["initial_epoch"])
    ev = sorted(raw["events"], key=lambda e: e[0])
    rows = sorted(raw["client_rows"], key=lambda r: r[1])
    samples = rollback_samples(raw, enables, ev, rows)
    summary = {
        **latency_summary(samples, raw["push_rtt_ms"]),
        **traffic_summary(raw, ev, rows, tables, settle_s),
        "candidate_events_at_or_after_rollback_epoch": sum(
            s.get("candidate_events_at_or_after_rollback_epoch", 0) for s in samples
        ),
    }
    summary["goals"] = goals(summary)
    return {"samples": samples, "summary": summary, "epochs": len(tables)}
