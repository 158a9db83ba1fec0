"""The admin API on a real router: tokens, reads, verbs, errors, the audit trail, and the CLI
against it. One rollout per module (its controller is created by ``POST /rollout/start``)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import ARTIFACTS, RayServe

pytestmark = pytest.mark.integration

ALICE = f"alice-{uuid.uuid4().hex}"
BOB = f"bob-{uuid.uuid4().hex}"
RAYROLLOUT = Path(sys.executable).parent / "rayrollout"


VIEWER = f"viewer-{uuid.uuid4().hex}"


def tokens_file(folder: Path) -> str:
    """The router's tokens, in a file only its owner may read (never in the config)."""
    f = folder / "tokens"
    f.write_text(f"alice:{ALICE}\nbob:{BOB}\nviewer/read:{VIEWER}\n")
    f.chmod(0o600)
    return str(f)


def rollout_spec(model: str, store: Path) -> dict[str, Any]:
    """v2 over v1, held at the first step (it needs more requests than any test sends). Over
    HTTP the router chooses the store (``router.store_path``): the spec may not."""
    return {
        "model": model,
        "stable": {"name": "v1", "runtime": "onnx", "artifact": str(ARTIFACTS / "v1.onnx")},
        "candidates": [{"name": "v2", "runtime": "onnx", "artifact": str(ARTIFACTS / "v2.onnx")}],
        "strategy": {"steps": [{"weight": 10, "min_requests": 1_000_000}, {"weight": 50}]},
        "analysis": {"tick_s": 0.5, "checks": [{"kind": "errors"}, {"kind": "latency"}]},
        "rollback_window_s": 5,
        "router": {"tokens_file": tokens_file(store.parent), "store_path": str(store)},
    }


