"""A rollout's report: one self-contained HTML file and one PNG, from what the admin API returns
(``GET /rollout/<model>/status`` and ``/history``, or the client's ``status()`` and
``history()``).

``build`` is a function of those inputs only: no Ray, no HTTP, no clock. It shows the traffic
weights over time, each check's evidence against its rollback threshold (a plot per check, a
line per candidate), the checks' latest results, what they still wait for, the requests each
version served and failed, and every decision with its reason.

The plots need matplotlib, the ``report`` extra (``pip install 'rayrollout[report]'``); it is
imported only by ``build``, so importing rayrollout (or its CLI) does not need it.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rayrollout.errors import ConfigError, RolloutError

__all__ = ["ReportDependencyMissing", "ReportFiles", "build"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ReportDependencyMissing(RolloutError, ImportError):
    """matplotlib is not installed: the message names the extra that brings it."""

    code = "missing_dependency"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    png: Path


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "xb") as f:  # a new file, with the usual permissions (umask)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def build(status: dict[str, Any], history: list[dict[str, Any]], out_dir: Path | str,
          name: str) -> ReportFiles:
    """Write ``<out_dir>/<name>.html`` and ``<out_dir>/<name>.png`` (``out_dir`` is created)
    and return their paths.

    A model without a rollout, or one that has just started (no decision, no check yet),
    gives a report that says so. ``ConfigError`` names the field of a malformed input or a
    ``name`` that is not a plain file name; ``ReportDependencyMissing`` when matplotlib is not
    installed."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"name: {name!r} is not a file name (letters, digits, '_', '.', "
                          f"'-'; at most 128; not starting with '.' or '-')")
    from rayrollout.report.data import extract
    from rayrollout.report.inputs import parse

    data = extract(*parse(status, history))
    try:
        from rayrollout.report import plots
    except ImportError as e:
        raise ReportDependencyMissing(
            f"a report needs matplotlib ({e}): pip install 'rayrollout[report]'") from None
    from rayrollout.report.page import render

    images = plots.draw(data)
    html = render(data, images.weights, images.evidence, images.requests)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out / f"{name}.html", out / f"{name}.png")
    _write(files.html, html.encode("utf-8"))
    _write(files.png, images.summary)
    return files
