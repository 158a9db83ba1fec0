"""The ``rayrollout`` CLI without a server: parsing and usage errors, validate, rendering, and
HTTP handling against a fake transport, run through click's ``CliRunner``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

from rayrollout import cli
from rayrollout.cli.main import Settings
from tests.conftest import ROOT


def spec_doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": "digits",
        "stable": {"name": "v1", "runtime": "onnx", "artifact": "models/artifacts/v1.onnx"},
        "candidates": [{"name": "v2", "runtime": "onnx", "artifact": "models/artifacts/v2.onnx"}],
        "strategy": {"steps": [{"weight": 20}, {"weight": 50}]},
    }
    doc.update(over)
    return doc


STATUS: dict[str, Any] = {
    "model": "digits",
    "rollout": 3,
    "attempt": 1,
    "phase": "canary",
    "step": 0,
    "steps": [{"weight": 20.0, "min_requests": 100}, {"weight": 50.0, "min_requests": 100}],
    "epoch": 7,
    "weights": {"v1": 80.0, "v2": 20.0},
    "shadow": None,
    "shadow_fraction": 0.0,
    "stable": "v1",
    "previous_stable": None,
    "candidates": [{"name": "v2", "status": "active", "reason": ""}],
    "phase_since": 100.0,
    "now": 112.0,
    "step_requests": 42,
    "shadow_compared": 0,
    "final": False,
    "allowed_verbs": ["pause", "promote", "abort"],
    "checks": {
        "v2": [
            {
                "check": "errors",
                "verdict": "INCONCLUSIVE",
                "statistic": "error_rate_diff",
                "value": 0.001,
                "log_e": 2.302585092994046,  # e = 10
                "threshold": 100.0,
                "log10_e": 1.0,
                "log10_threshold": 2.0,
                "ci": None,
                "counts": {"baseline": 170.0, "candidate": 42.0},
                "reason": "42 of 50 candidate requests",
                "warning": False,
            },
            {
                "check": "latency",
                "verdict": "FAIL",
                "statistic": "p_slower",
                "value": 0.9,
                "log_e": "inf",
                "threshold": 100.0,
                "log10_e": "inf",
                "log10_threshold": 2.0,
                "counts": {},
                "reason": "candidate slower",
            },
        ]
    },
}


def write(tmp_path: Path, doc: Any, name: str = "f.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc))
    return p


# -- parsing -----------------------------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def invoke(argv: list[str], handler: Handler | None = None,
           env: dict[str, str] | None = None) -> Result:
    """``rayrollout argv`` in click's runner (stdout is not a terminal), its HTTP calls answered
    by ``handler``."""
    transport = httpx.MockTransport(handler) if handler is not None else None
    return CliRunner().invoke(cli.cli, argv, obj=Settings(transport), env=env)


def run(argv: list[str], handler: Handler) -> Result:
    """``invoke`` with ``--url http://router --token tok``."""
    return invoke(["--url", "http://router", "--token", "tok", *argv], handler)


def recorder(body: Any = None, status: int = 200) -> tuple[list[httpx.Request], Handler]:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(status, json=STATUS if body is None else body)

    return seen, handler


def test_global_options_default_from_the_environment() -> None:
    seen, handler = recorder()
    env = {"RAYROLLOUT_URL": "http://router:9000/digits", "RAYROLLOUT_TOKEN": "s3cret"}
    assert invoke(["status"], handler, env).exit_code == 0
    assert str(seen[-1].url) == "http://router:9000/digits/rollout/status"
    assert seen[-1].headers["authorization"] == "Bearer s3cret"
    # a command's own --url / --model / --token-env win over the group's and the environment's
    r = invoke(["status", "--url", "http://x:1", "--model", "mlp", "--token-env", "MY_TOKEN"],
               handler, {**env, "MY_TOKEN": "t2"})
    assert r.exit_code == 0, r.output
    assert str(seen[-1].url) == "http://x:1/rollout/mlp/status"
    assert seen[-1].headers["authorization"] == "Bearer t2"
    r = invoke(["--token-env", "MY_TOKEN", "verify"], handler, {"MY_TOKEN": "t3"})
    assert seen[-1].headers["authorization"] == "Bearer t3"
    assert str(seen[-1].url) == cli.DEFAULT_URL + "/rollout/verify"
    invoke(["status"], handler, {"RAYROLLOUT_URL": "", "RAYROLLOUT_TOKEN": ""})
    assert "authorization" not in seen[-1].headers  # no token: none sent


