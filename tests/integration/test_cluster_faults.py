"""Node loss under load on a real multi-node Ray: the short form of
``benchmarks/cluster_faults.py``, run once as a subprocess on its own
``ray.cluster_utils.Cluster`` (never the session's Ray; every scenario on that one cluster,
each with its own model), and each scenario's result asserted from its JSON. What is asserted
is behaviour (what failed, on which path, the final phase, the log); the seconds it took are
only reported, by the benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, str | None], Any]:
    out = tmp_path_factory.mktemp("cluster_faults") / "cluster_faults.json"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.cluster_faults", "--short", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1750, check=False)
    assert out.exists(), f"no result (exit code {proc.returncode}):\n{proc.stderr[-4000:]}"
    doc = json.loads(Path(out).read_text())
    by_key = {(r["scenario"], r.get("style")): r for r in doc["scenarios"]}
    assert set(by_key) == {(1, None), (2, None), (3, "serve-run"), (3, "python-api"),
                           (4, None)}, proc.stdout[-2000:]
    return by_key


def check(result: dict[str, Any], *keys: str) -> None:
    """The scenario ran, and each named expectation (and every other) held; the message shows
    what the scenario saw."""
    shown = {k: result.get(k) for k in ("error", "expect", "traffic", "final", "reason")}
    shown["log"] = [(e.get("phase_from"), e.get("phase_to"), e.get("actor"), e.get("reason"))
                    for e in result.get("log", [])]
    assert "error" not in result, json.dumps(shown, indent=1, default=str)[:6000]
    for k in keys:
        assert result["expect"].get(k) is True, f"{k}: " + json.dumps(shown, default=str)[:6000]
    assert result["passed"], json.dumps(shown, indent=1, default=str)[:6000]


def test_losing_the_candidates_node_rolls_back_with_no_stable_failure(
    results: dict[tuple[int, str | None], Any],
) -> None:
    r = results[(1, None)]
    check(r, "candidate_was_on_removed_node", "no_router_on_removed_node", "rolled_back",
          "by_the_controller",
          "no_failed_stable_requests", "log_gives_a_reason")
    assert r["traffic"]["failed_by_path"]["stable"] == 0
    assert r["final"]["phase"] == "rolled_back" and r["reason"]


def test_losing_the_controllers_node_resumes_elsewhere_and_completes(
    results: dict[tuple[int, str | None], Any],
) -> None:
    r = results[(2, None)]
    check(r, "controller_was_on_removed_node", "no_router_on_removed_node",
          "resumed_on_another_node",
          "same_phase_step_epoch_decisions", "no_decision_lost", "chain_intact",
          "rollout_completed", "store_is_postgresql")
    assert r["decisions"]["at_resume"] >= r["decisions"]["before"]


@pytest.mark.parametrize("style", ["serve-run", "python-api"])
def test_a_restarted_router_replica_serves_the_current_epoch_and_restarts_nothing(
    results: dict[tuple[int, str | None], Any], style: str,
) -> None:
    r = results[(3, style)]
    check(r, "in_canary_before_faults", "replacements_ran", "replacements_served",
          "no_stale_epoch_after_kills", "replicas_at_controller_epoch",
          "rolled_back_stays_rolled_back", "candidate_not_redeployed")
    # The short form kills once, after the abort: the replacement serves the rolled-back
    # epoch (not its config's first table) and does not start the rollout again.
    assert "rolled back" in r["kills"]
    assert set(r["stale_epoch_responses"]) == set(r["kills"])
    assert all(n == 0 for n in r["stale_epoch_responses"].values())


def test_losing_one_of_the_stables_nodes_fails_only_requests_in_flight(
    results: dict[tuple[int, str | None], Any],
) -> None:
    r = results[(4, None)]
    check(r, "stable_on_two_nodes", "no_router_on_removed_node", "stable_kept_serving",
          "stable_failures_only_in_flight")
    t = r["traffic"]
    assert t["failed_started_after_fault"]["stable"] == 0
    assert t["failed_by_path"]["stable"] <= t["in_flight_at_fault"]
