"""The soak benchmark's analysis: samples to summary, memory-growth detection, buffer depths
from persisted ticks, and which actor plays which role. Pure: no Ray."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.soak.analyze import (
    MIB,
    buffer_summary,
    edges,
    grew,
    latency_summary,
    rollout_summary,
    rss_summary,
    store_summary,
    windows,
)
from benchmarks.soak.config import CYCLE, cycle_at, next_index
from benchmarks.soak.probe import role_of, tick_depths


def sample(t: float, rss: dict[str, tuple[str, int, float]], db: int = 0,
           buffers: dict[str, Any] | None = None) -> dict[str, Any]:
    """A sampler row: ``rss`` maps a key to (role, pid, MiB)."""
    return {
        "t": t,
        "rss": {k: {"role": r, "pid": p, "rss": int(m * MIB)} for k, (r, p, m) in rss.items()},
        "store": {"db": db, "db-wal": 0, "db-shm": 0},
        "buffers": buffers or {"ticks": 0},
        "loadavg_1m": 1.0,
    }


def test_growth_needs_both_the_relative_and_the_absolute_margin() -> None:
    assert grew(100 * MIB, 130 * MIB)  # +30 %, +30 MiB
    assert not grew(100 * MIB, 108 * MIB)  # +8 %: noise
    assert not grew(50 * MIB, 62 * MIB)  # +24 % but only 12 MiB
    assert not grew(400 * MIB, 430 * MIB)  # +30 MiB but 7.5 %
    assert not grew(300 * MIB, 200 * MIB)  # shrinking is never growth


def test_edges_are_medians_so_one_spike_moves_nothing() -> None:
    values = [100.0] * 30 + [500.0] + [100.0] * 29
    assert edges(values) == (100.0, 100.0)
    assert edges([1.0, 9.0]) == (1.0, 9.0)  # at least one value each


def test_a_leaking_router_is_flagged_and_a_flat_controller_is_not() -> None:
    samples = [
        sample(t, {"r": ("router", 11, 200 + 2 * t), "c": ("controller", 12, 150 + (t % 2))})
        for t in range(0, 60)
    ]
    out = rss_summary(samples, run_s=59)
    rows = {p["role"]: p for p in out["processes"]}
    assert rows["router"]["grew"] and rows["router"]["end_over_start"] > 1.5
    assert not rows["controller"]["grew"]
    assert rows["controller"]["max_mib"] == pytest.approx(151.0)
    assert out["flagged"] == ["router@11"]


def test_version_incarnations_are_pooled_per_version_not_judged_as_one_process() -> None:
    # v1 replaced three times, each incarnation flat at ~120 MiB: a new PID is a new process
    samples = []
    for t in range(60):
        pid = 100 + t // 20
        samples.append(sample(t, {"r": ("router", 1, 200.0),
                                  f"v{pid}": ("version:v1", pid, 120.0 + pid - 100)}))
    out = rss_summary(samples, run_s=59)
    assert [p["role"] for p in out["processes"]] == ["router"]
    (v,) = out["versions"]
    assert v["role"] == "version:v1" and v["incarnations"] == 3
    assert v["end_over_start_max"] == pytest.approx(1.0)
    assert not v["grew"] and out["flagged"] == []


def test_latency_summary_counts_failures_by_version_and_kind() -> None:
    rows = [[0.0, 0.010, 200, "v1", ""], [0.5, 0.520, 200, "v2", ""], [1.0, 1.3, 500, "v2",
            "http-500"], [1.5, 31.5, 0, "", "timeout"]]
    s = latency_summary(rows, 0.0, 2.0)
    assert (s["requests"], s["ok"], s["errors"]) == (4, 2, 2)
    assert s["throughput_per_s"] == 1.0 and s["offered_per_s"] == 2.0
    assert s["errors_by_version_kind"] == {"- timeout": 1, "v2 http-500": 1}
    assert s["served_by_version"] == {"v1": 1, "v2": 1}
    assert s["p50_ms"] == pytest.approx(10.0) and s["max_ms"] == pytest.approx(20.0)


def test_windows_split_requests_by_their_scheduled_time() -> None:
    rows = [[t / 10, t / 10 + 0.01, 200, "v1", ""] for t in range(100)]  # 10 s at 10 req/s
    rows.append([9.95, 9.99, 503, "v1", "http-503"])
    w = windows(rows, 0.0, 10.0, 5.0)
    assert [x["t_s"] for x in w] == [0.0, 5.0]
    assert [x["requests"] for x in w] == [50, 51]
    assert [x["errors"] for x in w] == [0, 1]
    assert w[0]["throughput_per_s"] == 10.0


def test_tick_depths_and_buffer_high_water() -> None:
    tick = {"events": [[0]] * 40, "labelled": [[0]] * 7, "shadow": [],
            "requests": {"v1": 30, "v2": 13}}
    assert tick_depths(tick) == {"events": 40, "labelled": 7, "shadow": 0, "lost": 3}
    assert tick_depths({"events": [], "command": {"verb": "abort"}})["lost"] == 0
    b = buffer_summary([
        sample(0, {}, buffers={"ticks": 2, "events_max": 55, "labelled_max": 3, "shadow_max": 0,
                               "lost": 0, "held": 4}),
        sample(10, {}, buffers={"ticks": 20, "events_max": 61, "labelled_max": 9,
                                "shadow_max": 0, "lost": 2, "held": 1}),
    ], capacity=200_000)
    assert b["events_high_water"] == 61 and b["labelled_high_water"] == 9
    assert b["held_high_water"] == 4 and b["events_lost"] == 2 and b["ticks_read"] == 22
    assert b["events_high_water_share"] == pytest.approx(61 / 200_000, abs=1e-5)


def test_store_summary_adds_the_wal_and_reports_the_last_row_counts() -> None:
    s1 = sample(0, {}, db=1 * int(MIB))
    s2 = sample(10, {}, db=3 * int(MIB), buffers={"ticks": 1, "rows": {"ticks": 5, "log": 2,
                                                                        "rollouts": 1}})
    s2["store"]["db-wal"] = int(MIB)
    s3 = sample(20, {}, db=2 * int(MIB))
    out = store_summary([s1, s2, s3])
    assert (out["start_mib"], out["end_mib"], out["max_mib"]) == (1.0, 2.0, 4.0)
    assert out["end_rows"] == {"ticks": 5, "log": 2, "rollouts": 1}


def test_rollout_summary_by_outcome() -> None:
    recs = [
        {"kind": "promote", "outcome": "promoted", "by": "strategy", "start": 0, "end": 10},
        {"kind": "rollback", "outcome": "rolled_back", "by": "judge", "start": 10, "end": 30},
        {"kind": "rollback", "outcome": "aborted", "by": "driver", "start": 30, "end": 40},
    ]
    s = rollout_summary(recs)
    assert s["by_outcome"] == {"promote: promoted by strategy": 1,
                               "rollback: aborted by driver": 1,
                               "rollback: rolled_back by judge": 1}
    assert s["median_s"] == {"promote": 10.0, "rollback": 15.0}


def test_roles_of_actors() -> None:
    m = "soakab12"
    assert role_of({"name": f"rayrollout-controller-{m}", "class": "ControllerActor"}, m) == (
        "controller")
    assert role_of({"name": "x", "class": "ServeReplica:rayrollout:Router"}, m) == "router"
    assert role_of({"name": "x", "class": f"ServeReplica:{m}-v2-regressed:ModelVersion"}, m) == (
        "version:v2-regressed")
    assert role_of({"name": "x", "class": "ServeReplica:other-v1:ModelVersion"}, m) is None
    assert role_of({"name": "SERVE_CONTROLLER_ACTOR", "class": "ServeController"}, m) == (
        "serve-controller")
    assert role_of({"name": "SERVE_PROXY_ACTOR-abc", "class": "ProxyActor"}, m) == "serve-proxy"


def test_the_cycle_returns_to_its_first_stable_and_a_failed_promotion_is_retried() -> None:
    stable = CYCLE[0][0]
    for i, (s, cand, kind) in enumerate(CYCLE):
        assert s == stable and cycle_at(i + len(CYCLE)) == (s, cand, kind)
        stable = cand if kind == "promote" else s
    assert stable == CYCLE[0][0]
    assert next_index(0, "v2") == 1  # v1 -> v2 promoted: next is v2 -> v2-regressed
    assert next_index(0, "v1") == 3  # the promotion failed: v1 -> v2 again, one cycle on
    with pytest.raises(ValueError):
        next_index(0, "v9")
