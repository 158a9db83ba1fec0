"""Versions as Serve runs them, on a real local Ray: autoscaling versions through a promotion
and an undo under 16 concurrent clients with no failed request (capacity decisions in the
decision log), and an object-store artifact whose sha256 does not match, refused before any
traffic reaches it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS, RayServe
from tests.integration.s3_server import S3Server, s3_fixture
from tests.integration.test_load import (
    Model,
    Traffic,
    abort_if_active,
    make_model,
    remove_model,
    rollout_spec,
)

pytestmark = pytest.mark.integration

s3 = s3_fixture({"cands/v2.onnx": ARTIFACTS / "v2.onnx"})

AUTO = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2,
        "upscale_delay_s": 0.5, "downscale_delay_s": 300, "metrics_interval_s": 0.5,
        "look_back_period_s": 2}


@pytest.fixture
def model(ray_serve: RayServe, tmp_path: Path) -> Iterator[Model]:
    m = make_model(ray_serve, tmp_path)
    yield m
    abort_if_active(m)
    remove_model(m)


def autoscaled(name: str, artifact: str) -> dict[str, Any]:
    return {"name": name, "runtime": "onnx", "artifact": str(ARTIFACTS / artifact),
            "autoscaling_config": AUTO, "max_ongoing_requests": 8,
            "batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.005}}


def test_autoscaling_versions_promote_and_undo_under_16_clients(model: Model, heldout) -> None:
    """Each version autoscales on its own load; before the promotion the candidate's floor is
    raised to the replicas the stable runs (and the stable's held), traffic moves once they
    run, and an undo right after the promotion lands on the held stable: no request fails."""
    X, _ = heldout
    spec = rollout_spec(model.name, model.store, ("v1", "v1.onnx"), ("v2", "v2.onnx"),
                        [{"weight": 50, "min_requests": 150}], rollback_window_s=600)
    spec["stable"], spec["candidates"] = autoscaled("v1", "v1.onnx"), [autoscaled("v2", "v2.onnx")]
    ro = model.start(spec)
    with Traffic(model.base, model.name, X, clients=16, bad_every=0) as load:
        st = ro.wait(frozenset({"promoted", "rolled_back"}), 180)
        assert st["phase"] == "promoted", (st["phase"], [e["reason"] for e in ro.history()])
        undone = ro.undo()  # right after the promotion
        assert undone["phase"] == "rolled_back" and undone["weights"] == {"v1": 100.0}
        time.sleep(2.0)  # traffic goes on on the restored stable
    assert load.failed() == {}, load.failed()
    served = load.served()
    assert served["v1"] > 0 and served["v2"] > 0
    log = ro.history()
    scales = [(e["phase_to"], a) for e in log for a in e["actions"] if a["kind"] == "scale"]
    # at promotion: the candidate's floor and the stable's hold, with the stable's count
    raised = [a for _, a in scales if a.get("replicas")]
    assert {a["version"] for a in raised} == {"v1", "v2"}, scales
    assert len({a["replicas"] for a in raised}) == 1  # the stable's running replicas
    promote = next(e for e in log if e["phase_to"] == "promoted")
    assert any("capacity" in e["reason"] for e in log if e["seq"] <= promote["seq"]), [
        e["reason"] for e in log]
    # the undo lands on v1 and gives it back its own autoscaling config
    assert ("rolled_back", {"kind": "scale", "version": "v1"}) in scales, scales
    assert ro.replay()["identical"]


def test_an_object_store_artifact_with_a_wrong_sha256_is_refused_before_any_traffic(
        model: Model, s3: S3Server, heldout) -> None:
    X, _ = heldout
    cand = {"name": "v2", "runtime": "onnx", "artifact": s3.uri("cands/v2.onnx"),
            "sha256": "0" * 64,
            "ray_actor_options": {"num_cpus": 0, "runtime_env": {"env_vars": s3.env}}}
    spec = rollout_spec(model.name, model.store, ("v1", "v1.onnx"), ("v2", "v2.onnx"),
                        [{"weight": 50}])
    spec["candidates"] = [cand]
    ro = model.start(spec)
    with Traffic(model.base, model.name, X, clients=2, bad_every=0) as load:
        st = ro.wait(frozenset({"rolled_back", "promoted", "canary"}), 120)
    assert st["phase"] == "rolled_back", st["phase"]
    assert set(load.served()) == {"v1"} and load.failed() == {}
    log = ro.history()
    assert [e["phase_to"] for e in log] == ["deploying", "rolled_back"]
    reason = log[-1]["reason"]
    assert "deploy failed" in reason and s3.uri("cands/v2.onnx") in reason, reason
    assert "sha256" in reason, reason
