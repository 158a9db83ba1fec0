"""``rayrollout`` command line: validate configs, run the demo, and steer a rollout through the
router's admin API (``/rollout/...``) over HTTP.

::

    rayrollout validate configs/rollout-digits.yaml
    export RAYROLLOUT_URL=http://127.0.0.1:8000 RAYROLLOUT_TOKEN=...
    rayrollout start configs/rollout-digits.yaml
    rayrollout status --watch         # live view until promoted, completed or rolled back
    rayrollout pause | resume | approve | promote [--full] | abort --reason why | undo | retry
    rayrollout history --limit 20

Exit status: 0 ok; 2 a bad file or a request the server refused (4xx); 1 the server failed or
could not be reached; ``status --watch`` exits 3 when the rollout was rolled back.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import ValidationError

from rayrollout.config import format_validation_error

DEFAULT_URL = "http://127.0.0.1:8000"
VERBS = ("pause", "resume", "approve", "promote", "abort", "retry", "undo")
FINAL = frozenset({"promoted", "completed", "rolled_back", "none"})
ROLLED_BACK_EXIT = 3


class CLIError(Exception):
    """A failure to report in one line, with the exit status it maps to."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# -- validate ------------------------------------------------------------------------------------


def _is_rollout_config(doc: Any) -> bool:
    """A rollout spec itself, or a Serve config whose app uses ``build_rollout``."""
    if not isinstance(doc, dict):
        return False
    if "applications" not in doc:
        return True
    return any(
        str(app.get("import_path", "")).endswith(":build_rollout")
        for app in doc["applications"] or []
        if isinstance(app, dict)
    )


