"""The admin API in-process: its Starlette routes, tokens, errors and verbs against a real
``RolloutController`` on the in-memory ``FakeServePort``. No Ray."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from rayrollout.controller.fake import FakeServePort
from rayrollout.controller.phases import VERBS
from rayrollout.errors import ConfigError, Forbidden, StoreBusy, StoreCorrupt, Unauthorized
from rayrollout.ingress.admin import AdminAPI
from rayrollout.ingress.auth import Scope
from rayrollout.spec import RouterConfig
from tests.asgi import AsgiClient
from tests.unit.controller.test_controller import MODEL, Clock, spec_doc

ALICE, BOB = "alice-token-123", "bob-token-456"
AUTH = {"Authorization": f"Bearer {ALICE}"}


TOKENS = {"RAYROLLOUT_ADMIN_TOKENS": f"alice:{ALICE},bob:{BOB}"}


def admin_config(**over: Any) -> RouterConfig:
    return RouterConfig.model_validate({"model": MODEL, "weights": {"v1": 100.0}, **over})


class Admin:
    def __init__(self, store: Path) -> None:
        self.clock = Clock()
        self.port = FakeServePort(self.clock)
        cfg = admin_config(store_path=str(store))  # over HTTP, the router chooses the store
        self.port.deploy_router(cfg)
        self.api = AdminAPI(cfg, self.port, environ=TOKENS)
        self.client = AsgiClient(self.api.http)
        self.spec = spec_doc(store, strategy={"steps": [{"weight": 10, "min_requests": 10**6},
                                                        {"weight": 50}]})
        del self.spec["store_path"]

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.clock.t += 1
            self.port.controllers[MODEL].step()


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[Admin]:
    a = Admin(tmp_path / "rollouts.db")
    yield a
    a.client.close()


def started(admin: Admin) -> Admin:
    r = admin.client.post("/start", json=admin.spec, headers=AUTH)
    assert r.status_code == 200, r.text
    admin.tick(2)
    return admin


DATA_ROUTES = [("GET", "/status"), ("GET", "/history"), ("GET", "/verify"), ("GET", "/replay"),
               ("GET", "/verbs"), ("POST", "/pause"), ("POST", "/abort"), ("POST", "/start")]


@pytest.mark.parametrize(("method", "route"), DATA_ROUTES)
def test_every_data_route_needs_a_valid_token(admin: Admin, method: str, route: str) -> None:
    for token in (None, "wrong", ALICE + "x", ALICE[:-1]):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = admin.client.request(method, route, json={}, headers=headers)
        assert r.status_code == 401, (token, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["code"] == "unauthorized" and r.headers["cache-control"] == "no-store"
    r = admin.client.request(method, route, headers={"Authorization": f"Basic {ALICE}"})
    assert r.status_code == 401 and "Bearer" in r.json()["error"]
    assert MODEL not in admin.port.controllers  # nothing was started or steered


def test_before_a_start_there_is_no_controller_then_start_creates_it(admin: Admin) -> None:
    r = admin.client.get("/status", headers=AUTH)
    assert r.status_code == 404
    assert r.json()["error"].startswith(f"no rollout controller for model {MODEL!r}")
    r = admin.client.post("/start", json=admin.spec, headers=AUTH)
    assert r.status_code == 200 and r.json()["phase"] == "pending"
    again = admin.client.post("/start", json=admin.spec, headers=AUTH)  # the same rollout
    assert again.status_code == 200 and again.json()["rollout"] == r.json()["rollout"]
    assert admin.port.controllers[MODEL].store.rollouts(MODEL) == [r.json()["rollout"]]


def test_reads_and_errors_are_json_with_their_status(admin: Admin) -> None:
    c = started(admin).client
    st = c.get("/status", headers=AUTH).json()
    assert st["phase"] == "canary" and st["allowed_verbs"] == ["pause", "promote", "abort"]
    hist = c.get("/history", params={"limit": 2}, headers=AUTH)
    assert hist.status_code == 200 and len(hist.json()) == 2
    assert c.get("/verify", headers=AUTH).json()["ok"] is True
    assert c.get("/replay", headers=AUTH).json()["identical"] is True
    verbs = c.get("/verbs", headers=AUTH).json()["verbs"]
    assert verbs == [v.to_dict() for v in VERBS.values()]  # the one table, served
    r = c.get("/replay", params={"rollout": 99}, headers=AUTH)
    assert r.status_code == 404 and r.json() == {"error": "no rollout 99 in the store",
                                                 "code": "not_found"}
    r = c.get("/history", params={"limit": "ten"}, headers=AUTH)
    assert r.status_code == 400 and "limit='ten'" in r.json()["error"]
    r = c.get("/pause", headers=AUTH)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["code"] == "method_not_allowed"
    assert c.post("/status", headers=AUTH).status_code == 405
    r = c.get("/nothing", headers=AUTH)
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_verbs_record_the_token_name_and_illegal_ones_are_409(admin: Admin) -> None:
    c = started(admin).client
    r = c.post("/pause", json={"reason": "looking at it"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["phase"] == "paused"
    for verb in ("pause", "approve", "undo", "retry"):
        r = c.post(f"/{verb}", headers=AUTH)
        assert r.status_code == 409 and r.json()["code"] == "illegal_transition", verb
    r = c.post("/resume", json={"fast": True}, headers=AUTH)
    assert r.status_code == 400 and "fast" in r.json()["error"]
    assert c.post("/resume", content=b"{not json", headers=AUTH).status_code == 400
    r = c.post("/resume", headers={"Authorization": f"Bearer {BOB}"})
    assert r.status_code == 200 and r.json()["phase"] == "canary"
    last = c.get("/history", params={"limit": 2}, headers=AUTH).json()
    assert [(e["phase_to"], e["actor"]) for e in last] == [("paused", "alice"), ("canary", "bob")]
    assert "looking at it" in last[0]["reason"]


def test_a_bad_spec_is_400_naming_the_field_and_value(admin: Admin) -> None:
    c = started(admin).client
    spec = admin.spec
    r = c.post("/start", json={**spec, "strategy": {"steps": [{"weight": 50}, {"weight": 20}]}},
               headers=AUTH)
    assert r.status_code == 400
    assert "steps[1].weight=20 <= steps[0].weight=50" in r.json()["error"]
    r = c.post("/start", json={**spec, "analysis": {"checks": [{"kind": "vibes"}]}},
               headers=AUTH)
    assert r.status_code == 400 and "unknown check kind 'vibes'" in r.json()["error"]
    r = c.post("/start", json={**spec, "model": "someone-else"}, headers=AUTH)
    assert r.status_code == 400 and "'someone-else'" in r.json()["error"]
    assert c.post("/start", content=b"[1, 2", headers=AUTH).status_code == 400
    assert c.get("/status", headers=AUTH).json()["phase"] == "canary"  # nothing changed


def test_a_controller_that_fails_is_a_json_error_never_an_unhandled_500(admin: Admin) -> None:
    c = started(admin).client
    controller = admin.port.controllers[MODEL]

    def broken(*args: Any) -> Any:
        raise RuntimeError("disk on fire")

    controller.status = broken  # type: ignore[method-assign]
    r = c.get("/status", headers=AUTH)
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    assert "disk on fire" not in r.json()["error"]  # the cause is logged, not answered
    admin.api.port = None  # no control plane at all
    admin.api._controller = None
    r = c.get("/verify", headers=AUTH)
    assert r.status_code == 503 and r.json()["code"] == "unavailable"


def test_the_page_loads_without_a_token(admin: Admin) -> None:
    for path in ("/", "/ui", "/ui/"):
        r = admin.client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        nonce = csp.split("'nonce-")[1].split("'")[0]
        assert f'<script nonce="{nonce}">' in r.text and "{{NONCE}}" not in r.text
        assert "default-src 'none'" in csp and r.headers["x-frame-options"] == "DENY"


# -- the token logic on its own ------------------------------------------------------------------


def request(token: str | None) -> Request:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return Request({"type": "http", "method": "GET", "path": "/rollout/status",
                    "headers": headers, "query_string": b""})


def test_tokens_come_from_the_environment_and_a_private_file(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("# operators\nfrank/read+operate:f-tok\nlabels/feedback:l-tok\n")
    f.chmod(0o600)
    cfg = RouterConfig.model_validate(
        {"model": "m", "weights": {"v1": 100}, "admin_tokens_env": "MY_TOKENS",
         "tokens_file": str(f)})
    admin = AdminAPI(cfg, environ={
        "MY_TOKENS": "carol:c-tok, malformed ,dave:,:x, erin : e:tok, gus/root:g-tok"})
    assert admin.authenticate(request("c-tok")) == "carol"
    assert admin.authenticate(request("e:tok")) == "erin"  # a token may hold a colon
    assert admin.authenticate(request("f-tok"), Scope.OPERATE) == "frank"
    for bad in ("x", "malformed", "", "c-to", "c-tokk", "g-tok"):  # gus: unknown scope
        with pytest.raises(Unauthorized, match="token"):
            admin.authenticate(request(bad))
    with pytest.raises(Forbidden, match="'frank' lacks scope 'admin'"):
        admin.authenticate(request("f-tok"), Scope.ADMIN)
    with pytest.raises(Forbidden, match="'labels' lacks scope 'read'"):
        admin.authenticate(request("l-tok"))


def test_a_tokens_file_others_can_read_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("alice:a-tok\n")
    f.chmod(0o644)
    cfg = RouterConfig.model_validate({"model": "m", "weights": {"v1": 100},
                                       "tokens_file": str(f)})
    with pytest.raises(ConfigError, match=r"mode 0644.*chmod 600"):
        AdminAPI(cfg, environ={})
    with pytest.raises(ConfigError, match="cannot be read"):
        AdminAPI(cfg.model_copy(update={"tokens_file": str(tmp_path / "none")}), environ={})


@pytest.mark.parametrize("key", ["admin_tokens", "tokens"])
def test_tokens_in_a_config_are_refused_naming_the_field(key: str) -> None:
    with pytest.raises(ValidationError, match=f"{key}: tokens are not accepted in a config"):
        RouterConfig.model_validate({"model": "m", "weights": {"v1": 100},
                                     key: {"alice": "a-tok"}})


def test_scopes_open_exactly_their_routes(tmp_path: Path) -> None:
    """read: the GET routes; operate: also the verbs; admin: also start. feedback: none."""
    a = Admin(tmp_path / "rollouts.db")
    a.api = AdminAPI(a.api.cfg, a.port, environ={"RAYROLLOUT_ADMIN_TOKENS": (
        f"alice:{ALICE},viewer/read:v-tok,oncall/operate:o-tok,labels/feedback:l-tok")})
    a.client = AsgiClient(a.api.http)
    started(a)
    with a.client as c:
        def status(method: str, path: str, token: str) -> int:
            h = {"Authorization": f"Bearer {token}"}
            r = c.get(path, headers=h) if method == "GET" else c.post(path, json={}, headers=h)
            return r.status_code
        every = ([("GET", p) for p in ("/status", "/history", "/verify", "/replay", "/verbs")]
                 + [("POST", f"/{v}") for v in VERBS] + [("POST", "/start")])
        for method, path in every:
            need = ("admin" if path == "/start" else "operate" if method == "POST" else "read")
            for token, scope in (("v-tok", "read"), ("o-tok", "operate"), ("l-tok", "feedback")):
                allowed = {"read": {"read"}, "operate": {"read", "operate"}}.get(scope, set())
                code = status(method, path, token)
                if need in allowed:
                    assert code != 403, (method, path, scope)
                else:
                    assert code == 403, (method, path, scope, code)


def test_a_spec_over_http_cannot_choose_its_store(admin: Admin) -> None:
    r = admin.client.post("/start", json={**admin.spec, "store_path": "/tmp/elsewhere.db"},
                          headers=AUTH)
    assert r.status_code == 400 and r.json()["error"].startswith("store_path:")
    assert MODEL not in admin.port.controllers


def test_no_token_configured_means_admin_is_off() -> None:
    cfg = RouterConfig.model_validate({"model": "m", "weights": {"v1": 100}})
    with AsgiClient(AdminAPI(cfg, environ={}).http) as c:
        for token in (None, "anything"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = c.get("/status", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
            error = r.json()["error"]
            assert "none is configured" in error and "tokens_file" in error
            assert "RAYROLLOUT_ADMIN_TOKENS='name[/scope+scope]:token'" in error
        assert c.get("/").status_code == 200  # the page loads; its data calls are refused


@pytest.mark.parametrize("value", ["²", "١٢", "1" * 5000, "99999999999999999999", "0", "-1",
                                   " 5", "5\u200b"])
def test_odd_numbers_in_the_query_are_400_naming_the_parameter(admin: Admin, value: str) -> None:
    c = started(admin).client
    for route, name in (("/history", "limit"), ("/replay", "rollout")):
        r = c.get(route, params={name: value}, headers=AUTH)
        assert r.status_code == 400, (route, value, r.text)
        assert r.json()["code"] == "bad_request" and r.json()["error"].startswith(f"{name}=")
        assert len(r.json()["error"]) < 200  # the value is not echoed whole


def test_history_limit_is_bounded(admin: Admin) -> None:
    c = started(admin).client
    r = c.get("/history", params={"limit": 1001}, headers=AUTH)
    assert r.status_code == 400 and "at most 1000" in r.json()["error"]
    assert c.get("/history", params={"limit": 1000}, headers=AUTH).status_code == 200


@pytest.mark.parametrize("error", [RuntimeError("/srv/secret/path.onnx: boom"),
                                   StoreCorrupt("the rollout store /home/u/.rayrollout/m.db is "
                                                "damaged")])
def test_a_500_says_nothing_of_its_cause_but_gives_an_id_to_find_it_in_the_log(
    admin: Admin, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    error: Exception,
) -> None:
    c = started(admin).client

    def boom(*args: Any) -> Any:
        raise error

    monkeypatch.setattr(admin.port.controllers[MODEL], "status", boom)
    with caplog.at_level(logging.ERROR, "rayrollout.admin"):
        r = c.get("/status", headers=AUTH)
    assert r.status_code == 500
    body = r.json()
    assert body["code"] == "internal_error" and set(body) == {"error", "code", "error_id"}
    assert "/srv" not in r.text and "/home" not in r.text and "boom" not in r.text
    assert body["error_id"] in body["error"]
    logged = [rec for rec in caplog.records if body["error_id"] in rec.getMessage()]
    assert logged and logged[0].exc_info is not None and logged[0].exc_info[1] is error


def test_a_busy_store_is_503_with_its_reason(admin: Admin, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    c = started(admin).client

    def busy(*args: Any) -> Any:
        raise StoreBusy("the rollout store is busy: try again")

    monkeypatch.setattr(admin.port.controllers[MODEL], "history", busy)
    r = c.get("/history", headers=AUTH)
    assert r.status_code == 503 and r.json() == {"error": "the rollout store is busy: try again",
                                                 "code": "store_busy"}
