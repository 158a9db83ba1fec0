"""A model whose versions are the user's own Serve HTTP application (``examples.text_app``,
``interface: http``) on a real local Ray Serve: the router passes requests through to the
version apps and their answers back, judges them, and rolls out a good version (shadow ->
canary -> promoted) and rolls back a regressed one in its shadow phase."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.text_app import classify, load_text_model
from rayrollout.controller.store import Store
from rayrollout.names import version_route_prefix
from rayrollout.serving.port import RayServePort
from rayrollout.spec import VersionSpec
from tests.conftest import ROOT, TOKENS, RayServe, auth
from tests.integration.test_load import Model, make_model, remove_model

pytestmark = pytest.mark.integration

MODELS = ROOT / "models"
HELDOUT: dict[str, list[str]] = json.loads((MODELS / "text-heldout.json").read_text())
LABELS = HELDOUT["labels"]
BAD_BODIES: list[dict[str, Any]] = [
    {"content": b"{not json", "headers": {"content-type": "application/json"}},
    {"json": {"txt": "petal width"}},
    {"json": {"text": 3}},
    {"json": {"text": "x" * 10_001}},
]


def text_version(name: str, artifact: str) -> dict[str, Any]:
    return {
        "name": name,
        "app": {"import_path": "examples.text_app:app_builder",
                "args": {"artifact": str(MODELS / "artifacts" / f"{artifact}.joblib")},
                "interface": "http",
                "prediction": {"pointer": "/label", "labels": LABELS}},
        "ray_actor_options": {"num_cpus": 0},
    }


def spec(model: str, store: Path, stable: dict[str, Any], cand: dict[str, Any]
         ) -> dict[str, Any]:
    return {
        "model": model,
        "stable": stable,
        "candidates": [cand],
        "strategy": {"shadow": {"fraction": 1.0, "min_comparisons": 50},
                     "steps": [{"weight": 50, "min_requests": 30}]},
        "analysis": {"tick_s": 0.3, "checks": [
            {"kind": "errors", "params": {"min_candidate_requests": 30}},
            {"kind": "disagreement", "params": {"d0": 0.15, "min_comparisons": 50}},
        ]},
        "drain_s": 1.0,
        "store_path": str(store),
    }


@dataclass
class Served:
    """What the clients of ``load`` got: answers by version, and every answer not a 200."""

    by_version: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


@contextlib.contextmanager
def load(base: str, clients: int = 2) -> Iterator[Served]:
    """Clients posting the held-out texts to the model's /classify until the block ends."""
    served, stop = Served(), threading.Event()
    texts = HELDOUT["text"]

    def client(k: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as c:
            for i in itertools.count(k, clients):
                if stop.is_set():
                    return
                r = c.post("/classify", json={"text": texts[i % len(texts)]})
                if r.status_code != 200 or r.json()["label"] not in LABELS:
                    served.failures.append(f"{r.status_code} {r.text[:200]}")
                served.by_version[r.headers.get("x-model-version", "-")] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    try:
        yield served
    finally:
        stop.set()
        for t in threads:
            t.join(60)


@pytest.fixture
def model(ray_serve: RayServe, tmp_path: Path) -> Iterator[Model]:
    m = make_model(ray_serve, tmp_path)
    yield m
    remove_model(m)


def wait_served(c: httpx.Client, tries: int = 300) -> None:
    """Until the stable's app answers (its deploy does not wait for its replica)."""
    for _ in range(tries):
        if c.post("/classify", json={"text": "petal width"}).status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError("the stable app never answered through the router")


def rejected_by_the_controller(store: Path, rollout: int) -> int:
    s = Store(store)
    try:
        return sum(sum(t.get("rejected", {}).values()) for t in s.ticks(rollout))
    finally:
        s.close()


def test_a_pass_through_app_is_rolled_out_and_its_regressed_twin_rolled_back(
        ray_serve: RayServe, model: Model) -> None:
    t1, t2 = text_version("t1", "text-v1"), text_version("t2", "text-v2")
    tr = text_version("tr", "text-regressed")
    ro = model.start(spec(model.name, model.store, t1, t2))  # the controller deploys t2
    first = ro.status()["rollout"]
    # tr's replica starts meanwhile, by the port's deploy_version (what the controller calls):
    # rollout (b) finds it running
    RayServePort().deploy_version(VersionSpec.model_validate(tr).for_model(model.name))
    with httpx.Client(base_url=model.base, timeout=30) as c:
        wait_served(c)
        with load(model.base) as served:
            # the app's own 422 comes back through the router, with the router's headers
            for kw in BAD_BODIES:
                r = c.post("/classify", **kw)
                assert r.status_code == 422 and r.headers["x-model-version"] in ("t1", "t2")
                assert r.json()["detail"][0]["loc"][0] == "body"
            st = ro.wait({"promoted", "rolled_back"}, timeout_s=60)
        assert st["phase"] == "promoted" and st["weights"] == {"t2": 100.0}, st
        assert not served.failures, served.failures[:5]
        assert served.by_version["t1"] > 0 and served.by_version["t2"] > 0

        # answers are the app's own JSON, as the app gives it on its internal prefix
        v2 = load_text_model(MODELS / "artifacts" / "text-v2.joblib")
        direct = f"{ray_serve.url}{version_route_prefix(model.name, 't2')}/classify"
        feedback = []
        for text, label in list(zip(HELDOUT["text"], HELDOUT["label"], strict=True))[:5]:
            r = c.post("/classify", json={"text": text})
            assert r.status_code == 200 and r.headers["x-model-version"] == "t2"
            assert r.headers["x-routing-epoch"] == str(st["epoch"])
            assert r.content == httpx.post(direct, json={"text": text}, timeout=30).content
            assert r.json() == classify(v2, text).model_dump()
            feedback.append({"request_id": r.headers["x-rollout-request-id"],
                             "label": LABELS.index(label)})
        # labels are class indices, posted to the route the router keeps for itself
        r = c.post(f"/v1/models/{model.name}/feedback", json={"feedback": feedback},
                   headers=auth(TOKENS.feedback))
        assert r.status_code == 200 and r.json()["matched"] == len(feedback), r.text

    log = ro.history()
    assert [e["phase_to"] for e in log if e["phase_to"] != e["phase_from"]][-3:] == [
        "shadow", "canary", "promoted"]
    left_shadow = next(e for e in log if e["phase_from"] == "shadow"
                       and e["phase_to"] == "canary")
    dis = next(r for r in left_shadow["evidence"]["t2"] if r["check"] == "disagreement")
    assert dis["verdict"] == "PASS"
    assert rejected_by_the_controller(model.store, first) == len(BAD_BODIES)

    # (b) the regressed model over the promoted t2: its labels disagree in the shadow phase
    ro = model.start(spec(model.name, model.store, t2, tr))
    with load(model.base) as served:
        st = ro.wait({"promoted", "rolled_back"}, timeout_s=60)
    assert st["phase"] == "rolled_back" and st["weights"] == {"t2": 100.0}, st
    assert not served.failures, served.failures[:5]
    assert served.by_version["tr"] == 0  # a shadow never answers a user
    last = ro.history()[-1]
    assert last["phase_from"] == "shadow" and last["phase_to"] == "rolled_back"
    assert "disagreement" in last["reason"]
    dis = next(r for r in last["evidence"]["tr"] if r["check"] == "disagreement")
    assert dis["verdict"] == "FAIL"
