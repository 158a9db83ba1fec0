"""PromQL checks against the real Prometheus of the integration tests, scraping a running
rollout: the routers' request counters (``ray_rayrollout_requests_total``) reach Prometheus
through Ray's metrics agent, and the controller reads them back with PromQL. A guard on the
candidate's error ratio and a comparison of both versions' failure counts pass a healthy
candidate and roll back one that fails half its requests; with Prometheus out of reach both
checks report ERROR and the rollout holds where it is instead of rolling back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import rayrollout.client.api as rr
from tests.conftest import ARTIFACTS, RayServe, free_port
from tests.integration.conftest import Prometheus
from tests.integration.test_controller import Load
from tests.integration.test_controller import model as model  # the fixture: a fresh model

pytestmark = pytest.mark.integration

SEL = 'model="{{model}}",version="{{version}}"'
ERROR_RATIO = (f'(sum(rate(ray_rayrollout_requests_total{{{SEL},outcome=~"error|timeout"}}[10s]))'
               f' or vector(0)) / sum(rate(ray_rayrollout_requests_total{{{SEL},'
               'outcome!="rejected"}[10s]))')
BAD_COUNT = f'sum(ray_rayrollout_requests_total{{{SEL},outcome=~"error|timeout"}}) or vector(0)'


def version(name: str, artifact: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "runtime": "onnx", "artifact": str(ARTIFACTS / artifact), **kw}


def spec(model: str, store: Path, url: str, cand: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": model,
        "stable": version("v1", "v1.onnx"),
        "candidates": [cand],
        "strategy": {"steps": [{"weight": 50, "min_duration_s": 8}]},
        "analysis": {
            "tick_s": 0.5,
            "alpha": 0.05,
            "checks": [{"kind": "promql_compare", "name": "failures", "params": {
                "url": url, "query": BAD_COUNT, "interval_s": 1, "timeout_s": 2,
                "settle_s": 4, "min_intervals": 3}}],
            "guards": [{"kind": "promql_threshold", "name": "error_ratio", "params": {
                "url": url, "query": ERROR_RATIO, "max_value": 0.1, "interval_s": 1,
                "timeout_s": 2}}],
        },
        "drain_s": 1,
        "store_path": str(store),
    }


def wait_final(ro: rr.Rollout, prometheus: Prometheus) -> dict[str, Any]:
    """The rollout's final status; on a timeout, the message says what each check and
    Prometheus saw (a check that never got a reading holds the rollout at its step)."""
    try:
        return ro.wait(frozenset({"promoted", "rolled_back"}), 60)
    except TimeoutError as e:
        checks = ro.status()["checks"].get("v2", [])
        reasons = {c["check"]: (c.get("verdict"), c.get("reason")) for c in checks}
        raise AssertionError(f"{e}; checks {reasons}; {prometheus.diagnose()}") from None


def evidence(ro: rr.Rollout) -> dict[str, dict[str, Any]]:
    return {r["check"]: r for r in ro.history()[-1]["evidence"]["v2"]}


def test_a_healthy_candidate_passes_the_promql_checks(
        ray_serve: RayServe, prometheus: Prometheus, model: str, heldout, tmp_path: Path) -> None:
    X, y = heldout
    ro = rr.start(spec(model, tmp_path / "r.db", prometheus.url, version("v2", "v2.onnx")),
                  route_prefix=f"/{model}")
    with Load(f"{ray_serve.url}/{model}", model, X, y) as load:
        st = wait_final(ro, prometheus)
    assert st["phase"] == "promoted", ro.history()[-1]
    ev = evidence(ro)
    assert ev["error_ratio"]["verdict"] == "PASS" and ev["error_ratio"]["value"] == 0.0
    assert ev["failures"]["verdict"] == "PASS" and ev["failures"]["counts"]["intervals"] >= 3
    assert not load.failures, load.failures[:5]
    assert ro.replay()["identical"]


def test_a_candidate_whose_errors_regress_is_rolled_back_by_promql(
        ray_serve: RayServe, prometheus: Prometheus, model: str, heldout, tmp_path: Path) -> None:
    X, y = heldout
    bad = version("v2", "v2.onnx", faults={"error_rate": 0.5, "seed": 1})
    ro = rr.start(spec(model, tmp_path / "r.db", prometheus.url, bad), route_prefix=f"/{model}")
    with Load(f"{ray_serve.url}/{model}", model, X, y):
        st = wait_final(ro, prometheus)
    assert st["phase"] == "rolled_back" and st["weights"] == {"v1": 100.0}
    last = ro.history()[-1]
    ev = evidence(ro)
    failed = [name for name, r in ev.items() if r["verdict"] == "FAIL"]
    assert failed and all(name in last["reason"] for name in failed)
    if "error_ratio" in failed:
        assert ev["error_ratio"]["value"] > 0.1
    assert ro.replay()["identical"]


def test_prometheus_out_of_reach_is_error_and_does_not_roll_back(
        ray_serve: RayServe, model: str, heldout, tmp_path: Path) -> None:
    X, y = heldout
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    bad = version("v2", "v2.onnx", faults={"error_rate": 0.5, "seed": 1})
    ro = rr.start(spec(model, tmp_path / "r.db", url, bad), route_prefix=f"/{model}")
    with Load(f"{ray_serve.url}/{model}", model, X, y):
        ro.wait(frozenset({"canary"}), 60)
        deadline = time.monotonic() + 30
        checks: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = ro.status()
            checks = {c["check"]: c for c in st["checks"].get("v2", [])}
            if all(c.get("verdict") == "ERROR" for c in checks.values()) and len(checks) == 2:
                break
            time.sleep(0.5)
        time.sleep(3)  # a few more ticks: still held, never rolled back for it
        st = ro.status()
    assert st["phase"] == "canary" and st["step"] == 0, st["phase"]
    checks = {c["check"]: c for c in st["checks"]["v2"]}
    for name in ("error_ratio", "failures"):
        assert checks[name]["verdict"] == "ERROR", checks[name]
        assert "Prometheus unavailable [unavailable]" in checks[name]["reason"]
        assert "127.0.0.1" in checks[name]["reason"]
    ro.abort()
