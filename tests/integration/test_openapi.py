"""Schemathesis against a real router on Ray Serve, driven by the OpenAPI documents of
``rayrollout.ingress.openapi``: valid (positive) and hostile (negative) requests to every route.

Whatever comes, the router never answers 5xx, every answer conforms to the document (status,
content type, headers, body schema), every 4xx of the inference API is counted as rejected,
and the replica keeps serving. The admin API is fuzzed with a valid token on a running rollout
(``POST /rollout/start`` only with invalid specs: a valid random one would deploy things) and
without a token, when every guarded route must answer 401.

Each run is bounded (a fixed number of cases, derandomised, no shrinking) so the file stays
short on a small machine.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rayrollout.ingress.openapi import admin_openapi, inference_openapi
from rayrollout.runtime import ModelSignature
from rayrollout.spec import RouterConfig
from tests.conftest import ARTIFACTS
from tests.integration.conftest import Deployed

if sys.version_info < (3, 11):  # schemathesis' Failure(Group) on Python 3.10
    from exceptiongroup import BaseExceptionGroup

pytestmark = pytest.mark.integration

ONE = [("v1", "v1.onnx", "onnx")]
ROUTER = {"weights": {"v1": 100.0}, "max_batch_rows": 8, "seed": 3}  # small batches: fast cases
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
CASES = {GenerationMode.POSITIVE: 80, GenerationMode.NEGATIVE: 80}
ADMIN_CASES = 40
OUR_TOKEN = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})


def admin_token(tmp_path: Path) -> tuple[dict[str, Any], str]:
    """Router config fields that give the admin API one token of every scope, and the token.
    (How tokens are configured is the one thing here likely to change: keep it here.)"""
    token = secrets.token_urlsafe(24)
    path = tmp_path / "tokens"
    path.write_text(f"fuzzer:{token}\n")
    path.chmod(0o600)
    return {"tokens_file": str(path)}, token


@dataclass
class Run:
    """What one fuzzing run got: statuses by operation, and each distinct failure once, with
    a command that reproduces it."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    json_4xx: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    def of(self, pred: Callable[[int], bool]) -> int:
        return sum(n for (_, s), n in self.statuses.items() if pred(s))

    def report(self) -> str:
        return "\n\n".join(f"{k}\n  {v}" for k, v in self.failures.items())


def fuzz(schema: Any, base: str, mode: GenerationMode, n: int,
         headers: dict[str, str] | None = None) -> Run:
    """``n`` generated cases of ``schema`` sent to ``base``, each response checked."""
    run = Run()

    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        response = case.call(base_url=base, headers=headers, timeout=60)
        status = response.status_code
        run.statuses[(case.operation.label, status)] += 1
        if 400 <= status < 500 and response.headers.get("content-type") == ["application/json"]:
            run.json_4xx += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as e:  # schemathesis' Failure(Group)
            first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            run.failures.setdefault(
                f"{mode.value} {case.operation.label} -> {status}: {first.strip()}",
                f"{case.as_curl_command(headers=headers, base_url=base)}\n  -> "
                f"{response.text[:500]}")

    one()
    return run


def rejected(d: Deployed) -> int:
    return sum(s.rejected for s in d.stats().values())


def oip(x: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.reshape(-1).tolist()}]}


def test_inference_api_fuzzed_never_5xx_rejects_counted_still_serving(
        deploy, heldout, tmp_path: Path) -> None:
    X, _ = heldout
    fields, token = admin_token(tmp_path)  # feedback needs a token
    d = deploy(ONE, **ROUTER, **fields)
    auth = {"Authorization": f"Bearer {token}"}
    with d.client() as c:
        meta = c.get(f"/v2/models/{d.model}")
        assert meta.status_code == 200, meta.text
    sig = ModelSignature.from_dict(meta.json())
    cfg = RouterConfig.model_validate({"model": d.model, **ROUTER})
    schema = schemathesis.openapi.from_dict(inference_openapi(d.model, sig, ["v1"], cfg))
    before = rejected(d)
    runs = {mode: fuzz(schema, d.base, mode, n, auth) for mode, n in CASES.items()}
    after = rejected(d)
    failures = "\n\n".join(r.report() for r in runs.values() if r.failures)
    assert not failures, failures
    got = sum((r.statuses for r in runs.values()), Counter[tuple[str, int]]())
    assert all(s < 500 for _, s in got), got
    # Every 4xx was the router's own JSON answer, and each was counted as rejected.
    answered_4xx = sum(r.of(lambda s: 400 <= s < 500) for r in runs.values())
    assert answered_4xx == sum(r.json_4xx for r in runs.values()), got
    assert after - before == answered_4xx, (after - before, got)
    # Both runs reached the model and its refusals.
    pos, neg = runs[GenerationMode.POSITIVE], runs[GenerationMode.NEGATIVE]
    assert pos.statuses[("POST /v2/models/{model}/infer", 200)] > 0, pos.statuses
    assert pos.statuses[("POST /v1/models/{model}/predict", 200)] > 0, pos.statuses
    assert pos.statuses[("POST /v1/models/{model}/feedback", 200)] > 0, pos.statuses
    assert neg.of(lambda s: s == 400) > 0 and neg.of(lambda s: s == 404) > 0, neg.statuses
    with d.client() as c:  # the replica keeps serving
        r = c.post(f"/v2/models/{d.model}/infer", json=oip(X[:2]))
        assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [2], r.text


