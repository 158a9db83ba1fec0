"""The live view of ``rayrollout status`` on a terminal: one frame rendered to a string with
rich's recording console, the redraw loop against a fake admin API, and the one-shot status on
a terminal."""

from __future__ import annotations

import importlib
import io
from typing import Any

import httpx
import pytest
from rich.console import Console

from rayrollout.cli.watch import DECISIONS, evidence_bar, frame, watch
from rayrollout.client.admin import AdminClient
from tests.unit.test_cli import STATUS, run

cli_main = importlib.import_module("rayrollout.cli.main")  # the module (``cli.main``: the function)
WAITING = "needs ~400 more candidate requests at the current rate (~2.0/s: ~200 s)"


def decisions(n: int) -> list[dict[str, Any]]:
    return [{"seq": i, "now": 1000.0 + i, "actor": "controller", "phase_from": "shadow",
             "phase_to": "canary", "step": 0, "epoch": i, "reason": f"decision number {i}"}
            for i in range(1, n + 1)]


def render(renderable: Any, styles: bool = False) -> str:
    console = Console(record=True, width=160, force_terminal=True, color_system="standard")
    console.print(renderable)
    return console.export_text(styles=styles)


def test_a_frame_shows_phase_step_weights_checks_waiting_and_last_decisions() -> None:
    st = {**STATUS, "waiting_for": [{"candidate": "v2", "check": "errors", "text": WAITING}],
          "progress_deadline": {"deadline_s": 300.0, "holding_since": 100.0, "left_s": 288.0},
          "step_need": {"requests": 1901, "seen": 42, "to_catch": "errors x3",
                        "rate_per_s": 1.0, "eta_s": 1859.0}}
    text = render(frame(st, decisions(8), interval=2.0))
    lines = text.splitlines()
    assert any("digits" in ln and "rollout #3 (attempt 1)" in ln for ln in lines)
    assert any("CANARY for 12 s" in ln for ln in lines)
    assert any("1/2 (20% per candidate)  epoch 7" in ln for ln in lines)
    assert any("v1 80%  v2 20%" in ln for ln in lines)
    assert "42 of 1,901 needed (to catch errors x3; about 1859 s to go)" in text
    errors = next(ln for ln in lines if " errors " in ln and "INCONCLUSIVE" in ln)
    # the evidence, the threshold it fails at, and how far it has come (10^1 of 10^2: half)
    assert "10^1.00" in errors and "10^2.00" in errors and "▰▰▰▰▰▱▱▱▱▱" in errors
    assert "error_rate_diff=0.001" in errors
    latency = next(ln for ln in lines if " latency " in ln)
    assert "FAIL" in latency and "10^inf" in latency and "▰" * 10 in latency
    assert "v2.errors" in text and WAITING in text
    assert "progress deadline 300 s: 288 s left" in text
    shown = [n for n in range(1, 9) if f"decision number {n}" in text]
    assert shown == list(range(9 - DECISIONS, 9))  # the newest, oldest first
    assert "verbs now: pause, promote, abort" in text and "refreshing every 2 s" in text


def test_verdicts_and_phases_have_their_colours() -> None:
    checks = [{**STATUS["checks"]["v2"][0], "check": c, "verdict": v}
              for c, v in (("a", "PASS"), ("b", "INCONCLUSIVE"), ("c", "ERROR"), ("d", "FAIL"))]
    text = render(frame({**STATUS, "phase": "rolled_back", "checks": {"v2": checks}}),
                  styles=True)
    assert "\x1b[32mPASS" in text  # green
    assert "\x1b[33mINCONCLUSIVE" in text  # yellow
    assert "\x1b[35mERROR" in text  # magenta
    assert "\x1b[1;31mFAIL" in text  # bold red
    assert "\x1b[1;31mROLLED_BACK" in text
    plain = render(frame({**STATUS, "phase": "rolled_back", "checks": {"v2": checks}}))
    assert "\x1b" not in plain and "ROLLED_BACK" in plain


def test_a_frame_without_a_rollout_or_checks() -> None:
    assert render(frame({"model": "m", "phase": "none", "rollout": None})).strip() == (
        "model m: no rollout")
    text = render(frame({**STATUS, "phase": "deploying", "step": -1, "checks": {},
                         "final": True}, [], interval=1.0))
    assert "DEPLOYING" in text and "-/2" in text
    assert "checks" not in text and "last decisions" not in text
    assert "refreshing" not in text  # the outcome is known: nothing more to refresh


@pytest.mark.parametrize(("e", "th", "bar"), [
    (1.0, 2.0, "▰▰▰▰▰▱▱▱▱▱"), (-3.0, 2.0, "▱" * 10), (5.0, 2.0, "▰" * 10),
    ("inf", 2.0, "▰" * 10), ("-inf", 2.0, ""), (None, 2.0, ""), (1.0, None, ""), (1.0, 0, ""),
])
def test_evidence_bar(e: Any, th: Any, bar: str) -> None:
    assert evidence_bar(e, th) == bar


class Api:
    """A fake admin API whose status walks through ``phases``; counts the history calls."""

    def __init__(self, phases: list[str]) -> None:
        self.phases = iter(phases)
        self.history_calls = 0
        self.decisions = 0

    def __call__(self, req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("/history"):
            self.history_calls += 1
            assert req.url.params["limit"] == str(DECISIONS)
            return httpx.Response(200, json=decisions(self.decisions)[-DECISIONS:])
        phase = next(self.phases)
        if phase != "canary":  # a new decision for each new phase, none while in canary
            self.decisions += 1
        return httpx.Response(200, json={**STATUS, "phase": phase, "decisions": self.decisions,
                                         "final": phase in ("promoted", "rolled_back")})


@pytest.mark.parametrize(("final", "code"), [("promoted", 0), ("rolled_back", 3)])
def test_watch_redraws_in_place_until_the_outcome(final: str, code: int) -> None:
    api = Api(["deploying", "canary", "canary", "canary", final, "never-reached"])
    console = Console(record=True, width=160, force_terminal=True, file=io.StringIO())
    slept: list[float] = []
    with AdminClient("http://router", "tok", httpx.MockTransport(api)) as c:
        assert watch(c, 0.5, console, sleep=slept.append) == code
    assert slept == [0.5] * 4
    assert api.history_calls == 2  # only when the status counts a new decision
    text = console.export_text()
    assert final.upper() in text and "decision number 2" in text


def test_status_on_a_terminal_is_the_rich_view(monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(record=True, width=160, force_terminal=True, file=io.StringIO())
    monkeypatch.setattr(cli_main, "_stdout_is_terminal", lambda: True)
    monkeypatch.setattr(cli_main, "_console", lambda: console)
    api = Api(["canary"])
    api.decisions = 3
    r = run(["status"], api)
    assert r.exit_code == 0 and r.stdout == ""  # all of it on the console
    text = console.export_text()
    assert "CANARY" in text and "last decisions" in text and "decision number 3" in text
    assert "refreshing" not in text
    r = run(["status", "-o", "json"], Api(["canary"]))  # JSON stays JSON on a terminal
    assert r.stdout.startswith("{") and console.export_text() == ""


def test_watch_on_a_terminal_uses_the_live_view(monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(record=True, width=160, force_terminal=True, file=io.StringIO())
    monkeypatch.setattr(cli_main, "_stdout_is_terminal", lambda: True)
    monkeypatch.setattr(cli_main, "_console", lambda: console)
    r = run(["status", "--watch", "--interval", "0"], Api(["canary", "rolled_back"]))
    assert r.exit_code == 3
    assert "ROLLED_BACK" in console.export_text()
