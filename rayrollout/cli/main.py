"""``rayrollout`` command line: validate configs, run the demo, and steer a rollout through the
ingress's admin API (``/rollout/<model>/...``) over HTTP.

::

    rayrollout validate configs/rollout-digits.yaml
    export RAYROLLOUT_URL=http://127.0.0.1:8000 RAYROLLOUT_TOKEN=...
    rayrollout start configs/rollout-digits.yaml     # the spec's model
    rayrollout status --watch         # live view until promoted, completed or rolled back
    rayrollout pause | resume | approve | promote [--full] | abort --reason why | undo | retry
    rayrollout history --limit 20
    rayrollout --model mlp status     # one of several models (default: the only one served)

Exit status: 0 ok; 2 a bad file or a request the server refused (4xx); 1 the server failed or
could not be reached; ``status --watch`` exits 3 when the rollout was rolled back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import ValidationError

from rayrollout.cli import drill
from rayrollout.cli.render import render_history, render_status, safe_text, say
from rayrollout.cli.validate import validate
from rayrollout.client.admin import AdminClient
from rayrollout.controller.phases import VERBS
from rayrollout.errors import AdminError, ConfigError, RolloutError
from rayrollout.spec import format_validation_error, load_spec

DEFAULT_URL = "http://127.0.0.1:8000"
ROLLED_BACK_EXIT = 3

# Verb parameters as command-line options (the verbs and which takes what: ``VERBS``).
VERB_OPTIONS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "full": (("--full", {"action": "store_true", "help": "to 100%% now, not the next step"}),),
    "candidate": (("--candidate", {"default": None, "metavar": "NAME"}),),
    "reason": (("--reason", {"default": ""}),),
}


def exit_status(e: RolloutError) -> int:
    """2 for what the user can fix (a bad file, a request the server refused with a 4xx);
    1 for a server that failed or could not be reached."""
    if isinstance(e, AdminError):
        return 2 if e.status is not None and e.status < 500 else 1
    return 2


def _dump(x: Any) -> str:
    return json.dumps(x, indent=2, sort_keys=True)


def _status(c: AdminClient, args: argparse.Namespace) -> int:
    if not args.watch:
        st = c.status()
        say(_dump(st) if args.json else render_status(st))
        return 0
    tty = sys.stdout.isatty() and not args.json
    while True:
        st = c.status()
        if args.json:
            say(json.dumps(st), flush=True)
        else:
            frame = safe_text(render_status(st))
            # Redraw in place on a terminal (our one escape); a pipe gets frame after frame.
            print(("\x1b[H\x1b[2J" + frame) if tty else frame + "\n", flush=True)
        if st.get("final"):
            return ROLLED_BACK_EXIT if st["phase"] == "rolled_back" else 0
        time.sleep(args.interval)


def _start(c: AdminClient, args: argparse.Namespace) -> int:
    try:
        spec = load_spec(args.file)
    except ValidationError as e:
        raise ConfigError(f"{args.file}: invalid\n{format_validation_error(e)}") from None
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{args.file}: cannot read: {e}") from None
    say(render_status(c.start(spec.model_dump(mode="json"))))
    return 0


def _verb(c: AdminClient, args: argparse.Namespace) -> int:
    params = {p: getattr(args, p) for p in VERBS[args.cmd].params}
    st = c.command(args.cmd, **params)
    say(f"{args.cmd}: phase {st['phase']}")
    say(render_status(st))
    return 0


def _history(c: AdminClient, args: argparse.Namespace) -> int:
    entries = c.history(args.limit, args.all)
    say(_dump(entries) if args.json else render_history(entries))
    return 0


def _verify(c: AdminClient, args: argparse.Namespace) -> int:
    r = c.verify()
    say(("ok: " if r["ok"] else "BROKEN: ") + str(r["message"]))
    return 0 if r["ok"] else 1


def _replay(c: AdminClient, args: argparse.Namespace) -> int:
    r = c.replay(args.rollout)
    same = "identical to" if r["identical"] else "DIFFERENT from"
    say(f"rollout #{r['rollout']}: {r['replayed']} replayed decisions {same} "
        f"the {r['recorded']} recorded")
    return 0 if r["identical"] else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rayrollout", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--url",
        default=os.environ.get("RAYROLLOUT_URL", DEFAULT_URL),
        help="the ingress's base URL (env RAYROLLOUT_URL)",
    )
    p.add_argument(
        "--model",
        default=os.environ.get("RAYROLLOUT_MODEL") or None,
        help="the model whose rollout to steer (env RAYROLLOUT_MODEL; default: the only model "
             "the ingress serves, or the spec's for start)",
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
    for verb in VERBS.values():
        vp = sub.add_parser(verb.name, help=verb.help.replace("%", "%%"))
        for param in verb.params:
            for flag, kw in VERB_OPTIONS[param]:
                vp.add_argument(flag, **kw)
    h = sub.add_parser("history", help="the decision log")
    h.add_argument("--limit", type=int, default=20, metavar="N")
    h.add_argument("--all", action="store_true", help="every rollout of the model")
    h.add_argument("--json", action="store_true")
    sub.add_parser("verify", help="check the decision log's hash chain")
    r = sub.add_parser("replay", help="replay a rollout's recorded inputs through decide()")
    r.add_argument("--rollout", type=int, default=None)
    drill.add_parser(sub)
    return p


Command = Callable[[AdminClient, argparse.Namespace], int]
COMMANDS: dict[str, Command] = {
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
        from rayrollout.cli.demo import run

        return run(args.config, args.requests, args.concurrency)
    if args.cmd == "validate":
        return validate(args.file)
    if args.cmd == "drill":
        return drill.command(args)
    client = AdminClient(args.url, args.token, transport, model=args.model)
    try:
        return COMMANDS[args.cmd](client, args)
    except RolloutError as e:
        say(f"rayrollout {args.cmd}: {e}", file=sys.stderr)
        return exit_status(e)
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
