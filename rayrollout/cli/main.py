"""``rayrollout`` command line (click): validate configs, run the demo and the drills, and steer
a rollout through the ingress's admin API (``/rollout/<model>/...``) over HTTP.

Exit status: 0 ok; 2 bad input (an unknown option or value, a bad file, a request the server
refused with a 4xx); 1 the server failed or could not be reached, ``verify`` found a broken
chain, ``replay`` differed or a drill failed; ``status --watch`` exits 3 when the rollout was
rolled back. The read commands take ``-o json`` for scripts. What comes from a server or a file
is printed through ``safe_text``; an error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx
import yaml
from pydantic import ValidationError

from rayrollout.cli import drill
from rayrollout.cli.render import render_history, render_status, say
from rayrollout.cli.validate import validate
from rayrollout.client.admin import AdminClient
from rayrollout.controller.phases import VERBS
from rayrollout.errors import AdminError, ConfigError, RolloutError
from rayrollout.spec import format_validation_error, load_spec

DEFAULT_URL = "http://127.0.0.1:8000"
ROLLED_BACK_EXIT = 3
INTERRUPTED_EXIT = 130

HELP = """Safe model rollouts on Ray Serve: steer them through the ingress's admin API.

\b
  export RAYROLLOUT_URL=http://127.0.0.1:8000 RAYROLLOUT_TOKEN=...
  rayrollout validate configs/rollout-digits.yaml
  rayrollout start configs/rollout-digits.yaml
  rayrollout status --watch          # live until promoted, completed or rolled back (exit 3)
  rayrollout pause | resume | approve | promote [--full] | abort --reason why | undo | retry
  rayrollout history --limit 20 -o json
  rayrollout report digits --out reports/
  rayrollout --model mlp status      # one of several models (default: the only one served)

Exit status: 0 ok; 2 bad input or a request the server refused (4xx); 1 the server failed or
could not be reached; status --watch exits 3 when the rollout was rolled back."""


@dataclass
class Settings:
    """What the group's options resolve to, and the HTTP transport (a test's fake; None: the
    network). Passed as the click context's ``obj``."""

    transport: httpx.BaseTransport | None = None
    url: str = DEFAULT_URL
    model: str | None = None
    token: str | None = None


def exit_status(e: RolloutError) -> int:
    """2 for what the user can fix (a bad file, a request the server refused with a 4xx);
    1 for a server that failed, could not be reached or answered something else than JSON."""
    if isinstance(e, AdminError):
        return 2 if e.status is not None and 400 <= e.status < 500 else 1
    return 2


def _dump(x: Any) -> str:
    return json.dumps(x, indent=2, sort_keys=True)


def _check_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An ``http://`` or ``https://`` URL with a host (click's usage error otherwise)."""
    if value is None:
        return None
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as e:
        raise click.BadParameter(f"{value!r}: {e}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL with a host")
    return value


def _token_from(ctx: click.Context, token: str | None, token_env: str | None) -> str | None:
    """``--token``, else the variable ``--token-env`` names; None when neither was given."""
    explicit = token is not None and ctx.get_parameter_source("token") in (
        click.core.ParameterSource.COMMANDLINE, None)
    if token_env is None:
        return token
    if explicit:
        raise click.UsageError("give --token or --token-env, not both", ctx)
    value = os.environ.get(token_env)
    if not value:
        raise click.BadParameter(f"the environment variable {token_env!r} is not set",
                                 ctx, param_hint="'--token-env'")
    return value


# -- options shared by the commands ------------------------------------------------------------

F = Callable[..., Any]


def output_option(f: F) -> F:
    return click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, help="json: the server's answer, for scripts")(f)


def json_flag(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="the same as -o json")(f)


