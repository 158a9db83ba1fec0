"""The pass-through example without Ray: the text classifiers of
``models/build_text_models.py`` on their held-out texts, and the HTTP app of
``examples.text_app`` in-process, alone and behind a router configured as
``configs/rollout-text.yaml`` configures it."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import yaml
from pydantic import ValidationError
from ray.serve import Application

from examples.text_app import MAX_TEXT_CHARS, app_builder, load_text_model, make_app
from rayrollout.dataplane.aggregates import Collected
from rayrollout.errors import ModelLoadError
from rayrollout.ingress.platform import RouterPlatform
from rayrollout.ingress.router import Router
from rayrollout.ingress.versions import LocalVersions
from tests.asgi import AsgiClient

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
MANIFEST: dict[str, Any] = json.loads((MODELS / "text-manifest.json").read_text())
HELDOUT: dict[str, list[str]] = json.loads((MODELS / "text-heldout.json").read_text())
ROLLOUT = yaml.safe_load((ROOT / "configs" / "rollout-text.yaml").read_text())
SPEC = ROLLOUT["applications"][0]["args"]


def artifact(name: str) -> Path:
    return MODELS / "artifacts" / f"{name}.joblib"


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return {name: load_text_model(artifact(name)) for name in MANIFEST["artifacts"]}


@pytest.fixture(scope="module")
def predicted(models: dict[str, Any]) -> dict[str, np.ndarray]:
    return {name: np.asarray(m.predict(HELDOUT["text"])) for name, m in models.items()}


@pytest.fixture
def v1_client(models: dict[str, Any]) -> Iterator[AsgiClient]:
    with AsgiClient(make_app(models["text-v1"])) as c:
        yield c


@pytest.mark.parametrize("name", sorted(MANIFEST["artifacts"]))
def test_artifacts_match_the_manifest(name: str, predicted: dict[str, np.ndarray]) -> None:
    entry = MANIFEST["artifacts"][name]
    path = MODELS / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert path.stat().st_size == entry["size_bytes"] < 200_000
    truth = np.asarray(HELDOUT["label"])
    assert np.mean(predicted[name] == truth) == pytest.approx(entry["heldout_accuracy"], abs=1e-6)
    held = MODELS / MANIFEST["heldout"]["file"]
    assert hashlib.sha256(held.read_bytes()).hexdigest() == MANIFEST["heldout"]["sha256"]


def test_good_models_agree_and_the_regressed_one_does_not(predicted: dict[str, np.ndarray]
                                                          ) -> None:
    truth = np.asarray(HELDOUT["label"])
    assert len(truth) == MANIFEST["dataset"]["n_heldout"] >= 50
    assert set(truth) == set(HELDOUT["labels"]) == set(MANIFEST["labels"])
    acc = {n: float(np.mean(p == truth)) for n, p in predicted.items()}
    chance = MANIFEST["dataset"]["majority_class_share"]
    assert acc["text-v1"] >= chance + 0.2 and acc["text-v2"] >= chance + 0.2
    v1 = predicted["text-v1"]
    assert np.mean(predicted["text-v2"] == v1) >= 0.95  # a shadow of v2 passes d0 = 0.15
    assert np.mean(predicted["text-regressed"] != v1) >= 0.5  # ... and of the regressed fails
    assert acc["text-regressed"] <= acc["text-v1"] - 0.2


def test_the_app_answers_the_model_s_label_and_confidence(
        models: dict[str, Any], v1_client: AsgiClient) -> None:
    model = models["text-v1"]
    for text in HELDOUT["text"][:20]:
        r = v1_client.post("/classify", json={"text": text})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        proba = model.predict_proba([text])[0]
        assert r.json() == {"label": model.predict([text])[0],
                            "confidence": round(float(proba.max()), 4)}
        assert 0 < r.json()["confidence"] <= 1
    assert v1_client.get("/healthz").json() == {"status": "ok",
                                                "labels": sorted(HELDOUT["labels"])}


@pytest.mark.parametrize(("body", "field"), [
    ({}, "text"),
    ({"text": 3}, "text"),
    ({"text": ["petal"]}, "text"),
    ({"text": ""}, "text"),
    ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "text"),
    ({"text": "petal width", "lang": "en"}, "lang"),
    ([{"text": "petal width"}], None),
    ("petal width", None),
])
def test_bad_bodies_are_a_422_naming_the_field(v1_client: AsgiClient, body: Any,
                                               field: str | None) -> None:
    r = v1_client.post("/classify", json=body)
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"][0] == "body" and (field is None or err["loc"][-1] == field)


def test_a_body_that_is_not_json_is_a_422(v1_client: AsgiClient) -> None:
    r = v1_client.post("/classify", content=b"{not json",
                       headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    assert v1_client.get("/classify").status_code == 405
    assert v1_client.post("/nowhere", json={"text": "a"}).status_code == 404


def test_the_builder_resolves_the_artifact_and_names_bad_args(tmp_path: Path) -> None:
    app = app_builder({"artifact": "models/artifacts/text-v1.joblib"})  # relative: the root
    assert isinstance(app, Application)
    with pytest.raises(ValidationError, match="artefact"):
        app_builder({"artefact": "models/artifacts/text-v1.joblib"})
    with pytest.raises(ValidationError, match="artifact"):
        app_builder({"artifact": 3})
    with pytest.raises(FileNotFoundError, match=r"app\.args\.artifact"):
        app_builder({"artifact": "models/artifacts/no-such.joblib"})
    joblib.dump({"not": "a model"}, tmp_path / "dict.joblib")
    with pytest.raises(ModelLoadError, match="not a fitted classifier"):
        load_text_model(tmp_path / "dict.joblib")
    (tmp_path / "junk.joblib").write_bytes(b"junk")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_text_model(tmp_path / "junk.joblib")


def test_behind_a_router_answers_pass_through_and_a_regressed_shadow_disagrees(
        models: dict[str, Any], predicted: dict[str, np.ndarray]) -> None:
    """The versions of ``configs/rollout-text.yaml`` (their prediction specs as the rollout
    gives them to the router), the regressed model as t2's shadow."""
    stable, (cand,) = SPEC["stable"], SPEC["candidates"]
    apps = {"t1": make_app(models["text-v1"]), "t2": make_app(models["text-regressed"])}
    config = {"model": "text", "weights": {"t1": 100.0}, "seed": 1, "interface": "http",
              "shadow": {"version": "t2", "fraction": 1.0},
              "predictions": {"t1": stable["app"]["prediction"],
                              "t2": cand["app"]["prediction"]}}
    router = Router(config, RouterPlatform(LocalVersions({}, apps=apps), replica="r1",
                                           background=lambda fn: fn()), environ={})
    texts = HELDOUT["text"][:30]
    with AsgiClient(router.http) as c, AsgiClient(apps["t1"]) as direct:
        for text in texts:
            r = c.post("/classify", json={"text": text})
            assert r.status_code == 200 and r.headers["x-model-version"] == "t1"
            assert r.content == direct.post("/classify", json={"text": text}).content
        assert c.post("/classify", json={"txt": "a"}).status_code == 422
        shadow, rejected = [], 0
        for _ in range(200):  # shadow calls finish after their primary responses
            got = Collected.from_dict(c.run(router.collect()))
            shadow += got.shadow
            rejected += got.stats["t1"].rejected if "t1" in got.stats else 0
            if len(shadow) >= len(texts):
                break
            c.run(_sleep())
    assert rejected == 1  # the app's 422: rejected, not judged, and never mirrored
    assert len(shadow) == len(texts) and all(e.shadow_ok for e in shadow)
    want = np.mean(predicted["text-regressed"][:30] != predicted["text-v1"][:30])
    assert math.isclose(np.mean([e.disagree for e in shadow]), want)


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.01)
