"""The one ingress in-process: a ``Gateway`` over several models' routers, each with its own
versions (real ONNX models run by ``LocalVersions``, or Starlette apps passed through). No Ray;
real HTTP semantics through the ASGI client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from rayrollout.dataplane.aggregates import Collected
from rayrollout.dataplane.events import Outcome
from rayrollout.errors import NotFound
from rayrollout.ingress import inference
from rayrollout.ingress.config import IngressConfig
from rayrollout.ingress.gateway import Gateway
from rayrollout.ingress.platform import RouterPlatform
from rayrollout.ingress.router import Router
from rayrollout.ingress.versions import LocalVersions
from rayrollout.spec import RouterConfig
from tests.asgi import AsgiClient
from tests.unit.ingress.test_passthrough import text_app

TOKENS = {"RAYROLLOUT_ADMIN_TOKENS": "ops/read+operate+admin+feedback:o-tok"}
AUTH = {"Authorization": "Bearer o-tok"}


def oip(x: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}]}


class Ingress:
    """A gateway whose routers are made from ``versions[model]``, with a catalog to load."""

    def __init__(self, versions: dict[str, LocalVersions],
                 catalog: dict[str, dict[str, Any]] | None = None) -> None:
        self.versions = versions
        self.catalog = dict(catalog or {})
        self.made: list[str] = []

    def router(self, cfg: RouterConfig) -> Router:
        self.made.append(cfg.model)
        return Router(cfg, RouterPlatform(self.versions[cfg.model], replica="r1",
                                          background=lambda fn: fn()), environ=TOKENS)

    def gateway(self, configs: list[dict[str, Any]]) -> Gateway:
        return Gateway(configs, self.router, self.catalog.get)


def two(runtimes: dict[str, Any], **extra: dict[str, Any]) -> tuple[Ingress, Gateway]:
    ing = Ingress({"digits": LocalVersions(runtimes), "other": LocalVersions(runtimes),
                   "text": LocalVersions({}, apps={"t1": text_app()})})
    configs = [{"model": "digits", "weights": {"v1": 100.0}, "seed": 1, **extra.get("digits", {})},
               {"model": "other", "weights": {"v2": 100.0}, "seed": 2, **extra.get("other", {})}]
    return ing, ing.gateway(configs)


@pytest.fixture
def served(runtimes: dict[str, Any]) -> Iterator[tuple[AsgiClient, Gateway]]:
    _, gw = two(runtimes)
    with AsgiClient(gw) as c:
        yield c, gw


def collected(c: AsgiClient, gw: Gateway, model: str) -> Collected:
    return Collected.from_dict(c.run(gw.collect(model)))


def test_each_model_answers_at_its_own_oip_paths(served: tuple[AsgiClient, Gateway],
                                                  rows: np.ndarray) -> None:
    c, gw = served
    a = c.post("/v2/models/digits/infer", json=oip(rows[:2]))
    b = c.post("/v2/models/other/infer", json=oip(rows[:2]))
    assert a.status_code == b.status_code == 200
    assert a.json()["model_name"] == "digits" and a.headers["x-model-version"] == "v1"
    assert b.json()["model_name"] == "other" and b.headers["x-model-version"] == "v2"
    v1 = c.post("/v1/models/other/predict", json={"instances": rows[:1].tolist()})
    assert v1.status_code == 200 and v1.headers["x-model-version"] == "v2"
    meta = c.get("/v2/models/other")
    assert meta.status_code == 200 and meta.json()["name"] == "other"
    assert c.get("/v2/models/digits/ready").json() == {"ready": True}
    # each model records only its own requests
    assert [e.version for e in collected(c, gw, "digits").events] == ["v1"]
    assert [e.version for e in collected(c, gw, "other").events] == ["v2", "v2"]


def test_an_unknown_model_is_a_404_naming_the_models_served(
        served: tuple[AsgiClient, Gateway], rows: np.ndarray) -> None:
    c, _ = served
    for path in ("/v2/models/nope/infer", "/v1/models/nope/predict", "/v2/models/nope"):
        r = c.request("POST" if "infer" in path or "predict" in path else "GET", path,
                      json=oip(rows[:1]))
        assert r.status_code == 404, path
        assert r.json()["code"] == "not_found" and r.json()["models"] == ["digits", "other"]
        assert "digits, other" in r.json()["error"]
    assert c.get("/nowhere").status_code == 404


def test_server_routes_cover_every_model(served: tuple[AsgiClient, Gateway]) -> None:
    c, _ = served
    models = c.get("/v1/models").json()["models"]
    assert [(m["name"], [v["name"] for v in m["versions"]]) for m in models] == [
        ("digits", ["v1"]), ("other", ["v2"])]
    assert c.get("/v2").json()["models"] == ["digits", "other"]
    assert c.get("/v2/health/live").json() == {"live": True}
    r = c.get("/v2/health/ready")
    assert r.status_code == 200 and r.json() == {"ready": True, "not_ready": []}


def test_the_server_is_ready_only_when_every_model_is(runtimes: dict[str, Any]) -> None:
    ing = Ingress({"digits": LocalVersions(runtimes), "broken": LocalVersions({})})
    gw = ing.gateway([{"model": "digits", "weights": {"v1": 100.0}},
                      {"model": "broken", "weights": {"v1": 100.0}}])
    with AsgiClient(gw) as c:
        r = c.get("/v2/health/ready")
        assert r.status_code == 503 and r.json() == {"ready": False, "not_ready": ["broken"]}
        assert c.get("/v2/models/digits/ready").status_code == 200


def test_admin_per_model_and_the_alias_of_a_single_model(runtimes: dict[str, Any]) -> None:
    _, gw = two(runtimes)
    with AsgiClient(gw) as c:
        verbs = c.get("/rollout/digits/verbs", headers=AUTH)
        assert verbs.status_code == 200 and verbs.json()["verbs"]
        assert c.get("/rollout/other/verbs").status_code == 401  # the model's own tokens
        page = c.get("/rollout/digits")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert c.get("/rollout/digits/ui").status_code == 200
        assert c.get("/rollout/digits/").status_code == 200
        # the page finds its data next to itself: <page path>/status
        assert "location.pathname" in page.text
        assert c.get("/rollout/other/status", headers=AUTH).json()["code"] == "unavailable"
        # two models: no alias; /rollout lists them
        r = c.get("/rollout/verbs", headers=AUTH)
        assert r.status_code == 404 and r.json()["models"] == ["digits", "other"]
        assert r.json()["admin"] == ["/rollout/digits", "/rollout/other"]
        assert c.get("/rollout").json() == {"models": [
            {"name": "digits", "admin": "/rollout/digits/"},
            {"name": "other", "admin": "/rollout/other/"}]}
        c.run(gw.remove_model("other"))
        # one model: /rollout/... is its admin API and status page
        assert c.get("/rollout/verbs", headers=AUTH).json() == verbs.json()
        assert c.get("/rollout").headers["content-type"].startswith("text/html")
        assert c.get("/rollout/openapi.json").status_code == 200


def test_a_model_s_own_prefix_is_a_view_of_that_model(runtimes: dict[str, Any],
                                                      rows: np.ndarray) -> None:
    _, gw = two(runtimes, digits={"path_prefix": "/digits-api"})
    with AsgiClient(gw) as c:
        r = c.post("/digits-api/v1/models/digits/predict", json={"instances": rows[:1].tolist()})
        assert r.status_code == 200 and r.headers["x-model-version"] == "v1"
        assert [m["name"] for m in c.get("/digits-api/v1/models").json()["models"]] == ["digits"]
        assert c.get("/digits-api/rollout/verbs", headers=AUTH).status_code == 200
        other = c.post("/digits-api/v1/models/other/predict", json={"instances": [[0.0] * 64]})
        assert other.status_code == 404  # under digits' prefix, only digits
        assert c.post("/v1/models/digits/predict",
                      json={"instances": rows[:1].tolist()}).status_code == 200


def test_a_pass_through_model_has_its_prefix_and_keeps_its_feedback(
        runtimes: dict[str, Any]) -> None:
    ing = Ingress({"digits": LocalVersions(runtimes),
                   "text": LocalVersions({}, apps={"t1": text_app()})})
    gw = ing.gateway([{"model": "digits", "weights": {"v1": 100.0}},
                      {"model": "text", "weights": {"t1": 100.0}, "interface": "http"}])
    with AsgiClient(gw) as c:
        r = c.post("/text/classify", json={"text": "a good day"})
        assert r.status_code == 200 and r.headers["x-model-version"] == "t1"
        assert r.json()["seen"]["path"] == "/classify"  # the app sees its own path
        rid = r.headers["x-rollout-request-id"]
        fb = c.post("/v1/models/text/feedback", json={"request_id": rid, "label": 1},
                    headers=AUTH)
        assert fb.status_code == 200 and fb.json()["matched"] == 1
        passed = c.post("/v2/models/text/infer", json={})
        assert passed.status_code == 404 and "/text/..." in passed.json()["error"]
        assert [m["name"] for m in c.get("/v1/models").json()["models"]] == ["digits", "text"]
        assert c.get("/v2/health/ready").status_code == 200


def test_adding_and_removing_a_model_leaves_the_others_alone(
        runtimes: dict[str, Any], rows: np.ndarray) -> None:
    ing, gw = two(runtimes)
    ing.versions["late"] = LocalVersions(runtimes)
    with AsgiClient(gw) as c:
        digits = gw.routers["digits"]
        table = {**c.run(gw.get_routes("digits")), "epoch": 4}
        assert c.run(gw.set_routes(table)) == 4
        before = c.post("/v2/models/digits/infer", json=oip(rows[:4])).json()
        assert c.run(gw.add_model({"model": "late", "weights": {"v2": 100.0}})) == 0
        assert c.run(gw.add_model({"model": "late", "weights": {"v1": 100.0}})) == 0  # no-op
        assert c.post("/v2/models/late/infer", json=oip(rows[:1])).headers[
            "x-model-version"] == "v2"
        assert c.run(gw.remove_model("late")) is True
        assert c.run(gw.remove_model("late")) is False
        assert c.post("/v2/models/late/infer", json=oip(rows[:1])).status_code == 404
        after = c.post("/v2/models/digits/infer", json=oip(rows[:4])).json()
        assert gw.routers["digits"] is digits and digits.table.epoch == 4
        assert after["outputs"] == before["outputs"]
        with pytest.raises(NotFound):
            c.run(gw.collect("late"))


def test_a_table_for_a_model_not_held_loads_it_from_the_catalog(
        runtimes: dict[str, Any]) -> None:
    ing, gw = two(runtimes)
    ing.versions["late"] = LocalVersions(runtimes)
    ing.catalog["late"] = {"model": "late", "weights": {"v1": 100.0}}
    with AsgiClient(gw) as c:
        table = {"model": "late", "epoch": 3, "weights": {"v1": 0.5, "v2": 0.5}}
        assert c.run(gw.set_routes(table)) == 3
        assert gw.models() == ["digits", "late", "other"]
        assert c.run(gw.get_routes("late"))["epoch"] == 3
        with pytest.raises(NotFound):  # neither held nor in the catalog
            c.run(gw.set_routes({"model": "ghost", "epoch": 1, "weights": {"v1": 1.0}}))
    assert ing.made.count("late") == 1


def test_two_models_cannot_share_a_prefix() -> None:
    with pytest.raises(ValueError, match="path prefix '/p' is model 'a'"):
        IngressConfig.model_validate({"models": [
            {"model": "a", "weights": {"v1": 100.0}, "path_prefix": "/p"},
            {"model": "b", "weights": {"v1": 100.0}, "path_prefix": "/p"}]})
    with pytest.raises(ValueError, match=r"models\.1\.model"):
        IngressConfig.model_validate({"models": [{"model": "a", "weights": {"v1": 100.0}},
                                                 {"model": "a", "weights": {"v1": 100.0}}]})
    with pytest.raises(ValueError, match="path_prefix"):
        RouterConfig.model_validate({"model": "a", "weights": {"v1": 100.0},
                                     "path_prefix": "/v2/x"})


# -- fail fast -------------------------------------------------------------------------------


def _withdraw_while_waiting(c: AsgiClient, router: Router, versions: LocalVersions,
                            body: dict[str, Any], new_weights: dict[str, float]) -> Any:
    """Send a request that waits on v2, then install a table that takes v2's traffic."""

    async def scenario() -> Any:
        req = asyncio.ensure_future(c._client.post(  # the client's own loop
            f"/v2/models/{router.model}/infer", json=body, headers={"x-rollout-key": "k"}))
        while versions.calls.get("v2", 0) == 0:
            await asyncio.sleep(0.01)
        t = router.table
        await router.set_routes({**t.to_dict(), "epoch": t.epoch + 1,
                                 "weights": {v: w / 100 for v, w in new_weights.items()}})
        return await req

    return c.run(scenario())


