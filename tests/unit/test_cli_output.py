"""What the CLI prints never carries terminal control from a server or a spec: escape
sequences, carriage returns, bells and bidi overrides are written as visible escapes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rich.console import Console

from rayrollout import cli
from rayrollout.cli.render import render_history, render_status, safe_text, status_line
from rayrollout.cli.watch import frame
from tests.unit.test_cli import STATUS, run, spec_doc

EVIL = "ok\x1b[2J\x1b]0;owned\x07\r\x08\u202egnp.exe\x9b31m\u2028"
UNSAFE = ("\x1b", "\x07", "\r", "\x08", "\u202e", "\x9b", "\u2028")


def clean(text: str) -> bool:
    return not any(c in text for c in UNSAFE)


def test_safe_text_escapes_control_and_format_characters_but_keeps_lines() -> None:
    out = safe_text(EVIL + "\nnext\tcol é 漢 🙂")
    assert clean(out)
    assert out == ("ok\\x1b[2J\\x1b]0;owned\\x07\\r\\x08\\u202egnp.exe\\x9b31m\\u2028"
                   "\nnext\tcol é 漢 🙂")


def evil_status() -> dict[str, Any]:
    st = copy.deepcopy(STATUS)
    st["candidates"][0]["reason"] = EVIL
    st["checks"]["v2"][0]["reason"] = EVIL
    st["weights"] = {EVIL: 100.0}
    st["phase"] = "canary" + EVIL
    return st


def test_rendered_status_history_and_status_line_are_clean() -> None:
    st = evil_status()
    for text in (render_status(st), status_line(st),
                 render_history([{"seq": 1, "actor": EVIL, "phase_from": "canary",
                                  "phase_to": "rolled_back", "reason": EVIL, "step": 0}])):
        assert clean(text) and "\\x1b[2J" in text


def serve(status: int, body: Any) -> Any:
    return lambda req: httpx.Response(status, json=body)


@pytest.mark.parametrize(("argv", "status", "body"), [
    (["status"], 200, evil_status()),
    (["status", "--watch", "--interval", "0"], 200, {**evil_status(), "final": True}),
    (["history"], 200, [{"seq": 1, "actor": EVIL, "reason": EVIL, "phase_from": "a",
                         "phase_to": "b", "step": 0}]),
    (["verify"], 200, {"ok": False, "message": EVIL}),
    (["pause"], 409, {"error": EVIL, "code": "illegal_transition"}),
    (["abort"], 200, evil_status()),
    (["report"], 200, {**evil_status(), "rollout": None, "model": EVIL}),
])
def test_the_cli_prints_nothing_raw_from_the_server(
    argv: list[str], status: int, body: Any
) -> None:
    r = run(argv, serve(status, body))
    assert clean(r.stdout) and clean(r.stderr) and "\\x1b" in r.stdout + r.stderr


def test_the_live_view_prints_nothing_raw_from_the_server() -> None:
    st = evil_status()
    st["waiting_for"] = [{"candidate": EVIL, "check": EVIL, "text": EVIL}]
    console = Console(record=True, width=200, force_terminal=True, color_system="standard")
    console.print(frame(st, [{"seq": 1, "actor": EVIL, "reason": EVIL, "phase_from": EVIL,
                              "phase_to": "rolled_back", "now": 0.0}], 1.0))
    text = console.export_text()
    assert clean(text) and text.count("\\x1b[2J") >= 5
    assert "[red]" not in console.export_text(styles=True)  # no markup read from the server
    markup = {**STATUS, "model": "[red]m[/red]"}
    console = Console(record=True, width=200)
    console.print(frame(markup))
    assert "[red]m[/red]" in console.export_text()


def test_validate_prints_nothing_raw_from_the_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad\x1b[2J\u202e.yaml"  # a file name is no safer than its contents
    bad.write_text(yaml.safe_dump(spec_doc(model=EVIL)))
    assert cli.main(["validate", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert clean(out) and clean(err) and "\\x1b[2J" in err
