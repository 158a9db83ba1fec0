"""The rollout report of a real rollout: v2 over v1 on the session's Ray Serve, judged on real
traffic, its status and decision log fetched over the admin API as ``rayrollout report`` does,
the report built, and the page rendered in a real headless Chromium. The screenshot is kept in
the test's folder (its path is printed): it must show the evidence plot, pixel for pixel."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from rayrollout.report import build
from tests.conftest import RayServe
from tests.integration.test_admin import ALICE, cleanup, rollout_spec
from tests.integration.test_status_page import chromium

pytestmark = pytest.mark.integration


def find(screen: np.ndarray, plot: np.ndarray) -> tuple[int, int] | None:
    """Where ``plot`` is drawn, unscaled, in ``screen`` (top, left), or None."""
    h, w = plot.shape[:2]
    r = int(np.argmax(plot.astype(float).std(axis=(1, 2))))  # its most varied row
    row = plot[r, ::4].astype(np.int16)  # every 4th pixel finds the candidates
    for x in range(screen.shape[1] - w + 1):
        strip = screen[:, x:x + w:4].astype(np.int16)
        for y in np.flatnonzero(np.abs(strip - row).mean(axis=(1, 2)) < 3.0):
            top = int(y) - r
            if 0 <= top <= screen.shape[0] - h:
                block = screen[top:top + h, x:x + w].astype(np.int16)
                if np.abs(block - plot.astype(np.int16)).mean() < 3.0:
                    return top, x
    return None


def test_report_of_a_real_rollout_renders_in_chromium(
    ray_serve: RayServe, heldout: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    import rayrollout.client.api as rr

    model = f"r{uuid.uuid4().hex[:8]}"
    spec = rollout_spec(model, tmp_path / "rollouts.db")
    spec["strategy"] = {"steps": [{"weight": 50, "min_requests": 60}]}
    spec["analysis"] = {"tick_s": 0.3, "checks": [
        {"kind": "errors", "params": {"min_candidate_requests": 30}}, {"kind": "latency"}]}
    X, _ = heldout
    admin = {"Authorization": f"Bearer {ALICE}"}
    try:
        ro = rr.start(spec)
        ro.wait({"canary"}, timeout_s=60)
        with httpx.Client(base_url=ray_serve.url, timeout=60) as c:
            # traffic until the step is judged and passed (or 25 s: a running rollout's
            # report is as good a test, as long as the checks have evidence)
            deadline = time.monotonic() + 25
            status: dict[str, Any] = {}
            i = 0
            while time.monotonic() < deadline:
                for _ in range(20):
                    row = X[i % len(X)][None, :].tolist()
                    c.post(f"/v1/models/{model}/predict", json={"instances": row})
                    i += 1
                status = c.get(f"/rollout/{model}/status", headers=admin).json()
                if status["phase"] in ("promoted", "completed"):
                    break
            status = c.get(f"/rollout/{model}/status", headers=admin).json()
            history = c.get(f"/rollout/{model}/history", headers=admin).json()
    finally:
        cleanup(model)
    print(f"\nreported rollout: phase {status['phase']} after {i} requests, "
          f"{len(history)} decisions")
    assert status["phase"] in ("canary", "promoted", "completed"), status["phase"]
    assert [r["log_e"] is not None for r in status["checks"]["v2"]] == [True, True]

    files = build(status, history, tmp_path / "report", model)
    html = files.html.read_text(encoding="utf-8")
    assert 'id="evidence-0" alt="evidence of check errors' in html
    assert 'id="evidence-1" alt="evidence of check latency' in html
    assert html.count('src="data:image/png;base64,') == 4  # weights, 2 checks, requests
    assert "pending → deploying" in html and "deploying → canary" in html

    shot = tmp_path / "report_screenshot.png"
    r = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,4000",
                 "--force-device-scale-factor=1", "--hide-scrollbars", files.html.as_uri())
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    print(f"report screenshot: {shot}")
    screen = np.asarray(Image.open(shot).convert("RGB"))
    assert screen.shape[1] == 1200 and screen.shape[0] >= 2000
    # the first evidence plot (errors) is on screen, as drawn, and it is not blank: the
    # candidate's line, the markers and the red rollback threshold
    import base64
    import io
    import re

    m = re.search(r'id="evidence-0" alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)
    assert m is not None
    plot = np.asarray(Image.open(io.BytesIO(base64.b64decode(m.group(1)))).convert("RGB"))
    where = find(screen, plot)
    assert where is not None, "the evidence plot is not in the screenshot"
    top, left = where
    region = screen[top:top + plot.shape[0], left:left + plot.shape[1]]
    assert region.std() > 20
    red = (region[..., 0] > 180) & (region[..., 1] < 90) & (region[..., 2] < 90)
    assert red.sum() > 200  # the threshold line