def _validate(path: Path) -> int:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        print(f"{path}: cannot read: {e}", file=sys.stderr)
        return 2
    if not isinstance(doc, dict):
        print(
            f"{path}: invalid\n<root>: expected a mapping (got {type(doc).__name__})",
            file=sys.stderr,
        )
        return 2
    try:
        if _is_rollout_config(doc):
            from rayrollout.spec import load_spec

            spec = load_spec(path)
            checks = [c.check_name for c in [*spec.analysis.checks, *spec.analysis.guards]]
            print(
                f"{path}: ok (rollout of model {spec.model!r}: stable {spec.stable.name!r}, "
                f"candidates {[c.name for c in spec.candidates]}, "
                f"steps {[s.weight for s in spec.strategy.steps]}, checks {checks})"
            )
            return 0
        return _validate_serve(path, doc)
    except ValidationError as e:
        print(f"{path}: invalid\n{format_validation_error(e)}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, AttributeError) as e:
        print(f"{path}: invalid\nmissing or malformed entry: {e}", file=sys.stderr)
        return 2


def _validate_serve(path: Path, doc: dict[str, Any]) -> int:
    """A Serve multi-app config of ``build_router`` and ``build_version`` applications."""
    from rayrollout.config import RouterConfig, VersionConfig

    router, versions = None, []
    for app in doc["applications"] or []:
        target = str(app["import_path"]).split(":")[-1]
        if target == "build_router":
            router = RouterConfig.model_validate(app["args"])
        elif target == "build_version":
            versions.append(VersionConfig.model_validate(app["args"]))
    if router is None:
        print(
            f"{path}: invalid\napplications: none uses rayrollout.serving.app:build_router "
            "or :build_rollout",
            file=sys.stderr,
        )
        return 2
    missing = [v for v in router.live_versions() if v not in {x.name for x in versions}]
    if missing:
        print(f"{path}: invalid\nweights: versions {missing} have no application", file=sys.stderr)
        return 2
    print(f"{path}: ok (model {router.model!r}, versions {[v.name for v in versions]})")
    return 0


# -- the admin API over HTTP -----------------------------------------------------------------------


class AdminClient:
    """The admin API of one router. Every method returns the decoded JSON body or raises
    ``CLIError`` with the server's own message (status 2 for 4xx, 1 for 5xx and no answer)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self._c = httpx.Client(
            base_url=url, headers=headers, timeout=timeout_s, transport=transport
        )

    def close(self) -> None:
        self._c.close()

    def request(
        self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            r = self._c.request(method, f"/rollout/{path}", json=body, params=params)
        except httpx.HTTPError as e:
            raise CLIError(f"cannot reach {self.url}: {e}", 1) from None
        if r.is_success:
            try:
                return r.json()
            except ValueError:
                raise CLIError(f"{r.status_code} from {self.url}: not JSON", 1) from None
        try:
            message = str(r.json()["error"])
        except (ValueError, KeyError, TypeError):
            message = r.text.strip()[:500] or r.reason_phrase
        if r.status_code == 401:
            message += "\n(pass --token or set RAYROLLOUT_TOKEN)"
        raise CLIError(f"{r.status_code}: {message}", 2 if r.status_code < 500 else 1)


# -- rendering (pure) -----------------------------------------------------------------------------


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):  # "inf" / "-inf" in strict JSON
        return x
    return f"{x:.{digits}g}"


def _pct(w: float) -> str:
    return f"{w:g}%"


def render_status(st: Mapping[str, Any]) -> str:
    """The status of a rollout as lines of text (what ``status`` and ``--watch`` print)."""
    if st.get("rollout") is None:
        return f"model {st.get('model')}: no rollout"
    steps = st.get("steps") or []
    i = int(st.get("step", -1))
    step = f"{i + 1}/{len(steps)}" if i >= 0 else f"-/{len(steps)}"
    if 0 <= i < len(steps):
        step += f" ({_pct(steps[i]['weight'])} per candidate)"
    since = ""
    if st.get("phase_since") and st.get("now"):
        since = f" for {max(0.0, st['now'] - st['phase_since']):.0f} s"
    lines = [
        f"model {st['model']}  rollout #{st['rollout']} (attempt {st.get('attempt', 1)})  "
        f"phase {st['phase'].upper()}{since}",
        f"step {step}  epoch {st.get('epoch')}  stable {st.get('stable')}"
        + (f" (previous {st['previous_stable']})" if st.get("previous_stable") else ""),
        "weights "
        + (
            "  ".join(f"{v} {_pct(w)}" for v, w in sorted(st["weights"].items()))
            if st.get("weights")
            else "-"
        ),
    ]
    if st.get("shadow"):
        lines.append(
            f"shadow {st['shadow']} on {_pct(100 * st.get('shadow_fraction', 0))} "
            f"({st.get('shadow_compared', 0)} compared)"
        )
    lines.append(f"requests this step {st.get('step_requests', 0)}")
    for c in st.get("candidates") or []:
        lines.append(
            f"candidate {c['name']}: {c['status']}"
            + (f" ({c['reason']})" if c.get("reason") else "")
        )
        for r in (st.get("checks") or {}).get(c["name"], []):
            lines.append("  " + _render_check(r))
    return "\n".join(lines)


def _render_check(r: Mapping[str, Any]) -> str:
    evidence = ""
    log_e = r.get("log_e")
    if isinstance(log_e, int | float):
        evidence = f" log10(e)={log_e / math.log(10):.2f}"
        th = r.get("threshold")
        if isinstance(th, int | float) and th > 0:
            evidence += f"/{math.log10(th):.2f}"
    elif log_e is not None:
        evidence = f" log(e)={log_e}"
    stat = f" {r['statistic']}={_num(r.get('value'))}" if r.get("statistic") else ""
    counts = " ".join(f"{k}={_num(v, 6)}" for k, v in (r.get("counts") or {}).items())
    return (
        f"{r['check']:<14} {r['verdict']:<12}{stat}{evidence}"
        + (f" [{counts}]" if counts else "")
        + (f" - {r['reason']}" if r.get("reason") else "")
    )


def render_history(entries: Sequence[Mapping[str, Any]]) -> str:
    """The decision log, oldest first, one line per decision."""
    if not entries:
        return "no decisions"
    out = []
    for d in entries:
        t = datetime.fromtimestamp(float(d.get("now") or d.get("ts") or 0)).strftime("%H:%M:%S")
        step = d.get("step", -1)
        out.append(
            f"{d.get('seq'):>4} {t} {d.get('actor', '?'):<12} "
            f"{d.get('phase_from')} -> {d.get('phase_to')}  "
            f"step {step + 1 if step >= 0 else '-'} epoch {d.get('epoch')}  "
            f"{d.get('reason', '')}"
        )
    return "\n".join(out)


# -- commands ----------------------------------------------------------------------------------


def _dump(x: Any) -> str:
    return json.dumps(x, indent=2, sort_keys=True)


def _status(c: AdminClient, args: argparse.Namespace) -> int:
    if not args.watch:
        st = c.request("GET", "status")
        print(_dump(st) if args.json else render_status(st))
        return 0
    tty = sys.stdout.isatty() and not args.json
    while True:
        st = c.request("GET", "status")
        if args.json:
            print(json.dumps(st), flush=True)
        else:
            frame = render_status(st)
            # Redraw in place on a terminal; a pipe gets one frame after another.
            print(("\x1b[H\x1b[2J" + frame) if tty else frame + "\n", flush=True)
        if st["phase"] in FINAL:
            return ROLLED_BACK_EXIT if st["phase"] == "rolled_back" else 0
        time.sleep(args.interval)


def _start(c: AdminClient, args: argparse.Namespace) -> int:
    from rayrollout.spec import load_spec

    try:
        spec = load_spec(args.file)
    except ValidationError as e:
        raise CLIError(f"{args.file}: invalid\n{format_validation_error(e)}", 2) from None
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError) as e:
        raise CLIError(f"{args.file}: cannot read: {e}", 2) from None
    st = c.request("POST", "start", spec.model_dump(mode="json"))
    print(render_status(st))
    return 0


def _verb(c: AdminClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if getattr(args, "full", False):
        body["full"] = True
    if getattr(args, "candidate", None):
        body["candidate"] = args.candidate
    if getattr(args, "reason", ""):
        body["reason"] = args.reason
    st = c.request("POST", args.cmd, body)
    print(f"{args.cmd}: phase {st['phase']}")
    print(render_status(st))
    return 0


def _history(c: AdminClient, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.all:
        params["all"] = 1
    entries = c.request("GET", "history", params=params)
    print(_dump(entries) if args.json else render_history(entries))
    return 0


def _verify(c: AdminClient, args: argparse.Namespace) -> int:
    r = c.request("GET", "verify")
    print(("ok: " if r["ok"] else "BROKEN: ") + r["message"])
    return 0 if r["ok"] else 1


def _replay(c: AdminClient, args: argparse.Namespace) -> int:
    r = c.request("GET", "replay", params={"rollout": args.rollout} if args.rollout else None)
    same = "identical to" if r["identical"] else "DIFFERENT from"
    print(
        f"rollout #{r['rollout']}: {r['replayed']} replayed decisions {same} "
        f"the {r['recorded']} recorded"
    )
    return 0 if r["identical"] else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rayrollout", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--url",
        default=os.environ.get("RAYROLLOUT_URL", DEFAULT_URL),
        help="the router's base URL, with its route prefix (env RAYROLLOUT_URL)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("RAYROLLOUT_TOKEN"),
        help="admin bearer token (env RAYROLLOUT_TOKEN)",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="run the demo on an embedded local Ray")
    d.add_argument("--config", type=Path, default=None)
    d.add_argument("--requests", type=int, default=0)
    d.add_argument("--concurrency", type=int, default=8)
    v = sub.add_parser("validate", help="validate a rollout spec or a Serve config file")
    v.add_argument("file", type=Path)
    s = sub.add_parser("status", help="the rollout's status")
    s.add_argument(
        "--watch",
        action="store_true",
        help="redraw until promoted, completed or rolled back (exit 3)",
    )
    s.add_argument("--interval", type=float, default=1.0, metavar="S")
    s.add_argument("--json", action="store_true")
    st = sub.add_parser("start", help="start a rollout of a spec file")
    st.add_argument("file", type=Path)
    for verb in VERBS:
        vp = sub.add_parser(verb, help=f"{verb} the rollout")
        if verb == "promote":
            vp.add_argument("--full", action="store_true", help="to 100%% now, not the next step")
            vp.add_argument("--candidate", default=None, metavar="NAME")
        if verb in ("abort", "pause"):
            vp.add_argument("--reason", default="")
    h = sub.add_parser("history", help="the decision log")
    h.add_argument("--limit", type=int, default=20, metavar="N")
    h.add_argument("--all", action="store_true", help="every rollout of the model")
    h.add_argument("--json", action="store_true")
    sub.add_parser("verify", help="check the decision log's hash chain")
    r = sub.add_parser("replay", help="replay a rollout's recorded inputs through decide()")
    r.add_argument("--rollout", type=int, default=None)
    return p


COMMANDS = {
    "status": _status,
    "start": _start,
    "history": _history,
    "verify": _verify,
    "replay": _replay,
    **dict.fromkeys(VERBS, _verb),
}


def main(argv: list[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "demo":
        from rayrollout.demo import run

        return run(args.config, args.requests, args.concurrency)
    if args.cmd == "validate":
        return _validate(args.file)
    client = AdminClient(args.url, args.token, transport)
    try:
        return COMMANDS[args.cmd](client, args)
    except CLIError as e:
        print(f"rayrollout {args.cmd}: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
