"""``rayrollout.report.build`` on the status and decision log of real rollouts: the pure
controller driven through the in-memory ``FakeServePort`` with real judges on synthetic
traffic, its ``status()`` and ``history()`` passed through JSON as the admin API sends them.
No Ray, no browser (the integration test renders the page in Chromium)."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageStat

import rayrollout.client.api as rr
from rayrollout.errors import ConfigError
from rayrollout.report import ReportFiles, build
from rayrollout.report.data import extract
from rayrollout.report.inputs import parse
from tests.unit.controller.test_controller import MODEL, Cluster, start

HOSTILE = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)> & $\\frac{x}{0}$"
REPO = Path(__file__).resolve().parents[2]


def over_http(x: Any) -> Any:
    """What a client gets from the admin API: the value through strict JSON."""
    return json.loads(json.dumps(x, allow_nan=False))


class Page(HTMLParser):
    """The page's elements by id, its images, and every URL-bearing attribute."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.images: dict[str, tuple[str, str]] = {}  # id -> (alt, src)
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images[a.get("id", "")] = (a.get("alt", ""), a["src"])
        self.urls += [v for k, v in a.items() if k in ("src", "href", "action", "srcset")]


def png_of(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(src[len(prefix):], validate=True)))


def reddish(img: Image.Image) -> int:
    """Pixels of the threshold's red (#d62728, give or take antialiasing)."""
    a = np.asarray(img.convert("RGB")).astype(int)
    return int(((a[..., 0] > 180) & (a[..., 1] < 90) & (a[..., 2] < 90)).sum())


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    c = Cluster(tmp_path / "rollouts.db")
    yield c
    for controller in c.port.controllers.values():
        controller.store.close()


def rolled_back(cluster: Cluster) -> rr.Rollout:
    """A canary whose candidate starts failing a third of its requests: the errors check
    crosses its threshold and the rollout rolls back."""
    ro = start(cluster, strategy={"steps": [{"weight": 20, "min_requests": 10**6}]})
    assert cluster.run_until({"canary"}) == "canary"
    for _ in range(5):
        cluster.tick()
    cluster.err = {"v2": 0.3}
    assert cluster.run_until({"rolled_back"}) == "rolled_back"
    return ro


def test_a_rolled_back_rollout_is_reported_whole(cluster: Cluster, tmp_path: Path) -> None:
    ro = rolled_back(cluster)
    status, history = over_http(ro.status()), over_http(ro.history())
    files = build(status, history, tmp_path / "out", "report")
    assert files == ReportFiles(tmp_path / "out" / "report.html", tmp_path / "out" / "report.png")

    html = files.html.read_text(encoding="utf-8")
    page = Page(html)
    # self-contained: no script, every image inline, no URL to fetch
    assert "script" not in page.tags and "link" not in page.tags
    assert all(u.startswith("data:image/png;base64,") for u in page.urls), page.urls
    assert not re.search(r"(?i)\b(?:https?|ftp|file)://|//[a-z0-9.-]+\.[a-z]{2,}/", html)
    # one evidence plot per check, each with its threshold drawn in red
    checks = [r["check"] for r in status["checks"]["v2"]]
    assert checks == ["errors", "latency"]
    for i, check in enumerate(checks):
        alt, src = page.images[f"evidence-{i}"]
        assert check in alt
        img = png_of(src)
        assert img.width > 400 and img.height > 150
        assert reddish(img) > 200
    assert {"weights", "requests-plot"} <= set(page.images)
    # the decisions, each with its reason, and the facts
    for e in history:
        assert f"{e['phase_from']} → {e['phase_to']}" in html
        assert e["reason"].replace("<=", "&lt;=") in html
    assert "v2 failed errors" in html and "rolled_back (final)" in html

    png = Image.open(files.png)
    assert png.format == "PNG" and png.width >= 900 and png.height > 1000
    assert ImageStat.Stat(png.convert("L")).stddev[0] > 20  # drawn, not blank