def connection_options(model: bool = True) -> Callable[[F], F]:
    """``--url``, ``--token``, ``--token-env`` (and ``--model``) on a command too: given there,
    they override the group's (``rayrollout status --url ...`` works as well)."""

    def deco(f: F) -> F:
        f = click.option("--token-env", metavar="VAR", default=None,
                         help="read the admin token from the environment variable VAR")(f)
        f = click.option("--token", default=None, metavar="TOKEN", help="admin bearer token")(f)
        if model:
            f = click.option("--model", default=None, metavar="NAME",
                             help="the model whose rollout to steer")(f)
        return click.option("--url", default=None, metavar="URL", callback=_check_url,
                            help="the ingress's base URL")(f)

    return deco


def _client(ctx: click.Context, url: str | None, token: str | None, token_env: str | None,
            model: str | None) -> AdminClient:
    s: Settings = ctx.ensure_object(Settings)
    tok = _token_from(ctx, token, token_env) if token is not None or token_env else s.token
    return AdminClient(url or s.url, tok, s.transport, model=model or s.model)


def remote(f: Callable[..., int]) -> Callable[..., None]:
    """Run a command against the admin API: its client from the options, its exit status from
    what it returns; a ``RolloutError`` is one line on stderr (``exit_status``), a server
    answer of the wrong shape exit 1, Ctrl-C 130."""

    def run(url: str | None = None, token: str | None = None, token_env: str | None = None,
            model: str | None = None, **kw: Any) -> None:
        ctx = click.get_current_context()
        c = _client(ctx, url, token, token_env, model)
        try:
            code = f(c, **kw)
        except AdminError as e:
            say(f"rayrollout {ctx.info_name}: " + " ".join(str(e).split("\n")), file=sys.stderr)
            code = exit_status(e)
        except RolloutError as e:
            say(f"rayrollout {ctx.info_name}: {e}", file=sys.stderr)
            code = exit_status(e)
        except (KeyError, TypeError, ValueError) as e:
            say(f"rayrollout {ctx.info_name}: unexpected answer from {c.url} "
                f"({type(e).__name__}: {e})", file=sys.stderr)
            code = 1
        except KeyboardInterrupt:
            code = INTERRUPTED_EXIT
        finally:
            c.close()
        ctx.exit(code)

    run.__name__, run.__doc__ = f.__name__, f.__doc__
    return run


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


# -- the group -----------------------------------------------------------------------------------


@click.group("rayrollout", help=HELP, context_settings={"help_option_names": ["-h", "--help"],
                                          "max_content_width": 100})
@click.option("--url", envvar="RAYROLLOUT_URL", default=DEFAULT_URL, show_default=True,
              metavar="URL", callback=_check_url,
              help="the ingress's base URL (env RAYROLLOUT_URL)")
@click.option("--model", envvar="RAYROLLOUT_MODEL", default=None, metavar="NAME",
              help="the model whose rollout to steer (env RAYROLLOUT_MODEL; default: the only "
                   "model the ingress serves, or the spec's for start)")
@click.option("--token", envvar="RAYROLLOUT_TOKEN", default=None, metavar="TOKEN",
              help="admin bearer token (env RAYROLLOUT_TOKEN)")
@click.option("--token-env", metavar="VAR", default=None,
              help="read the admin token from the environment variable VAR instead")
@click.pass_context
def cli(ctx: click.Context, url: str, model: str | None, token: str | None,
        token_env: str | None) -> None:
    s = ctx.ensure_object(Settings)
    s.url, s.model, s.token = url, model, _token_from(ctx, token, token_env)


@cli.command(help="Run the demo on an embedded local Ray.")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="the first rollout's spec (default: configs/rollout-digits.yaml)")
@click.option("--requests", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True)
@click.pass_context
def demo(ctx: click.Context, config: Path | None, requests: int, concurrency: int) -> None:
    from rayrollout.cli.demo import run

    ctx.exit(run(config, requests, concurrency))


@cli.command("validate", help="Validate a rollout spec or a Serve config file.")
@click.argument("file", type=click.Path(path_type=Path))
@click.pass_context
def validate_cmd(ctx: click.Context, file: Path) -> None:
    ctx.exit(validate(file))


@cli.command(help="The rollout's status: once, or live with --watch.")
@click.option("--watch", is_flag=True,
              help="redraw until promoted, completed or rolled back (exit 3)")
