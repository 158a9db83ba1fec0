"""The router in-process: its Starlette routes over real ONNX models run by ``LocalVersions``,
its controller reached through the in-memory ``FakeServePort``. No Ray; real HTTP semantics
(status codes, headers, bodies) through Starlette's test client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from rayrollout.controller.fake import FakeServePort
from rayrollout.dataplane.aggregates import Collected
from rayrollout.dataplane.events import Outcome
from rayrollout.ingress.platform import RouterPlatform
from rayrollout.ingress.router import Router
from rayrollout.ingress.versions import LocalVersions
from rayrollout.runtime.fake import FailingRuntime, FakeRuntime, classifier_signature
from tests.asgi import AsgiClient
from tests.conftest import ARTIFACTS

MODEL = "digits"


def make(runtimes: dict[str, Any], port: FakeServePort | None = None, **cfg: Any
         ) -> tuple[Router, LocalVersions]:
    versions = LocalVersions(runtimes)
    config = {"model": MODEL, "weights": {"v1": 100.0}, "seed": 7, **cfg}
    router = Router(config, RouterPlatform(versions, port=port, replica="r1",
                                           background=lambda fn: fn()), environ=TOKENS)
    return router, versions


LABELS, OTHER = {"Authorization": "Bearer l-tok"}, {"Authorization": "Bearer m-tok"}
TOKENS = {"RAYROLLOUT_ADMIN_TOKENS": "labels/feedback:l-tok,more/feedback:m-tok,viewer/read:v-tok"}


@pytest.fixture
def client(runtimes: dict[str, Any]) -> Iterator[tuple[AsgiClient, Router, LocalVersions]]:
    router, versions = make(runtimes, weights={"v1": 70.0, "v2": 30.0})
    with AsgiClient(router.http) as c:
        yield c, router, versions


def oip(x: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.reshape(-1).tolist()}]}


def collected(router: Router, c: AsgiClient) -> Collected:
    return Collected.from_dict(c.run(router.collect()))


def test_inference_routes_split_pin_and_report_the_version(
    client: tuple[AsgiClient, Router, LocalVersions], rows: np.ndarray
) -> None:
    c, router, _ = client
    seen = set()
    for i in range(40):
        r = c.post(f"/v2/models/{MODEL}/infer", json=oip(rows[i : i + 1]))
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == r.headers["x-model-version"]
        assert r.headers["x-routing-epoch"] == "0" and r.headers["x-rollout-request-id"]
        seen.add(r.headers["x-model-version"])
    assert seen == {"v1", "v2"}
    r = c.post(f"/v2/models/{MODEL}/versions/v2/infer", json=oip(rows[:3]))
    assert r.status_code == 200 and r.headers["x-model-version"] == "v2"
    r = c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:2].tolist()},
               headers={"x-rollout-version": "v1"})
    assert r.status_code == 200 and r.json()["model_version"] == "v1"
    assert len(r.json()["predictions"]) == 2
    stats = collected(router, c).stats
    assert stats["v1"].ok + stats["v2"].ok == 42 and not stats["v1"].errors


def test_wrong_method_is_405_with_allow_and_unknown_routes_404_as_json(
    client: tuple[AsgiClient, Router, LocalVersions],
) -> None:
    c, router, _ = client
    r = c.get(f"/v2/models/{MODEL}/infer")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["code"] == "method_not_allowed" and "use POST" in r.json()["error"]
    r = c.post("/v1/models")
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "HEAD"}
    r = c.get("/nothing/here")
    assert r.status_code == 404 and r.json() == {"error": "no route for GET /nothing/here",
                                                 "code": "not_found"}
    r = c.post("/v2/models/other/infer", json={})
    assert r.status_code == 404 and "unknown model 'other'" in r.json()["error"]
    r = c.get(f"/v2/models/{MODEL}/versions/v9")
    assert r.status_code == 404 and "'v9'" in r.json()["error"]
    assert collected(router, c).stats[""].rejected == 5  # all counted as rejected


def test_a_trailing_slash_is_the_same_route(
    client: tuple[AsgiClient, Router, LocalVersions], rows: np.ndarray
) -> None:
    c, _, _ = client
    assert c.get("/v2/").json()["name"] == "rayrollout"
    r = c.post(f"/v1/models/{MODEL}/predict/", json={"instances": rows[:1].tolist()})
    assert r.status_code == 200


def test_the_route_prefix_is_stripped(runtimes: dict[str, Any], rows: np.ndarray) -> None:
    router, _ = make(runtimes)
    with AsgiClient(router.http, root_path="/prefix") as c:  # paths include the prefix
        r = c.post(f"/v2/models/{MODEL}/infer", json=oip(rows[:1]))
        assert r.status_code == 200, r.text
        assert c.get("/v2/health/live").json() == {"live": True}


def test_bad_input_is_4xx_counted_as_rejected_never_an_error(
    client: tuple[AsgiClient, Router, LocalVersions], rows: np.ndarray
) -> None:
    c, router, versions = client
    calls = dict(versions.calls)
    bad = [
        oip(rows[:1, :63]),  # wrong shape
        {"inputs": [{"name": "nope", "shape": [1, 64], "datatype": "FP32",
                     "data": rows[0].tolist()}]},
        {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                     "data": [float("nan")] * 64}]},
    ]
    for body in bad:
        r = c.post(f"/v2/models/{MODEL}/infer", content=json.dumps(body))
        assert r.status_code == 400, r.text
        assert r.headers["x-model-version"] in ("v1", "v2")
    r = c.post(f"/v2/models/{MODEL}/infer", content=b"{not json")
    assert r.status_code == 400 and r.json()["code"] == "bad_request"
    r = c.post(f"/v1/models/{MODEL}/predict", content=b"x" * 2_000_000)
    assert r.status_code == 413
    stats = collected(router, c).stats
    assert sum(s.rejected for s in stats.values()) == 5
    assert sum(s.errors + s.ok for s in stats.values()) == 0
    assert versions.calls == calls  # no model saw any of it


def test_a_failing_model_is_a_500_counted_against_its_version(rows: np.ndarray) -> None:
    sig = classifier_signature(64, 10)
    router, _ = make({"v1": FakeRuntime(sig), "v2": FailingRuntime(sig)},
                     weights={"v1": 0.0, "v2": 100.0})
    with AsgiClient(router.http) as c:
        r = c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:1].tolist()})
        assert r.status_code == 500 and r.json()["code"] == "model_error"
        assert "error id" in r.json()["error"]  # details only in the log (below)
        r = c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:1].tolist()},
                   headers={"x-rollout-version": "v1"})
        assert r.status_code == 200
        stats = collected(router, c).stats
    assert (stats["v2"].errors, stats["v1"].ok) == (1, 1)


def test_a_slow_version_times_out_with_504(runtimes: dict[str, Any], rows: np.ndarray) -> None:
    router, versions = make(runtimes, request_timeout_s=0.05)
    versions.delay_s["v1"] = 1.0
    with AsgiClient(router.http) as c:
        r = c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:1].tolist()})
        assert r.status_code == 504 and r.json()["code"] == "model_timeout"
        assert collected(router, c).stats["v1"].timeouts == 1


def test_the_shadow_sees_mirrored_requests_and_is_compared(
    runtimes: dict[str, Any], rows: np.ndarray
) -> None:
    router, versions = make(runtimes, shadow={"version": "v2", "fraction": 1.0})
    with AsgiClient(router.http) as c:
        for i in range(10):
            r = c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[i:i + 1].tolist()})
            assert r.headers["x-model-version"] == "v1"
        c.run(asyncio.sleep(0.2))  # the mirrored calls finish after their responses
        got = collected(router, c)
    assert versions.calls["v2"] == 10 and len(got.shadow) == 10
    assert all(e.shadow_ok for e in got.shadow)


def test_tables_switch_by_epoch_and_feedback_joins_labels(
    runtimes: dict[str, Any], rows: np.ndarray
) -> None:
    router, _ = make(runtimes)
    table = router.table.to_dict()
    newer = {**table, "epoch": 5, "weights": {"v1": 0.0, "v2": 1.0}}
    assert asyncio.run(router.set_routes(newer)) == 5
    assert asyncio.run(router.set_routes({**table, "epoch": 3})) == 5  # an older table: ignored
    with pytest.raises(Exception, match="pushed to router"):
        asyncio.run(router.set_routes({**newer, "model": "other", "epoch": 9}))
    with AsgiClient(router.http) as c:
        r = c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:1].tolist()})
        assert (r.headers["x-model-version"], r.headers["x-routing-epoch"]) == ("v2", "5")
        rid = r.headers["x-rollout-request-id"]
        r = c.post(f"/v1/models/{MODEL}/feedback",
                   json={"feedback": [{"request_id": rid, "label": 3},
                                      {"request_id": "nope", "label": 1}]}, headers=LABELS)
        assert r.json()["matched"] == 1 and r.json()["unknown"] == ["nope"]
        assert len(collected(router, c).labelled) == 1


def test_a_restarted_replica_adopts_the_controllers_table(runtimes: dict[str, Any]) -> None:
    from rayrollout.controller.fake import FakeServePort
    from tests.unit.controller.test_controller import Clock

    port = FakeServePort(Clock())
    port.deploy_router(__import__("rayrollout").RouterConfig.model_validate(
        {"model": MODEL, "weights": {"v1": 100.0}}))
    spec = {"model": MODEL,
            "stable": {"name": "v1", "runtime": "onnx", "artifact": str(ARTIFACTS / "v1.onnx")},
            "candidates": [{"name": "v2", "runtime": "onnx",
                            "artifact": str(ARTIFACTS / "v2.onnx")}],
            "strategy": {"steps": [{"weight": 25}]}}
    port.controller(MODEL).call("start", spec, "test")
    c = port.controllers[MODEL]
    c.step()
    c.step()
    assert c.status()["weights"] == {"v1": 75.0, "v2": 25.0}
    router, _ = make(runtimes, port=port)  # its config says v1 100%; the controller knows better
    assert router.table.percent() == {"v1": 75.0, "v2": 25.0}
    assert router.table.epoch == c.status()["epoch"]


class CancelledOnce(LocalVersions):
    """The first description of a version is cancelled under it, as Serve cancels the child
    calls of a request whose client went away."""

    def __init__(self, runtimes: dict[str, Any]) -> None:
        super().__init__(runtimes)
        self.described = 0

    async def signature(self, version: str) -> dict[str, Any]:
        self.described += 1
        if self.described == 1:
            raise asyncio.CancelledError
        return await super().signature(version)


def test_a_cancelled_description_is_retried_not_kept(
    runtimes: dict[str, Any], rows: np.ndarray
) -> None:
    """Regression: a signature fetch cancelled once used to make every later request to that
    version fail (the cached task re-raised CancelledError: 499 in Serve's proxy, 500 to the
    client) until the replica restarted."""
    versions = CancelledOnce(runtimes)
    router = Router({"model": MODEL, "weights": {"v1": 100.0}},
                    RouterPlatform(versions, replica="r1"))
    with AsgiClient(router.http) as c:
        body = {"instances": rows[:1].tolist()}
        r = c.post(f"/v1/models/{MODEL}/predict", json=body)
        assert r.status_code == 503 and r.json()["code"] == "unavailable"
        for _ in range(3):
            r = c.post(f"/v1/models/{MODEL}/predict", json=body)
            assert r.status_code == 200, r.text
    assert versions.described == 2


# -- hostile clients: a clear 4xx, counted as rejected, never a model failure ------------------


def rejected_and_failed(router: Router, c: AsgiClient) -> tuple[int, int]:
    stats = collected(router, c).stats
    return (sum(s.rejected for s in stats.values()), sum(s.failures for s in stats.values()))


def test_repeated_outputs_and_request_parameters_are_refused_before_the_model_runs(
    client: tuple[AsgiClient, Router, LocalVersions], rows: np.ndarray
) -> None:
    c, router, versions = client
    calls = dict(versions.calls)
    bodies = [
        {**oip(rows[:1]), "outputs": [{"name": "probabilities"}] * 200},
        {**oip(rows[:1]), "outputs": [{"name": "nope"}]},
        {**oip(rows[:1]), "parameters": [1]},
        {**oip(rows[:1]), "outputs": [{"name": "label", "parameters": "x"}]},
        {"inputs": [{**oip(rows[:1])["inputs"][0], "parameters": [1]}]},
    ]
    for body in bodies:
        r = c.post(f"/v2/models/{MODEL}/infer", json=body)
        assert r.status_code == 400 and r.json()["code"] == "bad_request", r.text
    assert versions.calls == calls  # no model ran for any of them
    assert rejected_and_failed(router, c) == (len(bodies), 0)


def test_an_answer_over_the_response_limit_is_413_counted_as_rejected(
    client: tuple[AsgiClient, Router, LocalVersions], rows: np.ndarray
) -> None:
    c, router, _ = client
    router.max_response_bytes = 2_000
    r = c.post(f"/v2/models/{MODEL}/infer", json=oip(rows[:64]))
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert "response" in r.json()["error"] and "2000 bytes" in r.json()["error"]
    r = c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:64].tolist()})
    assert r.status_code == 413
    stats = collected(router, c).stats
    assert sum(s.rejected for s in stats.values()) == 2
    assert sum(s.ok + s.failures for s in stats.values()) == 0
    assert c.post(f"/v2/models/{MODEL}/infer", json=oip(rows[:1])).status_code == 200


def test_a_non_finite_regression_output_is_recorded_whole(rows: np.ndarray) -> None:
    from rayrollout.runtime.base import ModelSignature, TensorSpec

    sig = ModelSignature((TensorSpec("input", "FP32", (-1, 64)),),
                         (TensorSpec("value", "FP32", (-1, 1)),), "regression")
    def answering(v: float) -> Any:
        return lambda x: {"value": np.full((len(x["input"]), 1), v)}

    for bad in (np.inf, -np.inf, np.nan):
        rt = FakeRuntime(sig, fn=answering(bad))
        router = Router({"model": MODEL, "weights": {"v1": 100.0}},
                        RouterPlatform(LocalVersions({"v1": rt}, {"v1": "regression"}),
                                       replica="r1"))
        with AsgiClient(router.http) as c:
            r = c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:1].tolist()})
            assert r.status_code == 500 and r.json()["code"] == "model_error", r.text
            got = collected(router, c)
        s = got.stats["v1"]  # the version's failure, recorded whole (no JSON carries inf/NaN)
        assert (s.requests, s.ok, s.errors) == (1, 0, 1)
        assert sum(s.class_counts) == 0 and got.events[0].prediction != got.events[0].prediction


async def chunks(n: int, size: int, sent: list[int]) -> Any:
    for _ in range(n):
        sent.append(size)
        yield b"x" * size


@pytest.mark.parametrize("path", ["/v2/models/digits/infer", "/v1/models/digits/feedback"])
def test_a_chunked_body_is_cut_off_at_the_limit(
    client: tuple[AsgiClient, Router, LocalVersions], path: str
) -> None:
    c, router, _ = client
    sent: list[int] = []
    r = c.post(path, content=chunks(64, 64 << 10, sent), headers=LABELS)  # 4 MiB, unsized
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert sum(sent) <= router.cfg.max_body_bytes + (64 << 10)  # read only up to the limit
    assert rejected_and_failed(router, c) == (1, 0)


@pytest.mark.parametrize("path", ["/v2/models/digits/infer", "/v1/models/digits/feedback"])
def test_a_content_length_of_5000_digits_is_413_not_500(
    client: tuple[AsgiClient, Router, LocalVersions], path: str
) -> None:
    c, router, _ = client
    r = c.post(path, content=b"{}", headers={"content-length": "9" * 5000, **LABELS})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large", r.text
    assert rejected_and_failed(router, c) == (1, 0)


def test_sticky_keys_are_bounded(
    client: tuple[AsgiClient, Router, LocalVersions], rows: np.ndarray
) -> None:
    c, router, _ = client
    body = {"instances": rows[:1].tolist()}
    r = c.post(f"/v1/models/{MODEL}/predict", json=body, headers={"x-rollout-key": "k" * 256})
    assert r.status_code == 200
    r = c.post(f"/v1/models/{MODEL}/predict", json=body, headers={"x-rollout-key": "k" * 257})
    assert r.status_code == 400 and "x-rollout-key" in r.json()["error"]
    got = collected(router, c)
    assert sum(s.rejected for s in got.stats.values()) == 1
    assert [len(e.unit) for e in got.events] == [256]


def test_a_model_error_hides_its_details_behind_an_error_id(
    rows: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    from rayrollout.errors import PredictError

    sig = classifier_signature(64, 10)
    secret = "ONNX model '/srv/models/secret/v2.onnx' failed: [ONNXRuntimeError] : 6 : RUNTIME"
    router, _ = make({"v1": FailingRuntime(sig, PredictError(secret))})
    with AsgiClient(router.http) as c, caplog.at_level("WARNING", "rayrollout.router"):
        r = c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:1].tolist()})
    assert r.status_code == 500 and r.json()["code"] == "model_error"
    text = r.json()["error"]
    assert "/srv/models" not in text and "ONNXRuntimeError" not in text
    eid = text.split("error id ")[1].split()[0].strip(";.)")
    assert any(eid in rec.getMessage() and "/srv/models/secret" in rec.getMessage()
               for rec in caplog.records)


def test_a_hostile_label_is_a_400_counted_as_rejected(
    client: tuple[AsgiClient, Router, LocalVersions],
) -> None:
    c, router, _ = client
    for body in (b'{"request_id": "a", "label": ' + b"9" * 400 + b"}",
                 b'{"request_id": "a", "label": NaN}', b"[" * 5000):
        r = c.post(f"/v1/models/{MODEL}/feedback", content=body, headers=LABELS)
        assert r.status_code == 400 and r.json()["code"] == "bad_request", r.text
    assert rejected_and_failed(router, c) == (3, 0)


def feedback(c: AsgiClient, items: list[tuple[str, int]], headers: dict[str, str] = LABELS
             ) -> dict[str, Any]:
    r = c.post(f"/v1/models/{MODEL}/feedback", headers=headers,
               json={"feedback": [{"request_id": i, "label": y} for i, y in items]})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_labels_need_a_feedback_token_and_are_counted_as_rejected_without_one(
    client: tuple[AsgiClient, Router, LocalVersions], rows: np.ndarray
) -> None:
    c, router, _ = client
    rid = c.post(f"/v1/models/{MODEL}/predict",
                 json={"instances": rows[:1].tolist()}).headers["x-rollout-request-id"]
    body = {"request_id": rid, "label": 1}
    for headers, status in (({}, 401), ({"Authorization": "Bearer nope"}, 401),
                            ({"Authorization": "Bearer v-tok"}, 403)):
        r = c.post(f"/v1/models/{MODEL}/feedback", json=body, headers=headers)
        assert r.status_code == status, r.text
    got = collected(router, c)
    assert got.labelled == [] and sum(s.rejected for s in got.stats.values()) == 3
    assert feedback(c, [(rid, 1)])["matched"] == 1  # the forged ones claimed nothing


def test_request_ids_are_unguessable_and_client_ids_live_in_their_own_namespace(
    client: tuple[AsgiClient, Router, LocalVersions], rows: np.ndarray
) -> None:
    c, _router, _ = client
    body = {"instances": rows[:1].tolist()}
    ids = [c.post(f"/v1/models/{MODEL}/predict", json=body).headers["x-rollout-request-id"]
           for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)  # 128 random bits, in hex
    # A client that sets a router-made id gets its own namespaced id: it cannot take the
    # other request's label, whose id it may have seen.
    r = c.post(f"/v1/models/{MODEL}/predict", json=body, headers={"x-request-id": ids[0]})
    assert r.headers["x-rollout-request-id"] == f"client:{ids[0]}"
    r = c.post(f"/v1/models/{MODEL}/predict", json=body, headers={"x-request-id": "order-7"})
    assert r.headers["x-rollout-request-id"] == "client:order-7"
    got = feedback(c, [(ids[0], 1), ("client:order-7", 2), ("order-7", 2)])
    assert got["counts"]["matched"] == 2 and got["unknown"] == ["order-7"]


def test_a_client_id_served_twice_takes_no_label(
    client: tuple[AsgiClient, Router, LocalVersions], rows: np.ndarray
) -> None:
    c, router, _ = client
    for _ in range(2):  # a second client reuses the first one's id
        c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:1].tolist()},
               headers={"x-request-id": "shared"})
    assert feedback(c, [("client:shared", 1)])["ambiguous"] == ["client:shared"]
    assert collected(router, c).labelled == []


@pytest.mark.parametrize("bad", ["x" * 129, "has space", "tab\there", "ünï"])
def test_a_malformed_client_id_is_400_before_the_model_runs(
    client: tuple[AsgiClient, Router, LocalVersions], rows: np.ndarray, bad: str
) -> None:
    c, router, _versions = client
    r = c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:1].tolist()},
               headers=[("x-request-id", bad.encode())])
    assert r.status_code == 400 and "x-request-id" in r.json()["error"]
    assert rejected_and_failed(router, c) == (1, 0) and not collected(router, c).events


def test_only_the_first_labeller_may_correct_a_label_and_only_before_it_is_judged(
    client: tuple[AsgiClient, Router, LocalVersions], rows: np.ndarray
) -> None:
    c, router, _ = client
    r = c.post(f"/v1/models/{MODEL}/predict", json={"instances": rows[:1].tolist()})
    rid, pred = r.headers["x-rollout-request-id"], int(r.json()["predictions"][0])
    wrong = (pred + 1) % 10
    assert feedback(c, [(rid, wrong)])["matched"] == 1
    assert feedback(c, [(rid, pred)], OTHER)["refused"] == [rid]  # another credential
    assert feedback(c, [(rid, wrong)])["counts"]["duplicate"] == 1
    assert feedback(c, [(rid, pred)])["counts"]["corrected"] == 1  # still in the router
    [ev] = collected(router, c).labelled
    assert ev.correct  # the judges see the corrected label, once
    assert feedback(c, [(rid, wrong)])["late"] == [rid]  # judged: it stays
    assert collected(router, c).labelled == []


def test_a_failed_request_is_retried_once_on_the_fallback_and_still_counts_against_its_version(
    runtimes: dict[str, Any], rows: np.ndarray
) -> None:
    from rayrollout.errors import PredictError

    bad = FailingRuntime(classifier_signature(64, 10), PredictError("broken"))
    router, _ = make({"v1": runtimes["v1"], "v2": bad}, weights={"v1": 0.0, "v2": 100.0},
                     fallback="v1")
    body = {"instances": rows[:1].tolist()}
    with AsgiClient(router.http) as c:
        r = c.post(f"/v1/models/{MODEL}/predict", json=body)
        assert r.status_code == 200 and r.headers["x-model-version"] == "v1"
        assert r.headers["x-rollout-retried-from"] == "v2"
        pinned = c.post(f"/v1/models/{MODEL}/predict", json=body,
                        headers={"x-rollout-version": "v2"})
        assert pinned.status_code == 500  # a pin gets the version it asked for
        assert feedback(c, [(r.headers["x-rollout-request-id"], 1)])["unknown"]  # no label
        got = collected(router, c)
    assert [(e.version, e.outcome) for e in got.events] == [("v2", Outcome.ERROR)] * 2
    assert (got.stats["v2"].errors, got.stats["v1"].retries, got.stats["v1"].requests) == (2, 1, 0)
    plain, _ = make({"v1": runtimes["v1"], "v2": bad}, weights={"v1": 0.0, "v2": 100.0})
    with AsgiClient(plain.http) as c:  # off by default: the user gets the failure
        assert c.post(f"/v1/models/{MODEL}/predict", json=body).status_code == 500


def test_an_output_holding_nan_is_the_versions_failure_never_a_200_that_is_not_json(
    runtimes: dict[str, Any],
) -> None:
    """v2 answers NaN probabilities for huge (finite) pixels: no JSON can carry that, so it is
    a 500 counted against the version, on both APIs."""
    router, _ = make({"v1": runtimes["v2"]})
    row = [1e38] * 64
    with AsgiClient(router.http) as c:
        r1 = c.post(f"/v1/models/{MODEL}/predict", json={"instances": [row]})
        r2 = c.post(f"/v2/models/{MODEL}/infer", json={"inputs": [
            {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row}]})
        assert [r.status_code for r in (r1, r2)] == [500, 500], (r1.text, r2.text)
        assert r1.json()["code"] == "model_error"
        assert rejected_and_failed(router, c) == (0, 2)