def test_what_the_plots_show_is_what_the_log_and_status_say(cluster: Cluster) -> None:
    ro = rolled_back(cluster)
    status, history = over_http(ro.status()), over_http(ro.history())
    data = extract(*parse(status, history))
    start_t = history[0]["now"]
    assert data.start == start_t and data.end == status["now"] - start_t
    # weights: the stable alone, then each routing table a decision pushed, at its time
    pushed = [(e["now"] - start_t, a["weights"]) for e in history for a in e["actions"]
              if a["kind"] == "routes"]
    assert data.weights == [(0.0, {"v1": 100.0}), *pushed]
    assert data.weights[-1][1] == status["weights"] == {"v1": 100.0}
    assert [p for _, p in data.phases] == [e["phase_to"] for e in history]
    # evidence: a point per decision that carried the check, and one for now
    errors = next(s for s in data.evidence if s.check == "errors")
    assert errors.threshold == pytest.approx(math.log10(40.0))
    expected = [(e["now"] - start_t, r["log_e"] / math.log(10), r["verdict"])
                for e in history for r in e["evidence"].get("v2", []) if r["check"] == "errors"]
    now = next(r for r in status["checks"]["v2"] if r["check"] == "errors")
    expected.append((data.end, now["log10_e"], now["verdict"]))
    got = [(p.t, p.log10_e, p.verdict) for p in errors.points["v2"]]
    assert got == [(t, pytest.approx(x), v) for t, x, v in expected]
    assert errors.threshold is not None
    assert got[-1][2] == "FAIL" and got[-1][1] >= errors.threshold
    # requests: as the errors check counted them
    c = now["counts"]
    by = {r.version: r for r in data.requests}
    assert (by["v2"].served, by["v2"].failed) == (c["candidate"], c["bad_candidate"])
    assert (by["v1"].served, by["v1"].failed) == (c["baseline"], c["bad_baseline"])
    assert (by["v2"].failed or 0) > 0 and data.candidates == [("v2", "failed", by_reason(status))]


def by_reason(status: dict[str, Any]) -> str:
    return str(status["candidates"][0]["reason"])


def test_hostile_text_is_shown_escaped_never_interpreted(cluster: Cluster,
                                                          tmp_path: Path) -> None:
    ro = start(cluster, strategy={"steps": [{"weight": 20, "min_requests": 10**6}]})
    assert cluster.run_until({"canary"}) == "canary"
    cluster.tick()
    ro.abort(reason=HOSTILE)
    status, history = over_http(ro.status()), over_http(ro.history())
    assert any(HOSTILE in e["reason"] for e in history)
    # a check whose name is markup and a formula (the plots draw it as plain text)
    for e in [*history, {"evidence": status["checks"]}]:
        for rs in e["evidence"].values():
            for r in rs:
                r["check"] = HOSTILE if r["check"] == "errors" else r["check"]
    files = build(status, history, tmp_path, "hostile")
    html = files.html.read_text(encoding="utf-8")
    assert HOSTILE not in html and "<script" not in html and "<img src=x" not in html
    escaped = ("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&gt;&lt;img src=x "
               "onerror=alert(2)&gt; &amp; $\\frac{x}{0}$")
    assert escaped in html
    page = Page(html)
    assert "script" not in page.tags and set(page.tags) & {"iframe", "object", "embed"} == set()
    assert any(HOSTILE in alt for alt, _ in page.images.values())  # the attribute, unescaped


def test_a_rollout_that_has_just_started_has_a_report(cluster: Cluster, tmp_path: Path) -> None:
    ro = start(cluster)  # not one tick yet: pending, no decision, no check
    status, history = over_http(ro.status()), over_http(ro.history())
    assert status["phase"] == "pending" and history == [] and status["checks"] == {}
    html = build(status, history, tmp_path, "early").html.read_text(encoding="utf-8")
    assert "No decision is recorded yet." in html
    assert "No check has reported evidence yet." in html and "evidence-0" not in html
    assert "pending" in html
    # one tick later: deploying, a decision and still no evidence
    cluster.tick()
    files = build(over_http(ro.status()), over_http(ro.history()), tmp_path, "early")
    html = files.html.read_text(encoding="utf-8")
    assert "pending → deploying" in html and "No check has reported evidence yet." in html
    assert Image.open(files.png).format == "PNG"


def test_a_model_without_a_rollout_has_a_report(cluster: Cluster, tmp_path: Path) -> None:
    status = over_http(cluster.port.controller(MODEL).call("status"))
    assert status["phase"] == "none" and status["rollout"] is None
    files = build(status, [], tmp_path, "none")
    html = files.html.read_text(encoding="utf-8")
    assert "rollout -" in html and "No decision is recorded yet." in html
    assert Image.open(files.png).size[0] > 0


