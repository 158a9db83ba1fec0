"""Every query of the Grafana dashboard, run against the real Prometheus of the session while
a real rollout (shadow, then a canary step) serves traffic: each parses, and the main ones
return data for the model, from the routers and from the controller."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import RayServe
from tests.integration.conftest import Prometheus
from tests.integration.test_admin import cleanup, rollout_spec
from tests.unit.test_dashboard import load, names_in, queries

pytestmark = pytest.mark.integration

# A series family that must have data once the rollout has served and judged in a canary step.
MAIN = (
    "ray_rayrollout_requests_total",
    "ray_rayrollout_request_latency_ms_bucket",
    "ray_rayrollout_routing_weight",
    "ray_rayrollout_shadow_comparisons_total",
    "ray_rayrollout_controller_phase",
    "ray_rayrollout_controller_weight",
    "ray_rayrollout_controller_epoch",
    "ray_rayrollout_check_evidence",
    "ray_rayrollout_check_verdict",
    "ray_rayrollout_decisions_total",
    "ray_rayrollout_tick_seconds_bucket",
    "ray_rayrollout_store_seconds_bucket",
)


def substitute(expr: str, model: str) -> str:
    return expr.replace("$model", model).replace("$__rate_interval", "1m")


def run(prom: Prometheus, expr: str) -> list[dict]:
    r = httpx.get(f"{prom.url}/api/v1/query", params={"query": expr}, timeout=10)
    assert r.status_code == 200, f"{expr!r}: {r.text}"  # 400 is a query that does not parse
    return list(r.json()["data"]["result"])


def test_every_dashboard_query_runs_against_a_live_rollout(
    ray_serve: RayServe, heldout: tuple[np.ndarray, np.ndarray], tmp_path: Path,
    prometheus: Prometheus,
) -> None:
    import rayrollout.client.api as rr

    model = f"g{uuid.uuid4().hex[:8]}"
    spec = rollout_spec(model, tmp_path / "rollouts.db")
    spec["strategy"] = {"shadow": {"fraction": 1.0, "min_comparisons": 20},
                        "steps": [{"weight": 50, "min_requests": 1_000_000}]}
    X, _ = heldout
    exprs = [q for q in queries(load()) if not q.startswith("label_values(")]
    role = next(e for e in exprs if "group_left (role)" in e)
    empty: set[str] = set(MAIN)
    got: dict[str, list[dict]] = {}
    roles: set[str] = set()
    try:
        ro = rr.start(spec)
        ro.wait({"shadow", "canary"}, timeout_s=60)
        with httpx.Client(base_url=ray_serve.url, timeout=60) as c:
            deadline = time.monotonic() + 60
            i = 0
            while time.monotonic() < deadline:
                for _ in range(10):
                    row = X[i % len(X)][None, :].tolist()
                    c.post(f"/v1/models/{model}/predict", json={"instances": row})
                    i += 1
                c.post(f"/v1/models/{model}/predict", content=b"{oops")  # a reject
                # Every query parses (a 400 fails); until each main family has data in one
                # of the queries that use it (Prometheus scrapes every second).
                got = {e: run(prometheus, substitute(e, model)) for e in exprs}
                empty = set(MAIN) - {f for e, res in got.items() if res for f in names_in(e)[0]}
                roles = {r["metric"]["role"] for r in got[role]}
                if not empty and len(roles) == 2 and ro.status()["phase"] == "canary":
                    break
                time.sleep(0.5)
        models = run(prometheus, "count by (model) (ray_rayrollout_requests_total)")
        assert model in {m["metric"]["model"] for m in models}  # what the variable lists
        phase = run(prometheus, substitute(
            'max by (phase) (ray_rayrollout_controller_phase{model="$model"}) == 1', model))
        status = ro.status()
    finally:
        cleanup(model)
    print(f"\n{i} requests; phase {status['phase']}; {len(exprs)} queries, "
          f"{sum(1 for r in got.values() if r)} with data; empty: {sorted(empty)}")
    assert not empty, f"no data for {sorted(empty)}"
    assert [p["metric"]["phase"] for p in phase] == [status["phase"]] == ["canary"]
    # Traffic grouped by the controller's role of each version: the join finds both.
    assert roles == {"stable", "candidate"}