def _sticky_to_v2(router: Router) -> None:
    assert router.table.sticky("k") == "v2", "pick a key the table sends to v2"


@pytest.mark.parametrize("fallback", [False, True])
def test_requests_waiting_on_a_withdrawn_version_stop_waiting(
        runtimes: dict[str, Any], rows: np.ndarray, monkeypatch: pytest.MonkeyPatch,
        fallback: bool) -> None:
    monkeypatch.setattr(inference, "WITHDRAWN_GRACE_S", 0.0)
    versions = LocalVersions(runtimes, delay_s={"v2": 120.0})  # v2 hangs (a lost replica)
    ing = Ingress({"digits": versions})
    extra = {"fallback": "v1"} if fallback else {}
    gw = ing.gateway([{"model": "digits", "weights": {"v1": 1.0, "v2": 99.0},
                       "request_timeout_s": 60.0, **extra}])
    router = gw.routers["digits"]
    _sticky_to_v2(router)
    with AsgiClient(gw) as c:
        r = _withdraw_while_waiting(c, router, versions, oip(rows[:1]), {"v1": 100.0})
        if fallback:  # answered by the stable, the failure still v2's
            assert r.status_code == 200 and r.headers["x-model-version"] == "v1"
            assert r.headers["x-rollout-retried-from"] == "v2"
        else:
            assert r.status_code == 503 and r.json()["code"] == "version_withdrawn"
            assert r.headers["x-model-version"] == "v2"
        (ev,) = collected(c, gw, "digits").events
        assert ev.version == "v2" and ev.outcome == Outcome.ERROR


def test_a_withdrawn_version_that_answers_within_the_grace_is_not_cut(
        runtimes: dict[str, Any], rows: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old stable at a promotion loses its weight but still answers what it holds."""
    monkeypatch.setattr(inference, "WITHDRAWN_GRACE_S", 60.0)
    versions = LocalVersions(runtimes, delay_s={"v2": 0.3})
    gw = Ingress({"digits": versions}).gateway(
        [{"model": "digits", "weights": {"v1": 1.0, "v2": 99.0}}])
    router = gw.routers["digits"]
    _sticky_to_v2(router)
    with AsgiClient(gw) as c:
        r = _withdraw_while_waiting(c, router, versions, oip(rows[:1]), {"v1": 100.0})
        assert r.status_code == 200 and r.headers["x-model-version"] == "v2"
