"""``serve run configs/<file>.yaml`` from outside the checkout, on its own fresh local Ray."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.integration

ROW = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12,
       0, 0, 8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0,
       0, 0, 0, 6, 13, 10, 0, 0, 0]


def serve_run(config: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    serve = shutil.which("serve", path=str(Path(sys.executable).parent))
    assert serve, "the serve CLI is missing from the virtualenv"
    return subprocess.Popen(
        [serve, "run", "-a", "local", str(config)],
        cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
        stderr=(cwd / "serve.log").open("wb"), start_new_session=True,
    )


def wait_ok(url: str, method: str = "GET", timeout_s: float = 150, **kw: Any) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    last: httpx.Response | Exception | None = None
    while time.monotonic() < deadline:
        try:
            r = httpx.request(method, url, timeout=5, **kw)
            if r.status_code == 200:
                return r
            last = r
        except httpx.HTTPError as e:
            last = e
        time.sleep(1)
    raise AssertionError(f"{url} never answered 200: {last!r}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does; serve run shuts its Ray down
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.mark.parametrize("name", ["digits.yaml", "rollout-digits.yaml"])
def test_serve_run_a_config_from_the_repository(name: str, tmp_path: Path) -> None:
    port = free_port()
    doc = yaml.safe_load((ROOT / "configs" / name).read_text())
    doc["http_options"]["port"] = port
    rollout = doc["applications"][-1]["import_path"].endswith(":build_rollout")
    assert doc["applications"][-1]["name"] == "rayrollout"  # the one ingress of every model
    if rollout:
        doc["applications"][-1]["args"]["store_path"] = str(tmp_path / "rollouts.db")
    config = tmp_path / name
    config.write_text(yaml.safe_dump(doc))
    proc = serve_run(config, tmp_path, {"RAYROLLOUT_ADMIN_TOKENS": "ops:t0ken"})
    base = f"http://127.0.0.1:{port}"
    try:
        r = wait_ok(f"{base}/v1/models/digits/predict", method="POST",
                    json={"instances": [ROW]})
        assert r.json()["predictions"] == [0]
        assert r.headers["x-model-version"] == "v1" or not rollout
        if rollout:  # the router started the controller, which deployed the candidate
            # /rollout/...: the admin API of the one model served (/rollout/digits/... too)
            st = wait_ok(f"{base}/rollout/status", headers={"authorization": "Bearer t0ken"})
            assert st.json()["rollout"] == 1
            deadline = time.monotonic() + 120
            while st.json()["phase"] in ("pending", "deploying") and time.monotonic() < deadline:
                time.sleep(1)
                st = httpx.get(f"{base}/rollout/status", headers={"authorization": "Bearer t0ken"})
            assert st.json()["phase"] == "shadow" and st.json()["shadow"] == "v2"
        else:
            versions = httpx.get(f"{base}/v1/models").json()["models"][0]["versions"]
            assert {v["name"] for v in versions} == {"v1", "v2", "v2-torch"}
    finally:
        stop(proc)
    assert proc.returncode is not None


def replica_pids(marker: str) -> list[int]:
    """The ingress replicas of the Ray that ``serve run`` started with ``marker`` in its
    environment (its workers inherit it), not of any other Ray on this machine."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            if b"ServeReplica:rayrollout:Router" not in cmdline:
                continue
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours
            continue
        if f"RAYROLLOUT_TEST_MARK={marker}".encode() in env:
            pids.append(int(proc.name))
    return pids


def status(base: str, model: str) -> dict[str, Any]:
    r = httpx.get(f"{base}/rollout/{model}/status", headers=TOKEN, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


TOKEN = {"authorization": "Bearer t0ken"}


def test_serve_run_two_models_on_one_port(tmp_path: Path) -> None:
    """``serve run configs/rollout-two-models.yaml``: a standard OIP client gets answers from
    both models on one port while one of them is rolled back; then the ingress replica is
    killed, and the new one serves each model's current epoch from its first request and does
    not start the rolled-back rollout again."""
    import numpy as np
    import tritonclient.http as tc

    port = free_port()
    doc = yaml.safe_load((ROOT / "configs" / "rollout-two-models.yaml").read_text())
    doc["http_options"]["port"] = port
    for i, ro in enumerate(doc["applications"][0]["args"]["rollouts"]):
        ro["store_path"] = str(tmp_path / f"rollouts-{i}.db")
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump(doc))
    marker = os.urandom(8).hex()
    proc = serve_run(config, tmp_path, {"RAYROLLOUT_ADMIN_TOKENS": "ops:t0ken",
                                        "RAYROLLOUT_TEST_MARK": marker})
    base, host = f"http://127.0.0.1:{port}", f"127.0.0.1:{port}"
    x = np.asarray([ROW], dtype=np.float32)
    try:
        for model in ("digits", "mlp"):
            wait_ok(f"{base}/v1/models/{model}/predict", method="POST", json={"instances": [ROW]})
            deadline = time.monotonic() + 120
            while status(base, model)["phase"] != "canary":
                assert time.monotonic() < deadline, status(base, model)
                time.sleep(1)
        client = tc.InferenceServerClient(host)
        assert client.is_server_live() and client.is_server_ready()
        answers: list[tuple[str, str, int]] = []

        def ask(n: int) -> None:
            for i in range(n):
                model = ("digits", "mlp")[i % 2]
                inp = tc.InferInput("input", [1, 64], "FP32")
                inp.set_data_from_numpy(x)
                res = client.infer(model, [inp])  # raises on any failure
                answers.append((model, res.get_response()["model_version"],
                                int(res.as_numpy("label")[0])))

        ask(40)
        r = httpx.post(f"{base}/rollout/digits/abort", headers=TOKEN,
                       json={"reason": "the test"}, timeout=30)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        while status(base, "digits")["phase"] != "rolled_back":
            assert time.monotonic() < deadline
            ask(2)
        mark = len(answers)
        ask(40)
        assert {label for _, _, label in answers} == {0}  # every version reads the row as 0
        assert {v for m, v, _ in answers[mark:] if m == "digits"} == {"v1"}
        assert {m for m, _, _ in answers[mark:]} == {"digits", "mlp"}
        st = {m: status(base, m) for m in ("digits", "mlp")}
        assert st["mlp"]["phase"] in ("canary", "awaiting_approval", "promoted", "completed")
        client.close()

        victims = replica_pids(marker)
        assert len(victims) == 1, victims
        os.kill(victims[0], signal.SIGKILL)
        first: dict[str, str] = {}
        deadline = time.monotonic() + 120
        while len(first) < 2:
            assert time.monotonic() < deadline, "the ingress did not come back"
            for m in ("digits", "mlp"):
                try:
                    r = httpx.post(f"{base}/v1/models/{m}/predict", json={"instances": [ROW]},
                                   timeout=10)
                except httpx.HTTPError:
                    continue
                if r.status_code == 200 and m not in first:
                    first[m] = r.headers["x-routing-epoch"]
            time.sleep(0.2)
        assert replica_pids(marker) != victims
        now = {m: status(base, m) for m in ("digits", "mlp")}
        assert first["digits"] == str(now["digits"]["epoch"]) == str(st["digits"]["epoch"])
        assert first["mlp"] == str(now["mlp"]["epoch"])
        # the rolled-back rollout was not started again by the new replica
        time.sleep(2)
        again = status(base, "digits")
        assert again["phase"] == "rolled_back" and again["rollout"] == st["digits"]["rollout"]
    finally:
        stop(proc)
    assert proc.returncode is not None
