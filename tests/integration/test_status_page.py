"""The status page in a real headless Chromium, against a real router and rollout: the page
polls the admin API with the token from the URL fragment and renders phase, steps, checks and
the decision log."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import RayServe
from tests.integration.test_admin import ALICE, cleanup, rollout_spec

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"


@dataclass
class Page:
    model: str
    url: str  # the page, without a token
    status: dict[str, Any]


@pytest.fixture(scope="module")
def page(
    ray_serve: RayServe,
    tmp_path_factory: pytest.TempPathFactory,
    heldout: tuple[np.ndarray, np.ndarray],
) -> Iterator[Page]:
    """A rollout in its first canary step with some traffic judged; the page at the model's
    admin path on the shared ingress (``/rollout/<model>``)."""
    import rayrollout.client.api as rr

    model = f"p{uuid.uuid4().hex[:8]}"
    spec = rollout_spec(model, tmp_path_factory.mktemp("page") / "rollouts.db")
    base = ray_serve.url
    X, _ = heldout
    try:
        ro = rr.start(spec)
        ro.wait({"canary"}, timeout_s=60)
        with httpx.Client(base_url=base, timeout=60) as c:
            for i in range(120):
                row = X[i % len(X)][None, :].tolist()
                c.post(f"/v1/models/{model}/predict", json={"instances": row})
        deadline = time.monotonic() + 30
        st = ro.status()
        while not st["checks"].get("v2") and time.monotonic() < deadline:
            time.sleep(0.3)
            st = ro.status()
        assert st["checks"].get("v2"), st
        yield Page(model, f"{base}/rollout/{model}", st)
    finally:
        cleanup(model)


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is not installed: run scripts/setup.sh (Debian package chromium)")
    profile = tmp / f"profile-{uuid.uuid4().hex[:6]}"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        "--virtual-time-budget=5000", *args,
    ]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def dump_dom(tmp: Path, url: str) -> str:
    r = chromium(tmp, "--dump-dom", url)
    assert r.returncode == 0 and "<html" in r.stdout, r.stderr[-2000:]
    return r.stdout


def text_of(dom: str, element_id: str) -> str:
    """The text inside the element with ``element_id`` (tags stripped)."""
    import re

    start = dom.index(f'id="{element_id}"')
    end = dom.index(">", start) + 1
    depth, i = 1, end
    tag = dom[dom.rindex("<", 0, start) + 1 :].split()[0]
    while depth:  # find the matching close tag of the same name
        nxt_open = dom.find(f"<{tag}", i)
        nxt_close = dom.find(f"</{tag}>", i)
        if nxt_open != -1 and nxt_open < nxt_close:
            depth, i = depth + 1, nxt_open + 1
        else:
            depth, i = depth - 1, nxt_close + 1
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom[end : i - 1])).strip()


def test_page_renders_the_live_rollout(page: Page, tmp_path: Path) -> None:
    dom = dump_dom(tmp_path, f"{page.url}#token={ALICE}")
    assert text_of(dom, "phase") == "canary"
    assert text_of(dom, "model") == page.model
    facts = text_of(dom, "facts")
    assert "Step 1 / 2" in facts and "10% per candidate" in facts
    assert "v1 90%" in text_of(dom, "weights") and "v2 10%" in text_of(dom, "weights")
    checks = text_of(dom, "checks")
    assert "v2 vs v1" in checks
    for r in page.status["checks"]["v2"]:
        assert r["check"] in checks
    assert "INCONCLUSIVE" in checks or "PASS" in checks
    log = text_of(dom, "log")
    assert "pending → deploying" in log and "controller" in log
    assert text_of(dom, "banner") == ""  # no error shown
    # one button per verb the admin API serves, enabled as the status's allowed_verbs say:
    # a canary can be paused, not resumed
    import re

    from rayrollout.controller.phases import VERBS

    buttons = dict(re.findall(r'<button data-verb="(\w+)"([^>]*)>', dom))
    assert list(buttons) == list(VERBS)
    enabled = [v for v, attrs in buttons.items() if "disabled" not in attrs]
    assert enabled == page.status["allowed_verbs"] == ["pause", "promote", "abort"]


def test_page_without_a_token_asks_for_one(page: Page, tmp_path: Path) -> None:
    dom = dump_dom(tmp_path, page.url)
    assert 'id="login" style="display: flex;"' in dom
    assert text_of(dom, "phase") == "…"  # no data was shown
    dom = dump_dom(tmp_path, f"{page.url}#token=wrong")
    assert 'id="login" style="display: flex;"' in dom
    assert "invalid token" in text_of(dom, "loginmsg")


def test_screenshot_is_rendered(page: Page, tmp_path: Path) -> None:
    shot = tmp_path / "status_page.png"
    r = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1500",
                 "--hide-scrollbars", f"{page.url}#token={ALICE}")
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # not a blank page
    keep = os.environ.get("RAYROLLOUT_SCREENSHOT")
    if keep:  # look at it: RAYROLLOUT_SCREENSHOT=/tmp/page.png pytest ...
        shutil.copy(shot, keep)


def test_buttons_steer_the_rollout(page: Page, tmp_path: Path) -> None:
    """The page's Pause button, clicked in the browser (DevTools protocol), POSTs the verb with
    the token: the rollout pauses and the log names the token's owner."""
    profile = tmp_path / "profile-click"
    proc = subprocess.Popen(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--remote-debugging-port=0", "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        result = _click_pause(_devtools_url(proc), f"{page.url}#token={ALICE}")
        assert "pause: now paused" in result, result
        with httpx.Client(base_url=page.url, timeout=30,
                          headers={"Authorization": f"Bearer {ALICE}"}) as c:
            assert c.get("status").json()["phase"] == "paused"
            (last,) = c.get("history", params={"limit": 1}).json()
            assert last["actor"] == "alice"
            assert c.post("resume").json()["phase"] == "canary"
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "DevTools listening on" in line:
                return

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(60)
    for line in lines:
        if "DevTools listening on" in line:
            return line.split("on ", 1)[1].strip()
    pytest.fail("chromium did not open its DevTools port: " + "".join(lines)[-2000:])


def _click_pause(browser_ws: str, url: str) -> str:
    """Open ``url`` in a new tab, wait for the data, click Pause, return the message shown."""
    import asyncio
    import json

    import websockets

    async def go() -> str:
        async with websockets.connect(browser_ws, max_size=2**24) as ws:
            ids = iter(range(1, 10_000))

            async def call(method: str, params: dict[str, Any] | None = None,
                           session: str | None = None) -> dict[str, Any]:
                i = next(ids)
                msg: dict[str, Any] = {"id": i, "method": method, "params": params or {}}
                if session:
                    msg["sessionId"] = session
                await ws.send(json.dumps(msg))
                while True:
                    reply = json.loads(await ws.recv())
                    if reply.get("id") == i:
                        assert "error" not in reply, reply
                        return dict(reply.get("result", {}))

            target = (await call("Target.createTarget", {"url": url}))["targetId"]
            session = (await call("Target.attachToTarget",
                                  {"targetId": target, "flatten": True}))["sessionId"]

            async def js(expr: str) -> Any:
                r = await call("Runtime.evaluate",
                               {"expression": expr, "returnByValue": True}, session)
                return r["result"].get("value")

            deadline = time.monotonic() + 30
            button = 'document.querySelector("button[data-verb=pause]")'
            while not await js(f"{button} && !{button}.disabled"):
                assert time.monotonic() < deadline, await js("document.body.innerText")
                await asyncio.sleep(0.2)
            await js(f"{button}.click()")
            while "now" not in (await js('document.getElementById("msg").textContent') or ""):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            return str(await js('document.getElementById("msg").textContent'))

    return asyncio.run(go())
