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
