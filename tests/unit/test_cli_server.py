"""The ``rayrollout`` CLI against a real local admin HTTP server: the ingress's admin API
(``AdminAPI``, mounted at ``/rollout/<model>`` and ``/rollout`` as the router mounts it) served
by uvicorn on a free port, in front of a real ``RolloutController`` on the in-memory
``FakeServePort``. No Ray. The CLI talks to it over TCP, as it talks to an ingress."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from click.testing import CliRunner, Result
from starlette.applications import Starlette
from starlette.routing import Mount

import rayrollout.report
from rayrollout import cli
from rayrollout.report import ReportFiles
from tests.unit.controller.test_controller import MODEL
from tests.unit.ingress.test_admin import ALICE, Admin

TOKEN = ALICE  # the token "alice"

class Server:
    """The admin API of ``MODEL`` (``Admin`` of the in-process admin tests) on ``url``."""

    def __init__(self, store: Path) -> None:
        self.admin = Admin(store)
        http = self.admin.api.http
        app = Starlette(routes=[Mount(f"/rollout/{MODEL}", app=http), Mount("/rollout", app=http)])
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
        self.admin.client.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with Server(tmp_path / "rollouts.db") as s:
        yield s


def rr(server: Server, *argv: str) -> Result:
    """``rayrollout argv`` with the server's URL in ``RAYROLLOUT_URL`` and the token read from
    the environment variable ``OPS`` (``--token-env``)."""
    env = {"RAYROLLOUT_URL": server.url, "OPS": TOKEN, "RAYROLLOUT_TOKEN": ""}
    return CliRunner().invoke(cli.cli, ["--token-env", "OPS", *argv], env=env)


def started(server: Server, tmp_path: Path) -> dict[str, Any]:
    """A rollout started with ``rayrollout start``, in its first canary step, then paused."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(server.admin.spec))  # no store: over HTTP, the router's
    r = rr(server, "start", str(spec), "-o", "json")
    assert r.exit_code == 0, r.output
    server.admin.tick(3)
    r = rr(server, "pause", "--reason", "looking at it")
    assert r.exit_code == 0, r.output
    return dict(json.loads(rr(server, "status", "-o", "json").stdout))


def test_read_commands_against_the_real_admin_api(server: Server, tmp_path: Path) -> None:
    st = started(server, tmp_path)
    assert st["model"] == MODEL and st["phase"] == "paused" and st["rollout"] is not None
    hist = json.loads(rr(server, "history", "-o", "json").stdout)
    assert [h["phase_to"] for h in hist][-1] == "paused"
    assert hist[-1]["actor"] == "alice" and "looking at it" in hist[-1]["reason"]
    text = rr(server, "--model", MODEL, "history", "--limit", "1").stdout
    assert text.count("\n") == 1 and "canary -> paused" in text
    assert rr(server, "status").stdout.startswith(f"model {MODEL}  rollout #{st['rollout']}")
    v = rr(server, "verify", "-o", "json")
    assert v.exit_code == 0 and json.loads(v.stdout)["ok"] is True
    r = rr(server, "replay")
    assert r.exit_code == 0 and "identical to" in r.stdout


def test_errors_of_the_real_admin_api_are_one_line(server: Server, tmp_path: Path) -> None:
    r = rr(server, "status")  # no rollout yet: no controller
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"rayrollout status: 404: no rollout controller for model {MODEL!r}")
    started(server, tmp_path)
    r = CliRunner().invoke(cli.cli, ["--url", server.url, "--token", "wrong", "resume"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("rayrollout resume: 401: ") and "--token" in r.stderr
    r = rr(server, "approve")  # a paused rollout waits for no approval
    assert r.exit_code == 2 and r.stderr.startswith("rayrollout approve: 409: ")
    r = rr(server, "--model", "other", "report")
    assert r.exit_code == 2 and r.stderr.startswith("rayrollout report: 404: ")
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: the connection is refused
    try:
        r = CliRunner().invoke(cli.cli, ["--url", f"http://127.0.0.1:{dead.getsockname()[1]}",
                                         "status"])
    finally:
        dead.close()
    assert r.exit_code == 1 and r.stderr.startswith("rayrollout status: cannot reach http://")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.output


def test_report_passes_the_status_and_the_whole_log_to_build(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started(server, tmp_path)
    for _ in range(10):  # more decisions than history shows by default
        assert rr(server, "resume").exit_code == 0
        assert rr(server, "pause", "--reason", "looking at it").exit_code == 0
    st = json.loads(rr(server, "status", "-o", "json").stdout)
    calls: list[tuple[dict[str, Any], list[dict[str, Any]], Path, str]] = []

    def build(status: dict[str, Any], history: list[dict[str, Any]], out_dir: Path,
              name: str) -> ReportFiles:
        calls.append((status, history, out_dir, name))
        return ReportFiles(out_dir / f"{name}.html", out_dir / f"{name}.png")

    monkeypatch.setattr(rayrollout.report, "build", build)
    out = tmp_path / "reports"
    r = rr(server, "report", MODEL, "--out", str(out))
    assert r.exit_code == 0, r.output
    ((status, history, out_dir, name),) = calls
    assert out_dir == out and name == f"rollout-{MODEL}-{st['rollout']}"
    assert {k: v for k, v in status.items() if k not in ("now", "ticks")} == {
        k: v for k, v in st.items() if k not in ("now", "ticks")}
    full = json.loads(rr(server, "history", "--limit", "1000", "-o", "json").stdout)
    assert history == full and len(history) == st["decisions"] > 20  # all, not the last 20
    assert r.stdout == (f"report of {MODEL} rollout #{st['rollout']} (paused):\n"
                        f"  {out}/{name}.html\n  {out}/{name}.png\n")
    r = rr(server, "report", "--name", "incident-7", "-o", "json")  # the one model served
    assert json.loads(r.stdout) == {"model": MODEL, "rollout": st["rollout"],
                                    "html": "incident-7.html", "png": "incident-7.png"}
    assert calls[-1][2] == Path(".") and calls[-1][3] == "incident-7"


def test_report_writes_the_html_and_the_png(server: Server, tmp_path: Path) -> None:
    """The real ``rayrollout.report.build`` (matplotlib) on what the real admin API returns."""
    st = started(server, tmp_path)
    r = rr(server, "report", "--out", str(tmp_path / "r"), "-o", "json")
    assert r.exit_code == 0, r.output
    files = json.loads(r.stdout)
    html, png = Path(files["html"]), Path(files["png"])
    assert html.parent == png.parent == tmp_path / "r"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = html.read_text()
    assert MODEL in page and "looking at it" in page and f"#{st['rollout']}" in page
    r = rr(server, "report", "--name", "../escape")
    assert r.exit_code == 2 and r.stderr.startswith("rayrollout report: name: '../escape'")
