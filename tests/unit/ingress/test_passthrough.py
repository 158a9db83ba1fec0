"""A model whose versions speak their own HTTP: the router passes requests through unchanged,
judges the answers (4xx rejected, 5xx an error, the prediction read by each version's
extractor) and compares a shadow's predictions with the primary's. In-process: the versions
are Starlette apps behind ``LocalVersions``; real HTTP semantics through the test client."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rayrollout.dataplane.aggregates import Collected
from rayrollout.dataplane.events import Outcome
from rayrollout.dataplane.passthrough import Extractor, compare_predictions
from rayrollout.ingress.platform import RouterPlatform
from rayrollout.ingress.router import Router
from rayrollout.ingress.versions import LocalVersions
from tests.asgi import AsgiClient

MODEL = "text"
LABELS = ["negative", "positive"]


def text_app(flip: bool = False) -> Starlette:
    """A tiny sentiment app answering ``{"text": ...}`` with ``{"label": ...}``."""

    async def classify(request: Request) -> Response:
        try:
            doc = await request.json()
            text = doc["text"]
        except Exception:
            return JSONResponse({"detail": "send {\"text\": ...}"}, status_code=422)
        if not isinstance(text, str):
            return JSONResponse({"detail": "text must be a string"}, status_code=422)
        if text == "boom":
            return JSONResponse({"detail": "model crashed"}, status_code=500)
        good = "good" in text
        label = LABELS[int(good != flip)]
        return JSONResponse({"label": label, "seen": {
            "path": request.url.path, "query": request.url.query,
            "x-custom": request.headers.get("x-custom"),
            "pin": request.headers.get("x-rollout-version")}},
            headers={"x-app": "text"})

    return Starlette(routes=[Route("/classify", classify, methods=["POST"])])


def make(weights: dict[str, float], shadow: str | None = None, **cfg: Any
         ) -> tuple[Router, LocalVersions]:
    apps = {"v1": text_app(), "v2": text_app(), "bad": text_app(flip=True)}
    versions = LocalVersions({}, apps=apps)
    pred = {"pointer": "/label", "labels": LABELS}
    live = [*weights, *([shadow] if shadow else [])]
    config: dict[str, Any] = {"model": MODEL, "weights": weights, "seed": 3,
                              "interface": "http", "predictions": dict.fromkeys(live, pred),
                              **cfg}
    if shadow:
        config["shadow"] = {"version": shadow, "fraction": 1.0}
    router = Router(config, RouterPlatform(versions, replica="r1", background=lambda fn: fn()),
                    environ={})
    return router, versions


@pytest.fixture
def client() -> Iterator[tuple[AsgiClient, Router]]:
    router, _ = make({"v1": 50.0, "v2": 50.0})
    with AsgiClient(router.http) as c:
        yield c, router


def collected(router: Router, c: AsgiClient) -> Collected:
    return Collected.from_dict(c.run(router.collect()))


def test_requests_and_answers_pass_through_unchanged(client: tuple[AsgiClient, Router]) -> None:
    c, router = client
    r = c.post("/classify?lang=en&x=1", json={"text": "a good day"},
               headers={"x-custom": "kept", "x-rollout-version": "v2"})
    assert r.status_code == 200 and r.headers["x-app"] == "text"
    assert r.headers["x-model-version"] == "v2" and r.headers["x-rollout-request-id"]
    doc = r.json()
    assert doc["label"] == "positive"
    # the app sees its own path and query and the client's headers, not the router's pin
    assert doc["seen"] == {"path": "/classify", "query": "lang=en&x=1", "x-custom": "kept",
                           "pin": None}
    got = collected(router, c)
    (ev,) = got.events
    assert ev.outcome == Outcome.OK and ev.version == "v2" and ev.prediction == 1.0


def test_the_app_s_4xx_is_rejected_and_its_5xx_an_error_of_the_version(
        client: tuple[AsgiClient, Router]) -> None:
    c, router = client
    r = c.post("/classify", content=b"not json", headers={"x-rollout-version": "v1"})
    assert r.status_code == 422 and r.json()["detail"].startswith("send")
    r = c.post("/classify", json={"text": "boom"}, headers={"x-rollout-version": "v1"})
    assert r.status_code == 500 and r.json() == {"detail": "model crashed"}
    r = c.get("/nowhere", headers={"x-rollout-version": "v1"})
    assert r.status_code == 404  # the app's own 404, passed back
    got = collected(router, c)
    st = got.stats["v1"]
    assert st.rejected == 2 and st.requests == 3
    assert [e.outcome for e in got.events] == [Outcome.ERROR]
    assert math.isnan(got.events[0].prediction)


def test_the_router_keeps_its_own_routes(client: tuple[AsgiClient, Router]) -> None:
    c, _ = client
    assert c.get("/v2/health/live").json() == {"live": True}
    assert c.get("/v1/models").json()["models"][0]["name"] == MODEL
    assert c.post(f"/v1/models/{MODEL}/feedback", json={}).status_code == 401


def test_a_shadow_is_passed_the_same_request_and_compared_by_prediction() -> None:
    router, versions = make({"v1": 100.0}, shadow="bad")
    with AsgiClient(router.http) as c:
        for text in ["good", "bad", "very good", "meh"]:
            r = c.post("/classify", json={"text": text})
            assert r.status_code == 200 and r.headers["x-model-version"] == "v1"
        got = collected(router, c)
        for _ in range(50):
            if len(got.shadow) >= 4:
                break
            c.run(_sleep())
            more = collected(router, c)
            got.shadow.extend(more.shadow)
    assert versions.calls == {"v1": 4, "bad": 4}
    assert len(got.shadow) == 4
    # "bad" flips every label: each comparison disagrees
    assert all(e.disagree == 1.0 and e.shadow_ok for e in got.shadow)


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.01)


def test_the_extractor_reads_pointers_labels_and_functions() -> None:
    ex = Extractor({"pointer": "/out/0/score"})
    assert ex(b'{"out": [{"score": 0.25}]}') == 0.25
    assert math.isnan(ex(b'{"out": []}')) and math.isnan(ex(b"not json"))
    assert math.isnan(ex(b'{"out": [{"score": "high"}]}'))
    lab = Extractor({"pointer": "/label", "labels": LABELS})
    assert lab(b'{"label": "positive"}') == 1.0 and math.isnan(lab(b'{"label": "other"}'))
    fn = Extractor({"function": "json:dumps"})  # a function of the parsed answer
    assert math.isnan(fn(b'{"a": 1}'))  # it gives a string that is no label: no prediction
    assert Extractor({"pointer": "/a~1b"})(b'{"a/b": 3}') == 3.0
    assert compare_predictions(1.0, 1.0, "classification", 0.0) == (0.0, 0.0)
    assert compare_predictions(1.0, 0.0, "classification", 0.0)[0] == 1.0
    assert compare_predictions(100.0, 104.0, "regression", 0.05)[0] == 0.0
    assert compare_predictions(100.0, 110.0, "regression", 0.05)[0] == 1.0
    assert compare_predictions(math.nan, 1.0, "regression", 0.05)[0] == 1.0