def test_several_candidates_each_have_their_line_and_counts(cluster: Cluster) -> None:
    ro = start(cluster, candidates=[
        {"name": n, "runtime": "onnx", "artifact": f"models/artifacts/{n}.onnx"}
        for n in ("v2", "v3")], strategy={"steps": [{"weight": 20, "min_requests": 300}]})
    assert cluster.run_until({"promoted", "awaiting_approval"}, ticks=200) in (
        "promoted", "awaiting_approval")
    data = extract(*parse(over_http(ro.status()), over_http(ro.history())))
    assert data.versions[:3] == ["v1", "v2", "v3"]
    for s in data.evidence:
        assert set(s.points) == {"v2", "v3"}
    served = {r.version: r.served for r in data.requests}
    assert set(served) == {"v1", "v2", "v3"} and all(n and n > 0 for n in served.values())


def test_bad_input_names_the_field(cluster: Cluster, tmp_path: Path) -> None:
    ro = rolled_back(cluster)
    status, history = over_http(ro.status()), over_http(ro.history())
    with pytest.raises(ConfigError, match=r"^status: expected the JSON object"):
        build([status], history, tmp_path, "x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^history: expected the JSON list"):
        build(status, {"entries": history}, tmp_path, "x")  # type: ignore[arg-type]
    bad = json.loads(json.dumps(history))
    bad[2]["evidence"]["v2"][0]["log_e"] = "lots"
    with pytest.raises(ConfigError, match=r"history\[2\]\.evidence\.v2\.0\.log_e: .*'lots'"):
        build(status, bad, tmp_path, "x")
    bad = [*history[:1], "not an entry"]
    with pytest.raises(ConfigError, match=r"history\[1\]: expected a decision log entry"):
        build(status, bad, tmp_path, "x")
    with pytest.raises(ConfigError, match=r"status\.weights\.v1: "):
        build({**status, "weights": {"v1": "all"}}, history, tmp_path, "x")
    for name in ("../up", "a/b", "", ".hidden", "-flag", "x" * 200):
        with pytest.raises(ConfigError, match=r"^name: "):
            build(status, history, tmp_path, name)
    assert list(tmp_path.glob("*.html")) == []  # nothing was written for a bad input


def test_extra_status_keys_are_ignored_and_waiting_for_is_shown(cluster: Cluster,
                                                               tmp_path: Path) -> None:
    ro = start(cluster, strategy={"steps": [{"weight": 20, "min_requests": 10**6}]})
    assert cluster.run_until({"canary"}) == "canary"
    cluster.tick()
    status = over_http(ro.status())
    assert status["step_need"] is not None
    status.pop("waiting_for", None)  # a controller that does not say: the step's need
    status["added_later"] = {"anything": [1, 2]}
    html = build(status, over_http(ro.history()), tmp_path, "w").html.read_text("utf-8")
    assert f"of {status['step_need']['requests']} candidate requests seen" in html
    # what explain.waiting_for lists, with the progress deadline
    status["waiting_for"] = [
        {"candidate": "v2", "check": "errors", "kind": "check", "holds": True,
         "text": "needs ~400 more candidate requests at the current rate (~2.0/s: ~200 s)"},
        {"candidate": None, "check": "step", "kind": "duration", "text": "<b>5 s</b> more"}]
    status["progress_deadline"] = {"deadline_s": 300, "left_s": 120.4}
    html = build(status, over_http(ro.history()), tmp_path, "w").html.read_text("utf-8")
    assert ("<li>v2.errors: needs ~400 more candidate requests at the current rate "
            "(~2.0/s: ~200 s)</li>") in html
    assert "<li>step: &lt;b&gt;5 s&lt;/b&gt; more</li>" in html
    assert "progress deadline 300 s: the rollout pauses in ~120 s if still held" in html


def test_importing_rayrollout_and_its_cli_needs_no_matplotlib() -> None:
    code = ("import sys, rayrollout, rayrollout.report, rayrollout.cli\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr


def test_without_matplotlib_the_error_names_the_extra(cluster: Cluster, tmp_path: Path) -> None:
    ro = start(cluster)
    args = json.dumps([over_http(ro.status()), over_http(ro.history())])
    code = ("import json, sys\n"
            "sys.modules['matplotlib'] = None  # as if it were not installed\n"
            "from rayrollout.report import ReportDependencyMissing, build\n"
            f"status, history = json.loads({args!r})\n"
            "try:\n"
            f"    build(status, history, {str(tmp_path / 'out')!r}, 'r')\n"
            "except ReportDependencyMissing as e:\n"
            "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "pip install 'rayrollout[report]'" in r.stdout and "matplotlib" in r.stdout
    assert not (tmp_path / "out").exists()