def test_parse_args_resolves_the_group_and_command_options(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYROLLOUT_URL", "http://router:9000/digits")
    monkeypatch.setenv("RAYROLLOUT_TOKEN", "s3cret")
    args = cli.parse_args(["status"])
    assert (args.cmd, args.url, args.token, args.watch, args.as_json, args.output) == (
        "status", "http://router:9000/digits", "s3cret", False, False, "text")
    monkeypatch.delenv("RAYROLLOUT_URL")
    args = cli.parse_args(["status", "--url", "http://x", "--watch", "--interval", "0.5", "-o",
                           "json"])
    assert (args.url, args.watch, args.interval, args.output) == ("http://x", True, 0.5, "json")
    assert cli.parse_args(["verify"]).url == cli.DEFAULT_URL
    a = cli.build_parser().parse_args(["promote", "--full", "--candidate", "v3"])
    assert (a.cmd, a.full, a.candidate) == ("promote", True, "v3")
    h = cli.parse_args(["history", "--limit", "5", "--all", "--json"])
    assert (h.limit, h.all_rollouts, h.as_json) == (5, True, True)
    assert cli.parse_args(["start", "x.yaml"]).file == Path("x.yaml")
    assert cli.parse_args(["report", "digits", "--out", "r"]).out_dir == Path("r")
    for verb in ("pause", "resume", "approve", "retry", "undo", "verify", "demo"):
        assert cli.parse_args([verb]).cmd == verb


@pytest.mark.parametrize(("argv", "named"), [
    (["promote", "--reason", "x"], "No such option '--reason'"),  # promote takes no reason
    (["status", "--colour"], "No such option '--colour'"),
    (["status", "-o", "yaml"], "Invalid value for '-o' / '--output': 'yaml'"),
    (["history", "--limit", "ten"], "Invalid value for '--limit': 'ten'"),
    (["history", "--limit", "-1"], "Invalid value for '--limit'"),
    (["status", "--interval", "-1"], "Invalid value for '--interval'"),
    (["replay", "--rollout", "0"], "Invalid value for '--rollout'"),
    (["--url", "router:9000", "status"], "Invalid value for '--url': 'router:9000'"),
    (["status", "--url", "ftp://x"], "Invalid value for '--url'"),
    (["status", "--url", "http://"], "Invalid value for '--url'"),
    (["status", "--url", "http://[::1"], "Invalid value for '--url': 'http://[::1'"),
    (["drill", "--fault", "gremlins"], "Invalid value for '--fault': 'gremlins'"),
    (["drill"], "Missing option '--fault'"),
    (["demo", "--config", "missing.yaml"], "Invalid value for '--config'"),
    (["nonsense"], "No such command 'nonsense'"),
    (["validate"], "Missing argument 'FILE'"),
    (["--token", "a", "--token-env", "B", "status"], "give --token or --token-env"),
    (["status", "--token-env", "RAYROLLOUT_UNSET_VAR"], "'RAYROLLOUT_UNSET_VAR' is not set"),
])
def test_bad_input_is_a_usage_error_naming_the_option(argv: list[str], named: str) -> None:
    seen, handler = recorder()
    r = invoke(argv, handler, {"B": "x"})
    assert r.exit_code == 2, r.output
    assert named in r.stderr and "Usage: rayrollout" in r.stderr and r.stdout == ""
    assert seen == []  # nothing sent


def test_main_returns_the_exit_status_and_shows_usage_errors(
    capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["history", "--limit", "ten"]) == 2
    assert "Invalid value for '--limit'" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    assert "status" in capsys.readouterr().out


# -- validate ----------------------------------------------------------------------------------


def test_validate_accepts_a_rollout_spec(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["validate", str(write(tmp_path, spec_doc()))]) == 0
    out = capsys.readouterr().out
    assert "ok (rollout of model 'digits'" in out and "['v2']" in out


def test_validate_accepts_a_serve_config_of_build_rollout(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    doc = {"applications": [{"name": "rayrollout", "route_prefix": "/",
                             "import_path": "rayrollout.serving.app:build_rollout",
                             "args": spec_doc()}]}
    assert cli.main(["validate", str(write(tmp_path, doc))]) == 0
    assert "rollout of model 'digits'" in capsys.readouterr().out
    doc["applications"][0]["name"] = "rayrollout-digits"  # the ingress has one name
    assert cli.main(["validate", str(write(tmp_path, doc))]) == 2
    assert "applications.0.name: 'rayrollout-digits'" in capsys.readouterr().err


def test_validate_an_ingress_of_several_models(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    two: dict[str, Any] = {"rollouts": [spec_doc(), spec_doc(model="mlp")],
           "models": [{"model": "plain", "weights": {"a": 100}}]}
    doc: dict[str, Any] = {"applications": [{"name": "rayrollout", "route_prefix": "/",
                                             "import_path": "rayrollout.serving.app:build_ingress",
                             "args": two}]}
    assert cli.main(["validate", str(write(tmp_path, doc))]) == 2  # plain's version: no app
    assert "versions ['a'] of model 'plain' have no application" in capsys.readouterr().err
    doc["applications"].append({"name": "plain-a", "route_prefix": None,
                                "import_path": "rayrollout.serving.app:build_version",
                                "args": {"model": "plain", "name": "a", "runtime": "onnx",
                                         "artifact": "models/artifacts/v1.onnx"}})
    assert cli.main(["validate", str(write(tmp_path, doc))]) == 0
    out = capsys.readouterr().out
    assert "ok (3 models on one ingress)" in out and "rollout of model 'mlp'" in out
    two["rollouts"][1]["model"] = "digits"
    assert cli.main(["validate", str(write(tmp_path, doc))]) == 2
    assert "rollouts.1.model: model 'digits' is served once" in capsys.readouterr().err


def test_validate_still_checks_router_configs(capsys: pytest.CaptureFixture) -> None:
    for f in sorted((ROOT / "configs").glob("*.yaml")):
        assert cli.main(["validate", str(f)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        (spec_doc(strategy={"steps": [{"weight": 50}, {"weight": 20}]}),
         "steps[1].weight=20 <= steps[0].weight=50"),
        (spec_doc(candidates=[{"name": "v2", "runtime": "tensorflow", "artifact": "a"}]),
         "candidates.0.runtime: Input should be 'onnx', 'torchscript' or 'python' (got "
         "'tensorflow')"),
        (spec_doc(analysis={"checks": [{"kind": "nope"}]}), "analysis.checks.0.kind"),
        (spec_doc(colour="blue"), "colour: Extra inputs are not permitted (got 'blue')"),
    ],
)
def test_validate_names_the_bad_field_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture, doc: dict[str, Any], named: str
) -> None:
    assert cli.main(["validate", str(write(tmp_path, doc))]) == 2
    err = capsys.readouterr().err
    assert "invalid" in err and named in err


def test_validate_bad_serve_config_and_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    doc = yaml.safe_load((ROOT / "configs" / "digits.yaml").read_text())
    router = next(a for a in doc["applications"] if a["import_path"].endswith("build_router"))
    router["args"]["weights"] = {"v1": 90, "v2": 5}
    assert cli.main(["validate", str(write(tmp_path, doc))]) == 2
    assert "weights must sum to 100" in capsys.readouterr().err
    assert cli.main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert cli.main(["validate", str(write(tmp_path, ["a", "list"]))]) == 2
    assert "expected a mapping" in capsys.readouterr().err
    other = {"applications": [{"name": "x", "import_path": "somewhere:else", "args": {}}]}
    assert cli.main(["validate", str(write(tmp_path, other))]) == 2
    assert "build_ingress" in capsys.readouterr().err


# -- rendering ---------------------------------------------------------------------------------


def test_render_status_shows_phase_step_weights_and_checks() -> None:
    text = cli.render_status(STATUS)
    lines = text.splitlines()
    assert "rollout #3" in lines[0] and "phase CANARY for 12 s" in lines[0]
    assert "step 1/2 (20% per candidate)" in lines[1] and "epoch 7" in lines[1]
    assert lines[2] == "weights v1 80%  v2 20%"
    assert "candidate v2: active" in text
    errors = next(ln for ln in lines if ln.strip().startswith("errors"))
    assert "INCONCLUSIVE" in errors and "E=10^1.00/2.00" in errors
    assert "error_rate_diff=0.001" in errors and "candidate=42" in errors
    assert errors.endswith("- 42 of 50 candidate requests")
    latency = next(ln for ln in lines if ln.strip().startswith("latency"))
    assert "FAIL" in latency and "E=10^inf/2.00" in latency
    assert lines[-1] == "verbs now: pause, promote, abort"


def test_render_status_without_a_rollout_and_before_the_first_step() -> None:
    assert cli.render_status({"model": "m", "phase": "none", "rollout": None}) == (
        "model m: no rollout"
    )
    text = cli.render_status({**STATUS, "phase": "deploying", "step": -1, "checks": {}})
    assert "step -/2 " in text and "phase DEPLOYING" in text


def test_render_history() -> None:
    entries = [
        {"seq": 1, "now": 0.0, "actor": "controller", "phase_from": "pending",
         "phase_to": "deploying", "step": -1, "epoch": 0, "reason": "deploying v2"},
        {"seq": 2, "now": 1.0, "actor": "alice", "phase_from": "canary",
         "phase_to": "paused", "step": 0, "epoch": 1, "reason": "pause by alice"},
    ]
    lines = cli.render_history(entries).splitlines()
    assert len(lines) == 2
    assert "alice" in lines[1] and "canary -> paused" in lines[1] and "step 1" in lines[1]
    assert cli.render_history([]) == "no decisions"


# -- HTTP against a fake transport --------------------------------------------------------------


def test_verbs_post_with_the_token_and_options() -> None:
    seen, handler = recorder({**STATUS, "phase": "paused"})
    assert run(["pause", "--reason", "lunch"], handler).exit_code == 0
    assert run(["promote", "--full", "--candidate", "v2"], handler).exit_code == 0
    assert run(["undo"], handler).exit_code == 0
    last = run(["--model", "mlp", "abort"], handler)
    assert last.exit_code == 0
    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/rollout/pause"),  # no model: the ingress's one model
        ("POST", "/rollout/promote"),
        ("POST", "/rollout/undo"),
        ("POST", "/rollout/mlp/abort"),  # one of several
    ]
    assert all(r.headers["authorization"] == "Bearer tok" for r in seen)
    assert [json.loads(r.content) for r in seen] == [
        {"reason": "lunch"}, {"full": True, "candidate": "v2"}, {}, {}
    ]
    assert last.stdout.startswith("abort: phase paused\nmodel digits  rollout #3")


@pytest.mark.parametrize(
    ("status", "body", "code", "shown"),
    [
        (409, {"error": "cannot resume in phase canary", "code": "illegal_transition"}, 2,
         "409: cannot resume in phase canary"),
        (401, {"error": "invalid admin token", "code": "unauthorized"}, 2,
         "401: invalid admin token (pass --token or set RAYROLLOUT_TOKEN)"),
        (404, {"error": "no rollout controller for model 'digits'"}, 2,
         "404: no rollout controller for model 'digits'"),
        (500, {"error": "internal error: boom", "code": "internal_error"}, 1,
         "500: internal error: boom"),
        (502, "bad gateway", 1, "502: bad gateway"),
    ],
)
def test_http_errors_are_one_line_with_the_server_message(
    status: int, body: Any, code: int, shown: str
) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    for argv in (["resume"], ["status"], ["status", "-o", "json"], ["report", "digits"]):
        r = run(argv, handler)
        assert r.exit_code == code, (argv, r.output)
        assert r.stderr == f"rayrollout {argv[0]}: {shown}\n" and r.stdout == "", argv
        assert r.exception is None or isinstance(r.exception, SystemExit)


def test_connection_error_exits_1() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=req)

    r = run(["status"], handler)
    assert r.exit_code == 1
    assert r.stderr.startswith("rayrollout status: cannot reach http://router:")
    assert r.stderr.count("\n") == 1