def rollout_spec(model: str) -> dict[str, Any]:
    """v2 over v1, held at its first step (it needs more requests than the test sends)."""
    version = {v: {"name": v, "runtime": "onnx", "artifact": str(ARTIFACTS / f"{v}.onnx")}
               for v in ("v1", "v2")}
    steps = [{"weight": 10, "min_requests": 10**9}, {"weight": 50}]
    return {"model": model, "stable": version["v1"], "candidates": [version["v2"]],
            "strategy": {"steps": steps}, "drain_s": 2}


def logged_errors(text: str) -> str:
    """What Ray's logs say about each error id in ``text`` (an internal error's details are
    logged by the replica, never sent to the client)."""
    import re

    import ray

    ids = set(re.findall(r'"error_id":"([0-9a-f]+)"', text))
    node = ray._private.worker._global_node
    if not ids or node is None:
        return ""
    found = []
    for path in Path(node.get_logs_dir_path()).rglob("*.log"):
        lines = path.read_text(errors="replace").splitlines()
        for i, line in enumerate(lines):
            if any(e in line for e in ids):
                found.append(f"{path.name}:\n" + "\n".join(lines[i:i + 40]))
    return "\n\nfrom the logs:\n" + "\n".join(found)[:8000]


def kill_controller(model: str) -> None:
    import ray

    from rayrollout.names import NAMESPACE, controller_name

    with contextlib.suppress(ValueError):  # never created, or already gone
        ray.kill(ray.get_actor(controller_name(model), namespace=NAMESPACE))


def test_admin_api_fuzzed_with_a_token_never_5xx_and_without_one_only_401(
        deploy, heldout, tmp_path: Path) -> None:
    X, _ = heldout
    fields, token = admin_token(tmp_path)
    d = deploy(ONE, **ROUTER, store_path=str(tmp_path / "rollouts.db"), **fields)
    d.apps.append(f"{d.model}-v2")  # the rollout deploys it; the fixture deletes it
    auth = {"Authorization": f"Bearer {token}"}
    try:
        with d.client(headers=auth) as c:
            r = c.post("/rollout/start", json=rollout_spec(d.model))
            assert r.status_code == 200, r.text
        # With the token the fuzzer sends ours, never one of its own making; without, anything.
        schema = schemathesis.openapi.from_dict(admin_openapi(), config=OUR_TOKEN)
        guarded = schemathesis.openapi.from_dict(admin_openapi()).exclude(
            path_regex="^/rollout(/ui)?$")  # the page needs no token
        runs = {
            "positive": fuzz(schema.exclude(method="POST", path="/rollout/start"), d.base,
                             GenerationMode.POSITIVE, ADMIN_CASES, auth),
            "negative": fuzz(schema, d.base, GenerationMode.NEGATIVE, ADMIN_CASES, auth),
            "no token": fuzz(guarded, d.base, GenerationMode.POSITIVE, ADMIN_CASES // 2),
            "no token, negative": fuzz(guarded, d.base, GenerationMode.NEGATIVE,
                                       ADMIN_CASES // 2),
        }
        failures = "\n\n".join(r.report() for r in runs.values() if r.failures)
        assert not failures, failures + logged_errors(failures)
        for name, run in runs.items():
            assert run.of(lambda s: s >= 500) == 0, (name, run.statuses)
        for name in ("no token", "no token, negative"):
            assert {s for _, s in runs[name].statuses} == {401}, (name, runs[name].statuses)
        starts = {s for (op, s) in runs["negative"].statuses if op == "POST /rollout/start"}
        assert 400 in starts and all(400 <= s < 500 for s in starts), runs["negative"].statuses
        # The verbs reached the controller: some were done, some refused in their phase.
        verbs = runs["positive"].statuses
        assert any(s == 200 for (op, s) in verbs if op.startswith("POST")), verbs
        with d.client(headers=auth) as c:  # the controller and the replica keep serving
            assert c.get("/rollout/status").status_code == 200
            r = c.post(f"/v2/models/{d.model}/infer", json=oip(X[:1]),
                       headers={"x-rollout-version": "v1"})
            assert r.status_code == 200, r.text
    finally:
        kill_controller(d.model)
