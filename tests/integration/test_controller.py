"""The rollout controller on a real local Ray: progressive steps, automatic rollback on a real
accuracy regression, restarts mid-rollout, replay and undo."""

from __future__ import annotations

import contextlib
import re
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
import ray

import rayrollout.client.api as rr
from rayrollout.errors import NotFound, UnavailableError
from rayrollout.serving.port import RayServePort
from tests.conftest import ARTIFACTS, TOKENS, RayServe, auth
from tests.unit.test_notify import Hook

pytestmark = pytest.mark.integration


def version(name: str, artifact: str) -> dict[str, Any]:
    return {"name": name, "runtime": "onnx", "artifact": str(ARTIFACTS / artifact)}


def spec(model: str, store: Path, stable: str, cand: str, steps: list[dict[str, Any]],
         **analysis: Any) -> dict[str, Any]:
    return {
        "model": model,
        "stable": version(stable, f"{stable}.onnx"),
        "candidates": [version(cand, f"{cand}.onnx")],
        "strategy": {"steps": steps},
        "analysis": {
            "tick_s": 0.2,
            "checks": [
                {"kind": "errors", "params": {"min_candidate_requests": 30}},
                {"kind": "accuracy", "params": {"mode": "errors", "min_labelled": 30}},
            ],
            **analysis,
        },
        "rollback_window_s": 600,
        "store_path": str(store),
    }


class Load:
    """Clients sending held-out rows and posting labels back; counts what every version served."""

    def __init__(self, base: str, model: str, X: np.ndarray, y: np.ndarray) -> None:
        self.base, self.model, self.X, self.y = base, model, X, y
        self.served: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(k,)) for k in range(4)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _run(self, k: int) -> None:
        url = f"/v1/models/{self.model}"
        with httpx.Client(base_url=self.base, timeout=30) as c:
            labels = auth(TOKENS.feedback)
            i = k
            while not self._stop.is_set():
                i += 4
                j = i % len(self.X)
                r = c.post(f"{url}/predict", json={"instances": [self.X[j].tolist()]})
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                    continue
                self.served[r.headers["x-model-version"]] += 1
                c.post(f"{url}/feedback", json={"request_id": r.headers["x-rollout-request-id"],
                                                 "label": int(self.y[j])}, headers=labels)


@pytest.fixture
def model(ray_serve: RayServe) -> Iterator[str]:
    from ray import serve

    name = f"c{uuid.uuid4().hex[:8]}"
    yield name
    try:
        h = RayServePort().controller(name, create=False).actor
        ray.get(h.stop.remote())
        ray.kill(h, no_restart=True)
    except NotFound:
        pass
    with contextlib.suppress(UnavailableError, ray.exceptions.RayError):
        RayServePort().remove_router(name)  # the ingress is shared: only this model leaves it
    for app in serve.status().applications:
        if app.startswith(f"{name}-"):
            serve.delete(app, _blocking=False)


def wait_phase(ro: rr.Rollout, phases: set[str], timeout_s: float = 120) -> dict[str, Any]:
    return ro.wait(frozenset(phases), timeout_s)