def test_an_answer_of_the_wrong_shape_is_one_line_not_a_traceback() -> None:
    r = run(["verify"], lambda req: httpx.Response(200, json={"message": "no ok key"}))
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr == ("rayrollout verify: unexpected answer from http://router "
                        "(KeyError: 'ok')\n")
    r = run(["status"], lambda req: httpx.Response(200, text="<html>"))
    assert r.exit_code == 1 and r.stderr == "rayrollout status: 200 from http://router: not JSON\n"


HISTORY = [{"seq": 1, "actor": "bob", "phase_from": "a", "phase_to": "b", "step": -1,
            "epoch": 0, "reason": "r", "now": 0.0}]


def api(req: httpx.Request) -> httpx.Response:
    """A fake admin API: status, history, verify and replay."""
    route = req.url.path.rsplit("/", 1)[-1]
    body: Any = {"status": STATUS, "history": HISTORY,
                 "verify": {"ok": False, "message": "entry 3: altered"},
                 "replay": {"rollout": 3, "identical": True, "replayed": 5, "recorded": 5},
                 }.get(route, {**STATUS, "phase": "paused"})
    return httpx.Response(200, json=body)


@pytest.mark.parametrize(("argv", "answer", "code"), [
    (["status"], STATUS, 0),
    (["history", "--limit", "3", "--all"], HISTORY, 0),
    (["verify"], {"ok": False, "message": "entry 3: altered"}, 1),
    (["replay", "--rollout", "3"], {"rollout": 3, "identical": True, "replayed": 5,
                                    "recorded": 5}, 0),
    (["pause", "--reason", "x"], {**STATUS, "phase": "paused"}, 0),
])
def test_output_json_prints_the_servers_answer(argv: list[str], answer: Any, code: int) -> None:
    for flag in (["-o", "json"], ["--output", "json"]):
        r = run([*argv, *flag], api)
        assert r.exit_code == code, r.output
        assert json.loads(r.stdout) == answer
    if argv[0] in ("status", "history"):
        assert json.loads(run([*argv, "--json"], api).stdout) == answer  # the older spelling


