"""The ``rayrollout`` CLI without a server: parsing, validate, rendering, and HTTP handling
against a fake transport."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rayrollout import cli
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


def test_global_options_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYROLLOUT_URL", "http://router:9000/digits")
    monkeypatch.setenv("RAYROLLOUT_TOKEN", "s3cret")
    args = cli.build_parser().parse_args(["status"])
    assert (args.url, args.token, args.watch, args.json) == (
        "http://router:9000/digits", "s3cret", False, False
    )
    monkeypatch.delenv("RAYROLLOUT_URL")
    monkeypatch.delenv("RAYROLLOUT_TOKEN")
    args = cli.build_parser().parse_args(["--url", "http://x", "status", "--watch",
                                          "--interval", "0.5", "--json"])
    assert (args.url, args.token, args.watch, args.interval, args.json) == (
        "http://x", None, True, 0.5, True
    )
    assert cli.build_parser().parse_args(["status"]).url == cli.DEFAULT_URL


def test_verb_options_parse() -> None:
    p = cli.build_parser()
    a = p.parse_args(["promote", "--full", "--candidate", "v3"])
    assert (a.cmd, a.full, a.candidate) == ("promote", True, "v3")
    assert p.parse_args(["abort", "--reason", "too slow"]).reason == "too slow"
    h = p.parse_args(["history", "--limit", "5", "--all", "--json"])
    assert (h.limit, h.all, h.json) == (5, True, True)
    assert p.parse_args(["start", "x.yaml"]).file == Path("x.yaml")
    for verb in ("pause", "resume", "approve", "retry", "undo", "verify", "demo"):
        assert p.parse_args([verb]).cmd == verb
    with pytest.raises(SystemExit):
        p.parse_args(["promote", "--reason", "x"])  # promote takes no reason


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

Handler = Callable[[httpx.Request], httpx.Response]


def run(argv: list[str], handler: Handler) -> int:
    return cli.main(["--url", "http://router", "--token", "tok", *argv],
                    transport=httpx.MockTransport(handler))


def test_verbs_post_with_the_token_and_options(capsys: pytest.CaptureFixture) -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={**STATUS, "phase": "paused"})

    assert run(["pause", "--reason", "lunch"], handler) == 0
    assert run(["promote", "--full", "--candidate", "v2"], handler) == 0
    assert run(["undo"], handler) == 0
    assert run(["--model", "mlp", "abort"], handler) == 0
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
    assert "pause: phase paused" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("status", "body", "code", "shown"),
    [
        (409, {"error": "cannot resume in phase canary", "code": "illegal_transition"}, 2,
         "409: cannot resume in phase canary"),
        (401, {"error": "invalid admin token", "code": "unauthorized"}, 2,
         "RAYROLLOUT_TOKEN"),
        (404, {"error": "no rollout controller for model 'digits'"}, 2, "no rollout controller"),
        (500, {"error": "internal error: boom", "code": "internal_error"}, 1, "boom"),
        (502, "bad gateway", 1, "502: bad gateway"),
    ],
)
def test_http_errors_print_the_server_message(
    capsys: pytest.CaptureFixture, status: int, body: Any, code: int, shown: str
) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    assert run(["resume"], handler) == code
    captured = capsys.readouterr()
    assert shown in captured.err and captured.out == ""


def test_connection_error_exits_1(capsys: pytest.CaptureFixture) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=req)

    assert run(["status"], handler) == 1
    assert "cannot reach http://router:" in capsys.readouterr().err


def test_status_json_history_verify(capsys: pytest.CaptureFixture) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("/status"):
            return httpx.Response(200, json=STATUS)
        if req.url.path.endswith("/history"):
            assert req.url.params["limit"] == "3" and req.url.params["all"] == "1"
            return httpx.Response(200, json=[{"seq": 1, "actor": "bob", "phase_from": "a",
                                              "phase_to": "b", "step": -1, "epoch": 0,
                                              "reason": "r", "now": 0.0}])
        return httpx.Response(200, json={"ok": False, "message": "entry 3: altered"})

    assert run(["status", "--json"], handler) == 0
    assert json.loads(capsys.readouterr().out)["phase"] == "canary"
    assert run(["history", "--limit", "3", "--all", "--json"], handler) == 0
    assert json.loads(capsys.readouterr().out)[0]["actor"] == "bob"
    assert run(["verify"], handler) == 1
    assert "BROKEN: entry 3: altered" in capsys.readouterr().out


@pytest.mark.parametrize(("final", "code"), [("promoted", 0), ("rolled_back", 3)])
def test_watch_redraws_until_the_rollout_ends(
    capsys: pytest.CaptureFixture, final: str, code: int
) -> None:
    phases = iter(["deploying", "canary", final, "never-reached"])

    def handler(req: httpx.Request) -> httpx.Response:
        phase = next(phases)
        return httpx.Response(200, json={**STATUS, "phase": phase, "final": phase == final})

    assert run(["status", "--watch", "--interval", "0"], handler) == code
    out = capsys.readouterr().out
    assert out.count("rollout #3") == 3 and f"phase {final.upper()}" in out


def test_start_validates_locally_then_posts_the_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    posted: list[Any] = []

    def handler(req: httpx.Request) -> httpx.Response:
        posted.append((req.url.path, json.loads(req.content)))
        return httpx.Response(200, json={**STATUS, "phase": "pending", "checks": {}})

    assert run(["start", str(write(tmp_path, spec_doc()))], handler) == 0
    ((path, body),) = posted
    assert path == "/rollout/digits/start"  # the spec's model
    assert body["model"] == "digits" and body["candidates"][0]["name"] == "v2"
    assert "phase PENDING" in capsys.readouterr().out
    bad = spec_doc(strategy={"steps": [{"weight": 50}, {"weight": 20}]})
    assert run(["start", str(write(tmp_path, bad, "bad.yaml"))], handler) == 2
    assert len(posted) == 1  # nothing sent
    assert "steps[1].weight=20 <= steps[0].weight=50" in capsys.readouterr().err


def test_help_of_every_command_renders(capsys: pytest.CaptureFixture) -> None:
    parser = cli.build_parser()
    commands = ["demo", "validate", "status", "start", "history", "verify", "replay",
                "pause", "resume", "approve", "promote", "abort", "retry", "undo"]
    for argv in ([], *([c] for c in commands)):
        with pytest.raises(SystemExit) as e:
            parser.parse_args([*argv, "--help"])
        assert e.value.code == 0, argv
    assert "to 100% now" in capsys.readouterr().out


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
