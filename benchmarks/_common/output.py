"""What every result carries and how it is shown: ``machine()``, ``git_rev()``,
``write_result()`` and the plain-text ``table()``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks._common.session import RESULTS, ROOT


def machine() -> dict[str, Any]:
    import httpx
    import numpy
    import onnxruntime
    import ray

    try:
        cpu_model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu_model = platform.processor()
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = None
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "loadavg_1m_at_start": load1,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "ray": ray.__version__,
            "onnxruntime": onnxruntime.__version__,
            "numpy": numpy.__version__,
            "httpx": httpx.__version__,
        },
    }


def git_rev() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def relativize(obj: Any, root: Path = ROOT) -> Any:
    """``obj`` with every string that is a path inside ``root`` made relative to it: a result
    names files of the repository, never of the machine it ran on."""
    prefix = f"{root}/"
    if isinstance(obj, str):
        return obj[len(prefix):] if obj.startswith(prefix) else obj
    if isinstance(obj, dict):
        return {k: relativize(v, root) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [relativize(v, root) for v in obj]
    return obj


def write_result(name: str, doc: dict[str, Any], out: Path | None = None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(relativize(doc), indent=2, sort_keys=False) + "\n")
    return path


def shown(path: Path) -> Path:
    """``path`` relative to the repository when it lies inside it (for the "wrote ..." line)."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r) for r in cells[1:]]
    return "\n".join(lines)
