"""The ``rayrollout`` command line (``main``; the click group ``cli``), its text rendering,
the live view and the demo."""

from rayrollout.cli.main import DEFAULT_URL, build_parser, cli, main, parse_args
from rayrollout.cli.render import render_history, render_status, status_line

__all__ = ["DEFAULT_URL", "build_parser", "cli", "main", "parse_args", "render_history",
           "render_status", "status_line"]
