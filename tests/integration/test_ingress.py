"""One ingress for every model, on a real Ray Serve: two models started with the Python API
answer a standard OIP client (``tritonclient.http``) on one port while one of them rolls back;
adding and removing a model leaves another's answers and the ingress's replicas as they are;
a killed ingress replica comes back serving every model's current epoch."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import rayrollout as rr
from rayrollout.errors import IllegalTransition, NotFound
from rayrollout.names import INGRESS_APP, ROUTER_DEPLOYMENT
from tests.conftest import ARTIFACTS, RayServe

pytestmark = pytest.mark.integration


def spec(model: str, store: Path) -> dict[str, Any]:
    """v2 over v1, held at its first step (10%) until a person acts."""
    return {
        "model": model,
        "stable": {"name": "v1", "runtime": "onnx", "artifact": str(ARTIFACTS / "v1.onnx"),
                   "ray_actor_options": {"num_cpus": 0}},
        "candidates": [{"name": "v2", "runtime": "onnx", "artifact": str(ARTIFACTS / "v2.onnx"),
                        "ray_actor_options": {"num_cpus": 0}}],
        "strategy": {"steps": [{"weight": 30, "min_duration_s": 3600}]},
        "analysis": {"tick_s": 0.5, "checks": [{"kind": "errors"}]},
        "rollback_window_s": 0,
        "drain_s": 1,
        "store_path": str(store),
    }


def ingress_replicas() -> list[str]:
    import ray

    prefix = f"SERVE_REPLICA::{INGRESS_APP}#{ROUTER_DEPLOYMENT}#"
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["name"].startswith(prefix))


def remove(model: str) -> None:
    import ray
    from ray import serve

    from rayrollout.serving.port import RayServePort

    port = RayServePort()
    try:
        h = port.controller(model, create=False).actor
        ray.get(h.stop.remote(), timeout=30)
        ray.kill(h, no_restart=True)
    except (NotFound, ray.exceptions.RayError):
        pass
    port.remove_router(model)
    for app in serve.status().applications:
        if app.startswith(f"{model}-"):
            serve.delete(app, _blocking=False)


@pytest.fixture
def two_models(ray_serve: RayServe, tmp_path: Path) -> Iterator[tuple[rr.Rollout, rr.Rollout]]:
    a, b = f"a{uuid.uuid4().hex[:7]}", f"b{uuid.uuid4().hex[:7]}"
    try:
        ros = (rr.start(spec(a, tmp_path / "a.db")), rr.start(spec(b, tmp_path / "b.db")))
        for ro in ros:
            ro.wait(frozenset({"canary"}), 180)
        yield ros
    finally:
        for m in (a, b):
            with contextlib.suppress(NotFound, IllegalTransition):
                rr.connect(m).abort(reason="test teardown")
            remove(m)


class OipLoad:
    """Clients of the standard Triton HTTP client sending to each model in turn, recording
    (model, version that answered) or (model, the exception)."""

    def __init__(self, url: str, models: list[str], X: np.ndarray) -> None:
        self.url, self.models, self.X = url, models, X
        self.answers: list[tuple[str, str]] = []
        self.failures: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import tritonclient.http as tc

        client = tc.InferenceServerClient(self.url)
        i = 0
        while not self._stop.is_set():
            model = self.models[i % len(self.models)]
            inp = tc.InferInput("input", [1, 64], "FP32")
            inp.set_data_from_numpy(self.X[i % len(self.X)][None, :])
            try:
                res = client.infer(model, [inp])
                self.answers.append((model, str(res.get_response()["model_version"])))
            except Exception as e:  # every failure is kept and asserted on
                self.failures.append((model, f"{type(e).__name__}: {e}"))
            i += 1
        client.close()

    def __enter__(self) -> OipLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def mark(self) -> int:
        return len(self.answers)


def wait_answers(load: OipLoad, n: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    start = load.mark()
    while load.mark() < start + n:
        assert time.monotonic() < deadline, "the clients got no answers"
        time.sleep(0.1)


def test_two_models_answer_an_oip_client_on_one_port_while_one_rolls_back(
        ray_serve: RayServe, two_models: tuple[rr.Rollout, rr.Rollout], heldout) -> None:
    import tritonclient.http as tc

    X, _ = heldout
    ra, rb = two_models
    host = ray_serve.url.removeprefix("http://")
    client = tc.InferenceServerClient(host)
    assert client.is_server_live()
    assert client.is_model_ready(ra.model) and client.is_model_ready(rb.model)
    listed = httpx.get(f"{ray_serve.url}/v1/models").json()["models"]
    assert {ra.model, rb.model} <= {m["name"] for m in listed}
    b_epoch = rb.status()["epoch"]
    with OipLoad(host, [ra.model, rb.model], X) as load:
        wait_answers(load, 40)
        ra.abort(reason="the test rolls a back")
        ra.wait(frozenset({"rolled_back"}), 60)
        after = load.mark()
        wait_answers(load, 60)
    assert load.failures == [], load.failures[:5]
    served = Counter(load.answers)
    assert served[(ra.model, "v1")] > 0 and served[(rb.model, "v1")] > 0
    assert served[(ra.model, "v2")] + served[(rb.model, "v2")] > 0  # both were in canary
    # after the rollback (and its table push) a answers with v1 only; b is still in canary
    late_a = {v for m, v in load.answers[after + 4:] if m == ra.model}
    assert late_a == {"v1"}
    assert rb.status()["phase"] == "canary" and rb.status()["epoch"] == b_epoch
    client.close()


def test_adding_and_removing_a_model_leaves_another_as_it_is(deploy, heldout) -> None:
    from ray import serve

    from rayrollout.serving.port import RayServePort

    X, _ = heldout
    body = {"instances": X[:16].tolist()}
    first = deploy([("v1", "v1.onnx", "onnx")], weights={"v1": 100})
    url = f"/v1/models/{first.model}/predict"
    with first.client() as c:
        before = c.post(url, json=body).json()
    ingress = serve.get_deployment_handle(ROUTER_DEPLOYMENT, INGRESS_APP)
    ids = sorted(ingress.broadcast("replica_id").results(timeout_s=30))
    replicas = ingress_replicas()

    second = deploy([("v2", "v2.onnx", "onnx")], weights={"v2": 100})
    with httpx.Client(base_url=second.base.removesuffix(second.prefix), timeout=60) as c:
        assert c.post(f"/v1/models/{second.model}/predict", json=body).status_code == 200
        assert c.post(url, json=body).json() == before  # at the standard path as well
    with first.client() as c:
        assert c.post(url, json=body).json() == before
    RayServePort().remove_router(second.model)
    with httpx.Client(base_url=second.base.removesuffix(second.prefix), timeout=60) as c:
        gone = c.post(f"/v1/models/{second.model}/predict", json=body)
        assert gone.status_code == 404 and first.model in gone.json()["models"]
        assert c.post(url, json=body).json() == before
    assert sorted(ingress.broadcast("replica_id").results(timeout_s=30)) == ids
    assert ingress_replicas() == replicas


def test_a_killed_ingress_replica_serves_every_model_s_epoch_at_once(
        ray_serve: RayServe, two_models: tuple[rr.Rollout, rr.Rollout], heldout) -> None:
    import ray

    from rayrollout.serving.port import RayServePort

    X, _ = heldout
    ra, rb = two_models
    ra.abort(reason="so that a's epoch moves past b's")
    st_a = ra.wait(frozenset({"rolled_back"}), 60)
    epochs = {ra.model: st_a["epoch"], rb.model: rb.status()["epoch"]}
    assert all(e > 0 for e in epochs.values())
    victims = ingress_replicas()
    for name in victims:  # every replica: any answer below comes from a new one
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    # the first answers of the new replica already carry each model's current epoch
    first: dict[str, str] = {}
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=ray_serve.url, timeout=30) as c:
        while len(first) < 2:
            assert time.monotonic() < deadline, "the ingress did not come back"
            for m in epochs:
                if m in first:
                    continue
                try:
                    r = c.post(f"/v1/models/{m}/predict", json={"instances": X[:1].tolist()})
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    first[m] = r.headers["x-routing-epoch"]
            time.sleep(0.1)
    assert not set(victims) & set(ingress_replicas())
    assert first == {m: str(e) for m, e in epochs.items()}
    assert {int(t["epoch"]) for t in RayServePort().router_tables(ra.model)} == {epochs[ra.model]}
    assert ra.status()["phase"] == "rolled_back" and ra.status()["rollout"] == st_a["rollout"]
