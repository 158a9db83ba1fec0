"""``rayrollout`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from rayrollout.config import format_validation_error


def _validate(path: Path) -> int:
    from rayrollout.demo import load_serve_config

    try:
        router, versions = load_serve_config(path)
    except ValidationError as e:
        print(f"{path}: invalid\n{format_validation_error(e)}", file=sys.stderr)
        return 2
    except (OSError, yaml.YAMLError, KeyError) as e:
        print(f"{path}: cannot read: {e}", file=sys.stderr)
        return 2
    missing = [v for v in router.live_versions() if v not in {x.name for x in versions}]
    if missing:
        print(f"{path}: invalid\nweights: versions {missing} have no application", file=sys.stderr)
        return 2
    print(f"{path}: ok (model {router.model!r}, versions {[v.name for v in versions]})")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rayrollout", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="run the demo on an embedded local Ray")
    d.add_argument("--config", type=Path, default=None)
    d.add_argument("--requests", type=int, default=2000)
    d.add_argument("--concurrency", type=int, default=16)
    v = sub.add_parser("validate", help="validate a config file")
    v.add_argument("file", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "demo":
        from rayrollout.demo import run

        return run(args.config, args.requests, args.concurrency)
    return _validate(args.file)


if __name__ == "__main__":
    sys.exit(main())
