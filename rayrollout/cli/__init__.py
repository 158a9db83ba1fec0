"""The ``rayrollout`` command line (``main``), its text rendering and the demo."""

from rayrollout.cli.main import DEFAULT_URL, build_parser, main
from rayrollout.cli.render import render_history, render_status, status_line

__all__ = ["DEFAULT_URL", "build_parser", "main", "render_history", "render_status", "status_line"]
