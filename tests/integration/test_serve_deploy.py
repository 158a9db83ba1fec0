"""``serve deploy`` of a rollout config to a running Ray, as users (and KubeRay's serveConfigV2)
update Serve: re-deploying the config, or scaling its router in Serve's own config, starts no
rollout again; a config with a new candidate starts that candidate's rollout.

The cluster is a second Ray, started with ``ray start --head`` in a temporary directory on free
ports for this module alone, and driven only from outside: the ``serve`` CLI against its
dashboard, and the router's HTTP routes (inference, the admin API with a token). The pytest
session's own Ray is never touched. The cluster runs with token authentication and a token of
its own (``RAY_AUTH_TOKEN``), so the user's ``~/.ray/auth_token`` is neither read nor written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from rayrollout.names import ROUTER_DEPLOYMENT, router_app_name, version_app_name
from tests.conftest import ARTIFACTS, RAY_ENV, ROOT, TOKENS, auth, free_port

pytestmark = pytest.mark.integration

MODEL = "digits"
PREFIX = f"/{MODEL}"
ROUTER_APP = router_app_name(MODEL)


def cli(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"the {name} CLI is missing from the virtualenv"
    return path


def wait_for(what: str, ok: Callable[[], Any], timeout_s: float = 120,
             alive: Callable[[], None] = lambda: None) -> Any:
    """``ok()`` once it is truthy; fails naming ``what`` (and ``ok``'s last error) when the time
    is up. ``alive`` raises if what is waited on has died (no point waiting any longer)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        alive()
        try:
            got = ok()
            if got:
                return got
            last = got
        except (httpx.HTTPError, subprocess.SubprocessError, KeyError, TypeError,
                ValueError) as e:  # ValueError: a body that is not JSON yet
            last = e
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout_s:g} s (last: {last!r})")


