"""The node-local channel on a real Ray Serve: requests sent one at a time go from the router to
the version replica on its node over the loopback channel, not by Serve's handle, and are
answered and counted exactly as by handle (right predictions; a model error a 500 counted
against the version). Peers that do not hold the replica's token are refused and the replica
keeps serving; with the version's replica replaced, calls go by handle until the new one's
channel is found."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from examples.sklearn_runtime import classify, load_classifier
from rayrollout.dataplane.frames import frame
from rayrollout.names import version_app_name
from tests.channel_peer import refused_after
from tests.conftest import ARTIFACTS
from tests.integration.poison_runtime import POISON

pytestmark = pytest.mark.integration

REQUESTS = 60


def channel_of(model: str, version: str) -> dict[str, Any]:
    from ray import serve

    info: dict[str, Any] = serve.get_app_handle(
        version_app_name(model, version)).channel_address.remote().result(timeout_s=30)
    return info


def test_requests_one_at_a_time_go_by_the_channel_counted_as_by_handle(
        deploy, heldout, tmp_path: Path) -> None:
    X, _ = heldout
    d = deploy([("v1", "sklearn-digits.joblib", "python", {
        "runtime_class": "tests.integration.poison_runtime:PoisonRuntime",
        "runtime_args": {"threads": 1, "log_path": str(tmp_path / "batches.log")}})],
        weights={"v1": 100})
    rows = np.stack([X[i % len(X)] for i in range(REQUESTS)])
    poisoned = np.arange(REQUESTS) % 6 == 3
    rows[poisoned, 0] = POISON
    expected = classify(load_classifier(ARTIFACTS / "sklearn-digits.joblib"), rows)["label"]
    with d.client() as c:
        for i in range(REQUESTS):
            r = c.post(f"/v1/models/{d.model}/predict",
                       json={"instances": rows[i:i + 1].tolist()})
            if poisoned[i]:
                assert r.status_code == 500 and r.json()["code"] == "model_error", (i, r.text)
            else:
                assert r.status_code == 200, (i, r.text)
                assert r.json()["predictions"][0] == int(expected[i]), (i, r.text)
    info = channel_of(d.model, "v1")
    # All but the calls made while the router looked the channel up went by it
    assert info["served"] >= REQUESTS - 5, info
    assert info["refused"] == 0
    stats = d.wait_stats(lambda s: s["v1"].requests >= REQUESTS)["v1"]
    assert (stats.errors, stats.ok) == (int(poisoned.sum()), REQUESTS - int(poisoned.sum()))

    # Hostile peers on the node: no token, a wrong token, an HTTP request. Each is closed
    # unanswered; the replica keeps serving the router by the channel.
    assert str(info["path"]).startswith("@rayrollout-channel-")  # Linux's abstract namespace
    for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                    frame({"t": "hello", "token": "0" * 64}),
                    frame({"t": "predict", "arrays": []})):
        assert asyncio.run(refused_after(info, payload)) == b""
    with d.client() as c:
        for i in range(10):
            r = c.post(f"/v1/models/{d.model}/predict", json={"instances": X[i:i + 1].tolist()})
            assert r.status_code == 200, r.text
    after = channel_of(d.model, "v1")
    assert after["refused"] == 3 and after["served"] == info["served"] + 10, after


def test_a_replaced_replica_is_served_by_handle_until_its_channel_is_found(deploy,
                                                                           heldout) -> None:
    import ray

    X, _ = heldout
    d = deploy([("v1", "v1.onnx", "onnx")], weights={"v1": 100})
    body = {"instances": X[:1].tolist()}
    with d.client() as c:
        for _ in range(5):
            assert c.post(f"/v1/models/{d.model}/predict", json=body).status_code == 200
        old = channel_of(d.model, "v1")
        assert old["served"] >= 1
        # Kill the version's replica: Serve starts another (a new channel, a new token)
        replica = next(a for a in ray.util.list_named_actors(all_namespaces=True)
                       if f"{d.model}-v1#" in a["name"] and "REPLICA" in a["name"])
        ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]),
                 no_restart=True)
        deadline = time.monotonic() + 90
        ok = failed = 0
        while time.monotonic() < deadline:
            r = c.post(f"/v1/models/{d.model}/predict", json=body)
            ok, failed = ok + (r.status_code == 200), failed + (r.status_code != 200)
            if r.status_code == 200 and ok >= 5:
                try:
                    new = channel_of(d.model, "v1")
                except Exception:
                    continue
                if new["path"] != old["path"] and new["served"] >= 1:
                    break
            time.sleep(0.05)
        else:
            pytest.fail(f"the new replica's channel was never used ({ok} ok, {failed} failed)")
        assert new["token"] != old["token"]