@click.option("--interval", type=click.FloatRange(min=0), default=1.0, show_default=True,
              metavar="S", help="seconds between refreshes")
@json_flag
@output_option
@connection_options()
@remote
def status(c: AdminClient, watch: bool, interval: float, as_json: bool, output: str) -> int:
    as_json = as_json or output == "json"
    tty = _stdout_is_terminal() and not as_json
    if tty:
        from rayrollout.cli import watch as live

        if watch:
            return live.watch(c, interval, _console())
        st = c.status()
        _console().print(live.frame(st, live.recent(c, st)))
        return 0
    if not watch:
        st = c.status()
        say(_dump(st) if as_json else render_status(st))
        return 0
    import time

    while True:
        st = c.status()
        # JSON: one object per line; text: frame after frame (a pipe, a log file).
        say(json.dumps(st) if as_json else render_status(st) + "\n", flush=True)
        if st.get("final"):
            return ROLLED_BACK_EXIT if st.get("phase") == "rolled_back" else 0
        time.sleep(interval)


@cli.command(help="Start a rollout of a spec file (checked here first).")
@click.argument("file", type=click.Path(path_type=Path))
@output_option
@connection_options()
@remote
def start(c: AdminClient, file: Path, output: str) -> int:
    try:
        spec = load_spec(file)
    except ValidationError as e:
        raise ConfigError(f"{file}: invalid\n{format_validation_error(e)}") from None
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{file}: cannot read: {e}") from None
    st = c.start(spec.model_dump(mode="json"))
    say(_dump(st) if output == "json" else render_status(st))
    return 0


# Verb parameters as command-line options (the verbs and which takes what: ``VERBS``).
VERB_OPTIONS: dict[str, Callable[[F], F]] = {
    "full": click.option("--full", is_flag=True, help="to 100% now, not the next step"),
    "candidate": click.option("--candidate", default=None, metavar="NAME",
                              help="the candidate to promote (default: the only one)"),
    "reason": click.option("--reason", default="", help="why (kept in the decision log)"),
}


def _verb_command(name: str, help_text: str, params: Sequence[str]) -> click.Command:
    def verb(c: AdminClient, output: str, **kw: Any) -> int:
        st = c.command(name, **{p: kw[p] for p in params})
        if output == "json":
            say(_dump(st))
        else:
            say(f"{name}: phase {st['phase']}")
            say(render_status(st))
        return 0

    verb.__name__ = name
    f: F = remote(verb)
    f = output_option(connection_options()(f))
    for p in reversed(params):
        f = VERB_OPTIONS.get(p, click.option(f"--{p.replace('_', '-')}", p, default=None))(f)
    return click.command(name, help=help_text[:1].upper() + help_text[1:] + ".")(f)


for _verb in VERBS.values():
    cli.add_command(_verb_command(_verb.name, _verb.help, _verb.params))


@cli.command(help="The decision log of the rollout.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              metavar="N", help="the newest N decisions")
@click.option("--all", "all_rollouts", is_flag=True, help="every rollout of the model")
@json_flag
@output_option
@connection_options()
@remote
def history(c: AdminClient, limit: int, all_rollouts: bool, as_json: bool, output: str) -> int:
    entries = c.history(limit, all_rollouts)
    say(_dump(entries) if as_json or output == "json" else render_history(entries))
    return 0


@cli.command(help="Check the decision log's hash chain (exit 1 when broken).")
@output_option
@connection_options()
@remote
def verify(c: AdminClient, output: str) -> int:
    r = c.verify()
    say(_dump(r) if output == "json" else ("ok: " if r["ok"] else "BROKEN: ") + str(r["message"]))
    return 0 if r["ok"] else 1


@cli.command(help="Replay a rollout's recorded inputs through decide() (exit 1 when they differ).")
@click.option("--rollout", type=click.IntRange(min=1), default=None, metavar="N",
              help="the rollout (default: the current one)")
@output_option
@connection_options()
@remote
def replay(c: AdminClient, rollout: int | None, output: str) -> int:
    r = c.replay(rollout)
    if output == "json":
        say(_dump(r))
    else:
        same = "identical to" if r["identical"] else "DIFFERENT from"
        say(f"rollout #{r['rollout']}: {r['replayed']} replayed decisions {same} "
            f"the {r['recorded']} recorded")
    return 0 if r["identical"] else 1


@cli.command(help="Write an HTML and a PNG report of a model's rollout (running or finished), "
                  "from its status and decision log over the admin API. MODEL: default --model, "
                  "or the only model the ingress serves.")
@click.argument("model", required=False, default=None)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="the folder to write the files to")
@click.option("--name", default=None,
              help="the files' base name (default: rollout-<model>-<rollout>)")