def restart_controller(ro: rr.Rollout) -> None:
    """Kill the controller actor; Ray restarts it, and its __init__ reloads from the store."""
    h = RayServePort().controller(ro.model, create=False).actor
    pid_before = ray.get(h.pid.remote())
    ray.kill(h, no_restart=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if ray.get(h.pid.remote(), timeout=5) != pid_before:
                return
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            pass
        time.sleep(0.2)
    raise AssertionError("the controller did not come back")


def snapshot(ro: rr.Rollout) -> tuple[Any, ...]:
    st = ro.status()
    return st["phase"], st["step"], st["epoch"], dict(st["weights"]), st["decisions"]


def restart_in_place(ro: rr.Rollout) -> str:
    """Restart the controller where nothing moves by itself (awaiting approval, paused,
    promoted): the restarted one has the same phase, step, epoch, weights and decision count,
    and the same log, no entry lost or written twice. Returns that phase."""
    before, log_before = snapshot(ro), ro.history()
    restart_controller(ro)
    assert snapshot(ro) == before
    assert ro.history() == log_before
    return str(before[0])


def test_progressive_rollout_survives_controller_restarts(
    ray_serve: RayServe, model: str, heldout, tmp_path: Path
) -> None:
    """Two steps behind approval gates under load, the controller restarted in each phase
    that waits for a person (awaiting approval at step 0, paused at step 1, promoted), the
    verbs sent after each restart taking effect; then undo."""
    X, y = heldout
    steps = [{"weight": 20, "min_requests": 30, "approval": True},
             {"weight": 50, "min_requests": 30, "approval": True}]
    s = spec(model, tmp_path / "r.db", "v1", "v2", steps)
    ro = rr.start(s, route_prefix=f"/{model}")
    with Load(f"{ray_serve.url}/{model}", model, X, y) as load:
        st = wait_phase(ro, {"awaiting_approval"})
        assert st["step"] == 0 and st["weights"] == {"v1": 80.0, "v2": 20.0}
        seen = [restart_in_place(ro)]
        ro.approve()
        st = wait_phase(ro, {"awaiting_approval"})
        assert st["step"] == 1 and st["weights"] == {"v1": 50.0, "v2": 50.0}
        ro.pause()
        seen.append(restart_in_place(ro))
        st = ro.resume()
        assert st["phase"] == "awaiting_approval" and st["step"] == 1
        ro.approve()
        st = wait_phase(ro, {"promoted"})
        assert st["weights"] == {"v2": 100.0} and st["previous_stable"] == "v1"
        seen.append(restart_in_place(ro))
        n_v1 = load.served["v1"]
        st = ro.undo()  # within the rollback window: v1 takes everything back at once
        assert st["phase"] == "rolled_back" and st["weights"] == {"v1": 100.0}
        deadline = time.monotonic() + 30  # v1 serves again
        while load.served["v1"] <= n_v1 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not load.failures, load.failures[:5]
    assert load.served["v1"] > n_v1 and load.served["v2"] > 0
    assert seen == ["awaiting_approval", "paused", "promoted"]
    log = ro.history()
    actors = {e["actor"] for e in log}
    assert {"controller", "python-api"} <= actors
    epochs = [e["epoch"] for e in log]
    assert epochs == sorted(epochs)  # the table epoch never went back
    assert ro.verify()["ok"]
    assert ro.replay()["identical"]


def test_accuracy_regression_is_rolled_back_automatically(
    ray_serve: RayServe, model: str, heldout, tmp_path: Path
) -> None:
    X, y = heldout
    # the step alone would never end; half the traffic on each version gives the accuracy
    # check (candidate against stable) its evidence soonest
    steps = [{"weight": 50, "min_requests": 2000}]
    s = spec(model, tmp_path / "r.db", "v2", "v2-regressed", steps)
    s["drain_s"] = 1  # the candidate's app is deleted this long after the rollback (10 s default)
    hook = Hook()  # people are told: a webhook receives the rollback
    s["notifiers"] = [{"kind": "log"}, {"kind": "webhook", "url": hook.url}]
    ro = rr.start(s, route_prefix=f"/{model}")
    with Load(f"{ray_serve.url}/{model}", model, X, y) as load:
        st = wait_phase(ro, {"rolled_back", "promoted"}, timeout_s=240)
        served_at_rollback = load.served["v2-regressed"]
        time.sleep(1.0)
    assert st["phase"] == "rolled_back" and st["weights"] == {"v2": 100.0}
    assert not load.failures, load.failures[:5]
    # After the routing-table push nothing more reached the candidate (a few in flight at most).
    assert load.served["v2-regressed"] - served_at_rollback <= 8
    last = ro.history()[-1]
    assert last["phase_to"] == "rolled_back" and "accuracy" in last["reason"]
    acc = next(r for r in last["evidence"]["v2-regressed"] if r["check"] == "accuracy")
    # FAIL latches when the running maximum of the evidence crosses the threshold; the evidence
    # at the end of that tick may be lower again (events after the crossing), so the maximum the
    # reason shows is what must have crossed
    crossed = re.search(r"\(max (-?[\d.]+|inf); threshold ([\d.]+)", acc["reason"])
    assert acc["verdict"] == "FAIL" and crossed is not None, acc["reason"]
    assert float(crossed[1]) >= float(crossed[2]), acc["reason"]
    assert crossed[2] == f"{np.log10(acc['threshold']):.2f}", acc["reason"]
    from ray import serve

    deadline = time.monotonic() + 30  # the candidate app is deleted drain_s after the push
    while f"{model}-v2-regressed" in serve.status().applications and time.monotonic() < deadline:
        time.sleep(0.5)
    assert f"{model}-v2-regressed" not in serve.status().applications
    assert f"{model}-v2" in serve.status().applications
    assert ro.replay()["identical"]
    deadline = time.monotonic() + 10
    while not hook.received and time.monotonic() < deadline:
        time.sleep(0.1)
    hook.server.shutdown()
    assert [e["phase"] for e in hook.received] == ["rolled_back"]
    assert "accuracy" in hook.received[0]["message"] and hook.received[0]["model"] == model