def test_text_output_is_plain_when_stdout_is_not_a_terminal() -> None:
    r = run(["status"], api)
    assert r.exit_code == 0
    assert r.stdout == cli.render_status(STATUS) + "\n"  # no colour, no box, no escapes
    assert "\x1b" not in r.stdout
    assert run(["history"], api).stdout == cli.render_history(HISTORY) + "\n"
    assert run(["verify"], api).stdout == "BROKEN: entry 3: altered\n"
    assert run(["replay"], api).stdout == (
        "rollout #3: 5 replayed decisions identical to the 5 recorded\n")


def test_history_query_parameters() -> None:
    seen, handler = recorder(HISTORY)
    assert run(["history", "--limit", "3", "--all"], handler).exit_code == 0
    assert seen[-1].url.params["limit"] == "3" and seen[-1].url.params["all"] == "1"
    assert run(["history"], handler).exit_code == 0
    assert seen[-1].url.params["limit"] == "20" and "all" not in seen[-1].url.params


@pytest.mark.parametrize(("final", "code"), [("promoted", 0), ("rolled_back", 3)])
def test_watch_redraws_until_the_rollout_ends(final: str, code: int) -> None:
    phases = iter(["deploying", "canary", final, "never-reached"])

    def handler(req: httpx.Request) -> httpx.Response:
        assert req.url.path.endswith("/status")  # plain frames: no history fetched
        phase = next(phases)
        return httpx.Response(200, json={**STATUS, "phase": phase, "final": phase == final})

    r = run(["status", "--watch", "--interval", "0"], handler)
    assert r.exit_code == code
    assert r.stdout.count("rollout #3") == 3 and f"phase {final.upper()}" in r.stdout
    assert "\x1b" not in r.stdout  # a pipe gets frame after frame, no redraw


