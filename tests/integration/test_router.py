"""The router on a real local Ray Serve: real ONNX/TorchScript models, real HTTP."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from rayrollout.dataplane.aggregates import Collected

pytestmark = pytest.mark.integration

TWO = [("v1", "v1.onnx", "onnx"), ("v2", "v2.onnx", "onnx")]


def oip(x: np.ndarray) -> dict:
    return {
        "inputs": [
            {
                "name": "input",
                "shape": list(x.shape),
                "datatype": "FP32",
                "data": x.reshape(-1).tolist(),
            }
        ]
    }


def stats_of(d) -> dict:
    return d.stats()


def test_split_pin_shadow_and_version_reporting(deploy, heldout) -> None:
    X, _ = heldout
    d = deploy(
        [*TWO, ("v2-torch", "v2-torch.pt", "torchscript")],
        weights={"v1": 70, "v2": 30},
        shadow={"version": "v2-torch", "fraction": 1.0},
        flags={"v2": {"threshold": 0.5}},
    )
    with d.client() as c:
        listing = c.get("/v1/models").json()["models"][0]
        assert {v["name"]: v["weight"] for v in listing["versions"]} == {
            "v1": 70.0,
            "v2": 30.0,
            "v2-torch": 0.0,
        }
        served: Counter[str] = Counter()
        for i in range(120):
            r = c.post(f"/v1/models/{d.model}/predict", json={"instances": X[i : i + 1].tolist()})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["model_version"] == r.headers["x-model-version"]
            assert (body.get("flags") == {"threshold": 0.5}) == (body["model_version"] == "v2")
            served[body["model_version"]] += 1
        assert set(served) == {"v1", "v2"}
        # Pin by header and by the OIP versioned route; the shadow itself is pinnable.
        for v in ("v1", "v2", "v2-torch"):
            r = c.post(
                f"/v1/models/{d.model}/predict",
                json={"instances": X[:2].tolist()},
                headers={"x-rollout-version": v},
            )
            assert r.json()["model_version"] == v
            r = c.post(f"/v2/models/{d.model}/versions/{v}/infer", json=oip(X[:3]))
            assert r.status_code == 200 and r.json()["model_version"] == v
            assert r.json()["outputs"][0]["shape"] == [3]
        r = c.post(f"/v2/models/{d.model}/versions/ghost/infer", json=oip(X[:1]))
        assert r.status_code == 404 and "ghost" in r.json()["error"]
        meta = c.get(f"/v2/models/{d.model}").json()
        assert meta["versions"] == ["v1", "v2", "v2-torch"]
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
        assert c.get("/v2/health/live").json() == {"live": True}
        assert c.get(f"/v2/models/{d.model}/ready").status_code == 200
    # Shadow comparisons were recorded against the primary (v2-torch is a port of v2).
    sh = d.wait_stats(lambda s: "v2-torch" in s and s["v2-torch"].shadow_compared >= 120)
    sh = sh["v2-torch"]
    assert sh.shadow_compared >= 120 and sh.shadow_errors == 0
    assert 0 < sh.shadow_disagree < sh.shadow_compared  # v1 and v2 disagree on some digits


def test_rejects_are_4xx_counted_and_never_errors(deploy, heldout) -> None:
    X, _ = heldout
    d = deploy(TWO, weights={"v1": 50, "v2": 50}, max_body_bytes=20_000, max_batch_rows=64)
    row = X[0].tolist()
    bad = [
        (b"{not json", "not valid JSON"),
        (
            json.dumps(
                {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": row}]}
            ),
            "unknown input 'pixels'",
        ),
        (
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "input",
                            "shape": [1, 64],
                            "datatype": "INT64",
                            "data": [int(v) for v in row],
                        }
                    ]
                }
            ),
            "datatype='INT64'",
        ),
        (
            json.dumps(
                {
                    "inputs": [
                        {"name": "input", "shape": [1, 63], "datatype": "FP32", "data": row[:63]}
                    ]
                }
            ),
            "[1, 63]",
        ),
        (json.dumps(oip(X[:1])).replace(str(row[5]), "NaN", 1), "NaN"),
    ]
    with d.client() as c:
        for body, match in bad:
            r = c.post(f"/v2/models/{d.model}/infer", content=body)
            assert r.status_code == 400 and match in r.json()["error"], (r.status_code, r.text)
        r = c.post(f"/v2/models/{d.model}/infer", json=oip(X[:100]))
        assert r.status_code == 413
        r = c.post(f"/v1/models/{d.model}/predict", content=b"x" * 30_000)
        assert r.status_code == 413
        r = c.get(f"/v2/models/{d.model}/infer")
        assert r.status_code == 405
        r = c.post("/v2/models/other-model/infer", json=oip(X[:1]))
        assert r.status_code == 404
        # The replicas still serve after all that.
        ok = [c.post(f"/v2/models/{d.model}/infer", json=oip(X[i : i + 1])) for i in range(20)]
        assert all(r.status_code == 200 for r in ok)
    stats = stats_of(d)
    rejected = sum(s.rejected for s in stats.values())
    assert rejected == len(bad) + 4
    assert sum(s.failures for s in stats.values()) == 0
    assert sum(s.ok for s in stats.values()) == 20


def test_a_version_whose_model_raises_gets_5xx_and_counts_as_its_error(deploy, heldout) -> None:
    X, _ = heldout
    d = deploy(
        [("v1", "v1.onnx", "onnx"), ("faulty", "faulty.pt", "torchscript")],
        weights={"v1": 100, "faulty": 0},
    )
    poison = X[:1].copy()
    poison[0, 0] = -1.0  # the faulty model raises on negative pixels (never seen in real data)
    with d.client() as c:
        r = c.post(f"/v2/models/{d.model}/versions/faulty/infer", json=oip(poison))
        assert r.status_code == 500 and r.json()["code"] == "model_error"
        assert r.headers["x-model-version"] == "faulty"
        ok = c.post(f"/v2/models/{d.model}/versions/faulty/infer", json=oip(X[:1]))
        assert ok.status_code == 200  # the replica survived its model's exception
        assert c.post(f"/v2/models/{d.model}/infer", json=oip(poison)).status_code == 200
    stats = stats_of(d)
    assert stats["faulty"].errors == 1 and stats["faulty"].ok == 1
    assert stats["v1"].errors == 0 and stats["v1"].ok == 1


def test_standard_oip_client_works_unchanged(deploy, heldout) -> None:
    import tritonclient.http as tc

    X, _ = heldout
    d = deploy(TWO, weights={"v1": 50, "v2": 50})
    # tritonclient talks to the root of a server; this router sits under a prefix, so
    # give the client the prefix through its url (it joins paths onto it).
    client = tc.InferenceServerClient(d.base.removeprefix("http://"))
    assert client.is_server_live() and client.is_model_ready(d.model)
    meta = client.get_model_metadata(d.model)
    assert meta["name"] == d.model and "v1" in meta["versions"]
    inp = tc.InferInput("input", [4, 64], "FP32")
    inp.set_data_from_numpy(X[:4])  # binary tensor extension, the client's default
    res = client.infer(d.model, [inp], model_version="v2")
    assert res.get_response()["model_version"] == "v2"
    labels = res.as_numpy("label")
    assert labels.shape == (4,) and res.as_numpy("probabilities").shape == (4, 10)
    out = tc.InferRequestedOutput("label", binary_data=False)
    res2 = client.infer(d.model, [inp], model_version="v2", outputs=[out])
    np.testing.assert_array_equal(res2.as_numpy("label"), labels)
    client.close()


def test_events_carry_weight_epoch_and_unit(deploy, heldout) -> None:
    X, _ = heldout
    d = deploy(TWO, weights={"v1": 80, "v2": 20})
    with d.client() as c:
        for i in range(30):
            c.post(f"/v1/models/{d.model}/predict", json={"instances": X[i : i + 1].tolist()})
        for _ in range(10):
            c.post(
                f"/v1/models/{d.model}/predict",
                json={"instances": X[:1].tolist()},
                headers={"x-rollout-key": "user-42"},
            )
    # the ingress may run several replicas (a shared one, sized by the largest model): each
    # replica's events are in time order, and the replicas' lists are concatenated
    per_replica = [Collected.from_dict(c).events for c in d.collect()]
    events = [e for evs in per_replica for e in evs]
    rand = [e for e in events if e.randomised]
    sticky = [e for e in events if e.unit == "user-42"]
    assert len(rand) == 30 and len(sticky) == 10
    assert all(math.isclose(e.weight, 0.8 if e.version == "v1" else 0.2) for e in rand)
    assert len({e.version for e in sticky}) == 1 and not any(e.randomised for e in sticky)
    assert all(e.epoch == 0 and e.latency_ms > 0 and e.prediction == e.prediction for e in events)
    for evs in per_replica:
        assert [e.t for e in evs] == sorted(e.t for e in evs)