@dataclass
class Served:
    model: str
    base: str
    spec: dict[str, Any]
    before_start: httpx.Response
    started: httpx.Response

    def client(self, token: str | None = ALICE) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)

    def status(self) -> dict[str, Any]:
        with self.client() as c:
            return dict(c.get("/rollout/status").json())

    def wait_phase(self, phases: set[str], timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.status()
            if st["phase"] in phases or time.monotonic() > deadline:
                return st
            time.sleep(0.2)


def cleanup(model: str) -> None:
    import ray
    from ray import serve

    from rayrollout.names import NAMESPACE, controller_name

    with contextlib.suppress(ValueError):  # never created, or already gone
        ray.kill(ray.get_actor(controller_name(model), namespace=NAMESPACE))
    from rayrollout.serving.port import RayServePort

    RayServePort().remove_router(model)  # the ingress stays for the other tests' models
    for app in (f"{model}-v1", f"{model}-v2"):
        serve.delete(app, _blocking=False)


@pytest.fixture(scope="module")
def served(ray_serve: RayServe, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Stable v1 and the router are deployed; the rollout is started over HTTP."""
    from rayrollout.client.api import ensure_serving
    from rayrollout.spec import RolloutSpec

    model = f"a{uuid.uuid4().hex[:8]}"
    spec = rollout_spec(model, tmp_path_factory.mktemp("admin") / "rollouts.db")
    ensure_serving(RolloutSpec.model_validate(spec), route_prefix=f"/{model}")
    base = f"{ray_serve.url}/{model}"
    auth = {"Authorization": f"Bearer {ALICE}"}
    try:
        before = httpx.get(f"{base}/rollout/status", headers=auth, timeout=60)
        started = httpx.post(f"{base}/rollout/start", json=spec, headers=auth, timeout=120)
        yield Served(model, base, spec, before, started)
    finally:
        cleanup(model)


def test_start_over_http_creates_the_controller(served: Served) -> None:
    assert served.before_start.status_code == 404
    assert served.before_start.json()["error"].startswith(
        f"no rollout controller for model {served.model!r}"
    )
    assert served.started.status_code == 200, served.started.text
    assert served.started.json()["phase"] in ("pending", "deploying", "canary")
    assert served.wait_phase({"canary"})["phase"] == "canary"
    # the same spec again is the same rollout, not a second one
    with served.client() as c:
        again = c.post("/rollout/start", json=served.spec)
    assert again.status_code == 200 and again.json()["rollout"] == served.started.json()["rollout"]


ROUTES = [("GET", "status"), ("GET", "history"), ("GET", "verify"), ("GET", "replay"),
          ("POST", "pause"), ("POST", "abort"), ("POST", "start")]


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_every_data_route_needs_a_valid_token(served: Served, method: str, route: str) -> None:
    for token in (None, "wrong", ALICE + "x", ALICE[:-1]):
        with served.client(token) as c:
            r = c.request(method, f"/rollout/{route}", json={})
        assert r.status_code == 401, (token, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["code"] == "unauthorized"
    with httpx.Client(base_url=served.base) as c:  # another scheme is no token
        r = c.request(method, f"/rollout/{route}", headers={"Authorization": f"Basic {ALICE}"})
    assert r.status_code == 401 and "Bearer" in r.json()["error"]
    assert served.status()["phase"] not in ("paused", "rolled_back")


def test_reads_with_a_token(served: Served) -> None:
    with served.client() as c:
        st = c.get("/rollout/status").json()
        assert st["model"] == served.model and st["steps"][0]["weight"] == 10
        hist = c.get("/rollout/history", params={"limit": 2})
        assert hist.status_code == 200 and 1 <= len(hist.json()) <= 2
        assert hist.headers["cache-control"] == "no-store"
        every = c.get("/rollout/history", params={"all": 1}).json()
        assert [e["seq"] for e in every] == sorted(e["seq"] for e in every)
        assert c.get("/rollout/verify").json()["ok"] is True
        replay = c.get("/rollout/replay").json()
        assert replay["rollout"] == st["rollout"] and "identical" in replay
        bad = c.get("/rollout/history", params={"limit": "ten"})
        assert bad.status_code == 400 and "limit='ten'" in bad.json()["error"]
        assert c.get("/rollout/pause").status_code == 405
        assert c.post("/rollout/status").status_code == 405
        assert c.get("/rollout/nothing").status_code == 404


def test_a_read_token_reads_and_steers_nothing(served: Served) -> None:
    with served.client(VIEWER) as c:
        assert c.get("/rollout/status").status_code == 200
        for verb in ("pause", "abort", "start"):
            r = c.post(f"/rollout/{verb}", json=served.spec if verb == "start" else {})
            assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
            assert "'viewer' lacks scope" in r.json()["error"]
    assert served.status()["phase"] not in ("paused", "rolled_back")


def test_a_spec_over_http_reaches_only_what_the_operator_allows(served: Served) -> None:
    """No store of its choosing, no artifact outside the roots (and no answer saying whether
    a file exists), no webhook to a host the controller's machine does not allow."""
    spec = served.spec
    outside = [{"name": "v3", "runtime": "onnx", "artifact": path}
               for path in ("/etc/passwd", "/nonexistent/x.onnx")]
    with served.client() as c:
        r = c.post("/rollout/start", json={**spec, "store_path": "/tmp/mine.db"})
        assert r.status_code == 400 and r.json()["error"].startswith("store_path:")
        errors = [c.post("/rollout/start", json={**spec, "candidates": [v]}).json()["error"]
                  for v in outside]
        assert all("is outside the artifact roots" in e for e in errors)
        assert errors[0].replace("/etc/passwd", "X") == errors[1].replace(
            "/nonexistent/x.onnx", "X")  # the same answer whether the file exists or not
        hook = {"kind": "webhook", "url": "http://169.254.169.254/latest/meta-data"}
        r = c.post("/rollout/start", json={**spec, "notifiers": [hook]})
        assert r.status_code == 400 and "RAYROLLOUT_WEBHOOK_HOSTS" in r.json()["error"]
    assert served.status()["phase"] == "canary"  # nothing changed


def test_pause_resume_and_illegal_verbs(served: Served) -> None:
    served.wait_phase({"canary"})
    with served.client() as c:
        r = c.post("/rollout/pause", json={"reason": "looking at it"})
        assert r.status_code == 200 and r.json()["phase"] == "paused"
        assert served.status()["phase"] == "paused"
        for verb in ("pause", "approve", "undo", "retry"):
            r = c.post(f"/rollout/{verb}")
            assert r.status_code == 409, (verb, r.text)
            assert r.json()["code"] == "illegal_transition"
        r = c.post("/rollout/resume", json={"fast": True})
        assert r.status_code == 400 and "fast" in r.json()["error"]
        r = c.post("/rollout/resume", content=b"{not json")
        assert r.status_code == 400
        r = c.post("/rollout/resume")
        assert r.status_code == 200 and r.json()["phase"] == "canary"
        last = c.get("/rollout/history", params={"limit": 2}).json()
    assert [(e["phase_to"], e["actor"]) for e in last] == [("paused", "alice"), ("canary", "alice")]
    assert "looking at it" in last[0]["reason"]


def test_bad_spec_on_start_is_400_naming_the_field_and_value(served: Served) -> None:
    spec = served.spec
    bad_steps = {**spec, "strategy": {"steps": [{"weight": 50}, {"weight": 20}]}}
    bad_runtime = {**spec, "candidates": [{"name": "v3", "runtime": "tf", "artifact": "x"}]}
    with served.client() as c:
        r = c.post("/rollout/start", json=bad_steps)
        assert r.status_code == 400
        assert "steps[1].weight=20 <= steps[0].weight=50" in r.json()["error"]
        r = c.post("/rollout/start", json=bad_runtime)
        assert r.status_code == 400
        assert "candidates.0.runtime" in r.json()["error"] and "'tf'" in r.json()["error"]
        r = c.post("/rollout/start", json={**spec, "model": "someone-else"})
        assert r.status_code == 400 and "'someone-else'" in r.json()["error"]
        r = c.post("/rollout/start", content=b"[1, 2")
        assert r.status_code == 400
    assert served.status()["phase"] == "canary"  # nothing changed


def test_inference_needs_no_token(served: Served, heldout: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = heldout
    with httpx.Client(base_url=served.base, timeout=60) as c:
        for i in range(20):
            row = X[i : i + 1].tolist()
            r = c.post(f"/v1/models/{served.model}/predict", json={"instances": row})
            assert r.status_code == 200, r.text
            assert r.headers["x-model-version"] in ("v1", "v2")
        assert c.get("/v2/health/live").status_code == 200


def test_status_page_loads_without_a_token(served: Served) -> None:
    with httpx.Client(base_url=served.base, timeout=60) as c:
        for path in ("/rollout/", "/rollout", "/rollout/ui"):
            r = c.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            csp = r.headers["content-security-policy"]
            nonce = csp.split("'nonce-")[1].split("'")[0]
            assert f'<script nonce="{nonce}">' in r.text and "{{NONCE}}" not in r.text
            assert "default-src 'none'" in csp and r.headers["x-frame-options"] == "DENY"


def cli(served: Served, *args: str, token: str = ALICE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RAYROLLOUT), "--url", served.base, "--token", token, *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_cli_against_the_live_router(served: Served) -> None:
    served.wait_phase({"canary"})
    r = cli(served, "status", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["phase"] == "canary"
    r = cli(served, "status")
    assert r.returncode == 0 and "phase CANARY" in r.stdout and "errors" in r.stdout
    r = cli(served, "pause", "--reason", "from the cli", token=BOB)
    assert r.returncode == 0, r.stderr
    assert "pause: phase paused" in r.stdout and served.status()["phase"] == "paused"
    r = cli(served, "approve")
    assert r.returncode == 2 and "409" in r.stderr and "approval" in r.stderr
    r = cli(served, "resume", token="nope")
    assert r.returncode == 2 and "401: invalid token" in r.stderr
    r = cli(served, "resume")
    assert r.returncode == 0 and served.status()["phase"] == "canary"
    r = cli(served, "history", "--limit", "2")
    assert r.returncode == 0 and "bob" in r.stdout and "canary -> paused" in r.stdout
    r = cli(served, "verify")
    assert r.returncode == 0 and r.stdout.startswith("ok: ")


def test_abort_records_the_token_name_then_retry(served: Served) -> None:
    with served.client() as c:
        r = c.post("/rollout/abort", json={"reason": "customer complaints"})
        assert r.status_code == 200 and r.json()["phase"] == "rolled_back"
        assert r.json()["weights"] == {"v1": 100.0}
        (last,) = c.get("/rollout/history", params={"limit": 1}).json()
        assert (last["phase_to"], last["actor"]) == ("rolled_back", "alice")
        assert "customer complaints" in last["reason"]
        assert c.post("/rollout/abort").status_code == 409
    with served.client(BOB) as c:  # back to an active rollout for whatever runs next
        r = c.post("/rollout/retry")
        assert r.status_code == 200 and r.json()["phase"] == "deploying"
        # The controller may already have moved the rollout on (its candidate still deployed):
        # the retry is the newest entry that went to deploying, whatever came after it
        recent = c.get("/rollout/history", params={"limit": 5}).json()
        retried = [e for e in recent if e["phase_to"] == "deploying"][-1]
        assert retried["actor"] == "bob", recent