def test_watch_json_is_one_object_per_line() -> None:
    phases = iter(["canary", "rolled_back"])

    def handler(req: httpx.Request) -> httpx.Response:
        phase = next(phases)
        return httpx.Response(200, json={**STATUS, "phase": phase,
                                         "final": phase == "rolled_back"})

    r = run(["status", "--watch", "--interval", "0", "-o", "json"], handler)
    assert r.exit_code == 3
    assert [json.loads(line)["phase"] for line in r.stdout.splitlines()] == [
        "canary", "rolled_back"]


def test_start_validates_locally_then_posts_the_spec(tmp_path: Path) -> None:
    posted: list[Any] = []

    def handler(req: httpx.Request) -> httpx.Response:
        posted.append((req.url.path, json.loads(req.content)))
        return httpx.Response(200, json={**STATUS, "phase": "pending", "checks": {}})

    r = run(["start", str(write(tmp_path, spec_doc()))], handler)
    assert r.exit_code == 0
    ((path, body),) = posted
    assert path == "/rollout/digits/start"  # the spec's model
    assert body["model"] == "digits" and body["candidates"][0]["name"] == "v2"
    assert "phase PENDING" in r.stdout
    bad = spec_doc(strategy={"steps": [{"weight": 50}, {"weight": 20}]})
    r = run(["start", str(write(tmp_path, bad, "bad.yaml"))], handler)
    assert r.exit_code == 2
    assert len(posted) == 1  # nothing sent
    assert "steps[1].weight=20 <= steps[0].weight=50" in r.stderr
    r = run(["start", str(tmp_path / "missing.yaml")], handler)
    assert r.exit_code == 2 and "cannot read" in r.stderr and len(posted) == 1


COMMANDS = ["demo", "validate", "status", "start", "history", "verify", "replay", "report",
            "drill", "pause", "resume", "approve", "promote", "abort", "retry", "undo"]


