"""The router's aggregates reach a real Prometheus server through Ray's metrics agent."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration


def wait_for(prom, promql: str, want: float, timeout_s: float = 60.0) -> float:
    got = -1.0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        res = prom.query(promql)
        got = sum(float(r["value"][1]) for r in res)
        if got == want:
            return got
        time.sleep(1)
    return got


def test_requests_rejects_weights_and_latency_reach_prometheus(deploy, heldout, prometheus) -> None:
    X, _ = heldout
    d = deploy([("v1", "v1.onnx", "onnx"), ("v2", "v2.onnx", "onnx")], weights={"v1": 75, "v2": 25})
    with d.client() as c:
        served = {"v1": 0, "v2": 0}
        for i in range(40):
            r = c.post(f"/v1/models/{d.model}/predict", json={"instances": X[i : i + 1].tolist()})
            served[r.headers["x-model-version"]] += 1
        for _ in range(3):
            assert c.post(f"/v1/models/{d.model}/predict", content=b"{oops").status_code == 400
    sel = f'model="{d.model}"'
    for v, n in served.items():
        q = f'sum(ray_rayrollout_requests_total{{{sel},version="{v}",outcome="ok"}})'
        assert wait_for(prometheus, q, n) == n
    q = f'sum(ray_rayrollout_requests_total{{{sel},outcome="rejected"}})'
    assert wait_for(prometheus, q, 3) == 3
    q = f'sum(ray_rayrollout_requests_total{{{sel},outcome="error"}})'
    assert prometheus.query(q) == []  # no model failures were ever counted
    q = f"sum(ray_rayrollout_request_latency_ms_count{{{sel}}})"
    assert wait_for(prometheus, q, 40) == 40
    # The weight gauge is per ingress replica (one series each, all showing the table in force):
    # every replica's series says 25, so both the smallest and the largest do.
    q = f'ray_rayrollout_routing_weight{{{sel},version="v2"}}'
    assert wait_for(prometheus, f"max({q})", 25.0) == 25.0
    assert wait_for(prometheus, f"min({q})", 25.0) == 25.0