@dataclass
class Cluster:
    """A Ray head started by ``ray start --block`` (session leader of its processes)."""

    proc: subprocess.Popen[bytes]
    temp_dir: Path
    dashboard: str
    http: str
    env: dict[str, str]

    def alive(self) -> None:
        if self.proc.poll() is not None:
            log = (self.temp_dir / "ray-start.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"ray start exited with {self.proc.returncode}:\n{log}")

    def serve(self, *args: str) -> str:
        out = subprocess.run([cli("serve"), *args, "-a", self.dashboard], env=self.env,
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, f"serve {args[0]} failed:\n{out.stdout}\n{out.stderr}"
        return out.stdout

    def deploy(self, config: dict[str, Any]) -> None:
        path = self.temp_dir / "serve.yaml"
        path.write_text(yaml.safe_dump(config))
        self.serve("deploy", str(path))

    def apps(self) -> dict[str, Any]:
        """``serve status``: application name -> its status document."""
        doc = yaml.safe_load(self.serve("status")) or {}
        return dict(doc.get("applications") or {})

    def admin(self, route: str) -> Any:
        r = httpx.get(f"{self.http}{PREFIX}/rollout/{route}", headers=auth(TOKENS.admin),
                      timeout=10)
        r.raise_for_status()
        return r.json()

    def status(self) -> dict[str, Any]:
        return dict(self.admin("status"))


def _start(temp_dir: Path) -> Cluster:
    ports = {k: free_port() for k in (
        "port", "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
        "runtime-env-agent-port", "metrics-export-port", "ray-client-server-port",
        "node-manager-port", "object-manager-port")}
    low = 20000 + 100 * secrets.randbelow(100)  # below the ephemeral range free_port() draws
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env.update(RAY_ENV, RAY_USAGE_STATS_ENABLED="0", RAY_SERVE_LOG_TO_STDERR="0",
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")  # SIGTERM stops at once
    cmd = [cli("ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", "--num-cpus=4",
           f"--min-worker-port={low}", f"--max-worker-port={low + 99}",
           f"--temp-dir={temp_dir}", *(f"--{k}={v}" for k, v in ports.items())]
    proc = subprocess.Popen(cmd, cwd=temp_dir, env=env, stdout=subprocess.DEVNULL,
                            stderr=(temp_dir / "ray-start.log").open("wb"),
                            start_new_session=True)
    return Cluster(proc, temp_dir, f"http://127.0.0.1:{ports['dashboard-port']}",
                   f"http://127.0.0.1:{free_port()}", env)


def _stop(c: Cluster) -> None:
    """SIGTERM to ``ray start --block``, which stops every process it started; then SIGKILL
    whatever is left of its process group and any process naming this cluster's temp dir."""
    if c.proc.poll() is None:
        c.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            c.proc.wait(60)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(c.proc.pid, signal.SIGKILL)  # its own session: none of ours
    c.proc.wait(10)
    for pid in _pids_naming(str(c.temp_dir)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _pids_naming(text: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text.encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    temp_dir = Path(tempfile.mkdtemp(prefix="rr-deploy-", dir="/tmp"))  # short: Ray's socket paths
    c = _start(temp_dir)
    try:
        # serve deploy talks to the dashboard's Serve REST API, after it checks the version
        # the dashboard reports: wait until both answer
        headers = auth(c.env["RAY_AUTH_TOKEN"])
        wait_for("the dashboard's Serve API", lambda: httpx.get(
            f"{c.dashboard}/api/serve/applications/", timeout=5,
            headers=headers).status_code == 200 and httpx.get(
            f"{c.dashboard}/api/version", timeout=5, headers=headers).json()["ray_version"],
            alive=c.alive)
        yield c
    finally:
        _stop(c)
        left = _pids_naming(str(temp_dir))
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"processes of the test's Ray survived: {left}"


def version(name: str) -> dict[str, Any]:
    return {"name": name, "runtime": "onnx", "artifact": str(ARTIFACTS / f"{name}.onnx")}


def config(c: Cluster, stable: str, candidate: str, routers: int | None = None
           ) -> dict[str, Any]:
    """A rollout config as users write it (configs/rollout-digits.yaml), small and quick."""
    app: dict[str, Any] = {
        "name": ROUTER_APP,
        "route_prefix": PREFIX,
        "import_path": "rayrollout.serving.app:build_rollout",
        "args": {
            "model": MODEL,
            "stable": version(stable),
            "candidates": [version(candidate)],
            "strategy": {"steps": [{"weight": 50, "min_requests": 20}]},
            "analysis": {"tick_s": 0.3,
                         "checks": [{"kind": "errors",
                                     "params": {"min_candidate_requests": 20}}]},
            # long enough that the promoted rollout is still promoted (and undoable) when
            # the next config comes: what a user sees between two deploys
            "rollback_window_s": 600,
            "drain_s": 0,
            "store_path": str(c.temp_dir / "rollouts.db"),
        },
    }
    if routers is not None:  # Serve's own override: the builder's args (the spec) are unchanged
        app["deployments"] = [{"name": ROUTER_DEPLOYMENT, "num_replicas": routers}]
    return {"http_options": {"host": "127.0.0.1", "port": int(c.http.rsplit(":", 1)[1])},
            "applications": [app]}


def rollouts(c: Cluster) -> list[int]:
    """Every rollout the decision log of the model holds."""
    return sorted({int(e["rollout"]) for e in c.admin("history?all=1")})


def same(st: dict[str, Any]) -> tuple[Any, ...]:
    """What a start that is a no-op leaves as it was."""
    return st["rollout"], st["phase"], st["stable"], st["epoch"], st["decisions"]


def running(c: Cluster, *names: str) -> dict[str, Any] | None:
    apps = c.apps()
    ok = all(apps.get(n, {}).get("status") == "RUNNING" for n in names)
    return apps if ok else None


def test_serve_deploy_starts_a_rollout_once_per_config(cluster: Cluster) -> None:
    c = cluster
    d = np.load(ROOT / "models" / "heldout.npz")
    rows = d["X"].astype(np.float32)

    # 1. the first deploy: the router starts the rollout of v2 over v1, traffic finishes it
    c.deploy(config(c, "v1", "v2"))
    # the router's replica starts the rollout; the controller deploys both versions
    st = wait_for("the rollout's first step", lambda: (s := c.status())["phase"] == "canary"
                  and s, alive=c.alive)
    first = st["rollout"]
    assert st["stable"] == "v1" and [x["name"] for x in st["candidates"]] == ["v2"]
    served: set[str] = set()

    def send_until_promoted() -> bool:
        for i in range(10):
            r = httpx.post(f"{c.http}{PREFIX}/v1/models/{MODEL}/predict", timeout=30,
                           json={"instances": [rows[i % len(rows)].tolist()]})
            assert r.status_code == 200, r.text
            served.add(r.headers["x-model-version"])
        return bool(c.status()["final"])

    wait_for("the rollout's outcome", send_until_promoted, alive=c.alive)
    done = c.status()
    assert done["phase"] == "promoted" and done["stable"] == "v2", done
    assert done["previous_stable"] == "v1" and served == {"v1", "v2"}
    apps = c.apps()  # every version is a Serve application of its own, next to the router
    assert {ROUTER_APP, version_app_name(MODEL, "v1"), version_app_name(MODEL, "v2")} <= set(apps)
    assert all(a["status"] == "RUNNING" for a in apps.values()), apps

    # 2. the same config again: Serve keeps the router as it is, no rollout starts again
    c.deploy(config(c, "v1", "v2"))
    assert same(c.status()) == same(done)
    assert rollouts(c) == [first]

    # 3. a config with a new candidate (v2 is stable now): its rollout starts
    c.deploy(config(c, "v2", "v3-mlp"))
    # (its first step: the controller deployed the candidate, the log has the rollout)
    st = wait_for("the new rollout", lambda: (s := c.status())["rollout"] != first
                  and s["phase"] == "canary" and s, alive=c.alive)
    assert st["rollout"] == first + 1 and st["stable"] == "v2"
    assert [x["name"] for x in st["candidates"]] == ["v3-mlp"]
    assert rollouts(c) == [first, first + 1]
    v1, v2, v3 = (version_app_name(MODEL, v) for v in ("v1", "v2", "v3-mlp"))
    wait_for("the candidate's application", lambda: running(c, ROUTER_APP, v2, v3),
             alive=c.alive)
    # the previous stable (v1, kept for undo) is retired when the next rollout starts
    wait_for("v1 retired", lambda: v1 not in c.apps(), alive=c.alive)

    # 4. a person rolls it back; then the same config with its router scaled by Serve's own
    # override (not the spec's router block: the builder's args, so the spec, are unchanged).
    # The new router replica asks to start the spec: a rollout that ran, rolled back, is not
    # started again by a config (only the retry verb does that)
    r = httpx.post(f"{c.http}{PREFIX}/rollout/abort", headers=auth(TOKENS.admin),
                   json={"reason": "test"}, timeout=30)
    assert r.status_code == 200 and r.json()["phase"] == "rolled_back", r.text
    aborted = c.status()
    c.deploy(config(c, "v2", "v3-mlp", routers=2))
    wait_for("two router replicas", lambda: (a := running(c, ROUTER_APP)) and a[ROUTER_APP][
        "deployments"][ROUTER_DEPLOYMENT]["replica_states"].get("RUNNING") == 2,
        alive=c.alive)
    for _ in range(20):  # both replicas serve (the new one has asked for its start meanwhile)
        r = httpx.post(f"{c.http}{PREFIX}/v1/models/{MODEL}/predict", timeout=30,
                       json={"instances": [rows[0].tolist()]})
        assert r.status_code == 200 and r.headers["x-model-version"] == "v2", r.text
    assert same(c.status()) == same(aborted)
    assert rollouts(c) == [first, first + 1]