def test_help_of_every_command_renders() -> None:
    assert sorted(cli.cli.list_commands(None)) == sorted(COMMANDS)  # type: ignore[arg-type]
    for argv in ([], *([c] for c in COMMANDS)):
        r = invoke([*argv, "--help"])
        assert r.exit_code == 0, (argv, r.output)
        assert r.stdout.startswith(f"Usage: rayrollout {' '.join(argv)}".rstrip())
    assert "to 100% now" in invoke(["promote", "--help"]).stdout
    assert "-o, --output [text|json]" in invoke(["status", "-h"]).stdout


def test_validate_says_how_long_each_step_needs(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    doc = spec_doc(strategy={"steps": [{"weight": 1}, {"weight": 10}]},
                   analysis={"checks": [{"kind": "errors"}],
                             "detect": {"errors_ratio": 3, "expected_rps": 100}})
    assert cli.main(["validate", str(write(tmp_path, doc))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "step 1 (1% x 1): needs" in lines[1] and "to catch errors x3" in lines[1]
    assert lines[1].endswith("min at 100 req/s") and lines[2].endswith("at 100 req/s")


def test_status_shows_what_the_step_still_needs() -> None:
    st = {**STATUS, "step_need": {"requests": 1901, "seen": 42, "to_catch": "errors x3",
                                  "rate_per_s": 1.0, "eta_s": 1859.0}}
    assert "requests this step 42 of 1,901 needed (to catch errors x3; about 1859 s to go)" in (
        cli.render_status(st))


def test_demo_and_drill_pass_their_options_and_exit_status(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import rayrollout.cli.demo as demo
    import rayrollout.cli.drill as drill
    from rayrollout.errors import RolloutError

    calls: list[tuple[Any, ...]] = []

    def fake_demo(*args: Any) -> int:
        calls.append(("demo", *args))
        return 1

    def fake_drill(*args: Any) -> int:
        calls.append(("drill", *args))
        if args[0] == "hang":
            raise RolloutError("no Serve on the cluster")
        return 0

    monkeypatch.setattr(demo, "run", fake_demo)
    monkeypatch.setattr(drill, "run", fake_drill)
    spec = write(tmp_path, spec_doc())
    r = invoke(["demo", "--config", str(spec), "--requests", "5", "--concurrency", "2"])
    assert r.exit_code == 1 and calls[-1] == ("demo", spec, 5, 2)
    assert invoke(["demo"]).exit_code == 1 and calls[-1] == ("demo", None, 0, 8)
    r = invoke(["--url", "http://head:8000", "drill", "--fault", "errors", "--address",
                "ray://head:10001", "--bound-s", "9", "--json"])
    assert r.exit_code == 0
    assert calls[-1] == ("drill", "errors", "ray://head:10001", "http://head:8000", 9.0, True)
    assert invoke(["drill", "--fault", "all", "-o", "json"]).exit_code == 0
    assert calls[-1] == ("drill", "all", None, None, None, True)  # local: its own Serve
    r = invoke(["drill", "--fault", "hang"])
    assert r.exit_code == 1 and r.stderr == "rayrollout drill: no Serve on the cluster\n"


def test_status_says_what_the_checks_wait_for_and_the_deadline() -> None:
    waiting = [  # controller.explain.waiting_for
        {"candidate": None, "check": "step", "kind": "requests", "holds": True,
         "text": "needs 58 more candidate requests at the current rate (~2.0/s: ~29 s)"},
        {"candidate": "v2", "check": "errors", "kind": "check", "holds": True,
         "text": "needs ~400 more candidate requests"},
        {"candidate": "v2", "check": "latency", "text": ""},  # nothing to say: not shown
        "not an entry",
    ]
    st = {**STATUS, "waiting_for": waiting,
          "progress_deadline": {"deadline_s": 600.0, "holding_since": 100.0, "left_s": 587.6}}
    lines = cli.render_status(st).splitlines()
    assert lines[-4:] == [
        "  waiting for step: needs 58 more candidate requests at the current rate "
        "(~2.0/s: ~29 s)",
        "  waiting for v2.errors: needs ~400 more candidate requests",
        "progress deadline 600 s: 588 s left",
        "verbs now: pause, promote, abort",
    ]
    assert "waiting for" not in cli.render_status({**STATUS, "waiting_for": []})
    assert "deadline" not in cli.render_status({**STATUS, "progress_deadline": None})