@output_option
@connection_options(model=False)
@remote
def report(c: AdminClient, out_dir: Path, name: str | None, output: str) -> int:
    st = c.status()
    if st.get("rollout") is None:
        raise ConfigError(f"model {st.get('model')}: no rollout to report")
    entries = c.history(None)
    from rayrollout.report import build  # its plotting library only when a report is made

    files = build(st, entries, out_dir, name or f"rollout-{st['model']}-{st['rollout']}")
    paths = {"html": str(files.html), "png": str(files.png)}
    say(_dump({"model": st["model"], "rollout": st["rollout"], **paths}) if output == "json"
        else f"report of {st['model']} rollout #{st['rollout']} ({st['phase']}):\n"
             f"  {paths['html']}\n  {paths['png']}")
    return 0


@cli.command("drill", help="Rehearse a rollback: a candidate with an injected fault.")
@click.option("--fault", required=True, type=click.Choice([*drill.KINDS, "all"]),
              help="the kind of fault, or all")
@click.option("--address", default=None,
              help="a Ray cluster to rehearse on (its Serve HTTP proxy: --url); default: an "
                   "embedded local Ray, started and stopped here")
@click.option("--bound-s", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="S", help="the rollback must come within S seconds of the first "
                                "candidate traffic (default: per fault)")
@json_flag
@output_option
@click.pass_context
def drill_cmd(ctx: click.Context, fault: str, address: str | None, bound_s: float | None,
              as_json: bool, output: str) -> None:
    s: Settings = ctx.ensure_object(Settings)
    try:
        code = drill.run(fault, address, s.url if address else None, bound_s,
                         as_json or output == "json")
    except (RolloutError, TimeoutError) as e:
        say(f"rayrollout drill: {e}", file=sys.stderr)
        code = 1
    ctx.exit(code)


# -- entry points --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    """Run the command line (``argv``: default ``sys.argv[1:]``) and return its exit status;
    ``transport`` replaces the network (tests)."""
    try:
        rv = cli.main(args=None if argv is None else list(argv), prog_name="rayrollout",
                      standalone_mode=False, obj=Settings(transport))
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort:
        return INTERRUPTED_EXIT
    except BrokenPipeError:  # ``rayrollout history | head``: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return rv if isinstance(rv, int) else 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """What ``argv`` asks for, without running it: ``cmd`` (the command's name) and every
    option and argument of the group and of the command, by name (click's usage error for bad
    input)."""
    with cli.make_context("rayrollout", list(argv), obj=Settings()) as ctx:
        rest = [*(getattr(ctx, "_protected_args", None) or ctx.protected_args), *ctx.args]
        name, cmd, args = cli.resolve_command(ctx, rest)
        assert cmd is not None and name is not None
        with cmd.make_context(name, args, parent=ctx) as sub:
            params = dict(ctx.params)  # a command's own --url etc. when given, else the group's
            params.update((k, v) for k, v in sub.params.items() if v is not None or k not in params)
            return argparse.Namespace(cmd=name, **params)


class Parser:
    """``build_parser()``'s answer from before the CLI moved to click: ``parse_args`` only."""

    def parse_args(self, argv: Sequence[str]) -> argparse.Namespace:
        return parse_args(argv)


def build_parser() -> Parser:
    return Parser()


if __name__ == "__main__":
    sys.exit(main())
