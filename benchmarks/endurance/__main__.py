"""``python -m benchmarks.endurance``: run the long forms of the load and chaos tests (pytest in
a subprocess, ``RAYROLLOUT_LONG_FORM=1``), collect each test's outcome, duration and figures,
print them and write ``results/endurance.json``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from benchmarks._common.output import git_rev, machine, shown, table, write_result
from benchmarks._common.session import BASE_ENV, ROOT

NAME = "endurance"
# The tests with a long form, as pytest node ids.
TESTS = {
    "load-rollback": "tests/integration/test_load.py::test_rollback_under_load",
    "load-promotion": "tests/integration/test_load.py::test_promotion_under_load",
    "controller-kills":
        "tests/integration/test_chaos.py::test_controller_killed_during_one_rollout",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME}",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="the short forms, as CI runs them (~4 min instead of ~8)")
    p.add_argument("--only", choices=sorted(TESTS), action="append", default=None,
                   help="run only this test (repeatable); default: all")
    p.add_argument("--timeout-s", type=float, default=1800)
    p.add_argument("--out", type=Path, default=None)
    return p.parse_args(argv)


def run_pytest(ids: list[str], long_form: bool, timeout_s: float
               ) -> tuple[int, list[dict[str, Any]], float]:
    """Run the tests in one pytest session; return its exit code, one row per test (outcome,
    seconds of its call, the figures it recorded with ``record_property``) and the wall time."""
    with tempfile.TemporaryDirectory(prefix="rr-endurance-") as d:
        junit = Path(d) / "junit.xml"
        env = {**os.environ, **BASE_ENV, "RAYROLLOUT_LONG_FORM": "1" if long_form else "0"}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               f"--basetemp={d}/tmp", f"--junitxml={junit}", "-o", "junit_family=xunit1", *ids]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=timeout_s, check=False)
        wall = time.monotonic() - t0
        rows = parse_junit(junit) if junit.exists() else []
    return proc.returncode, rows, wall


def parse_junit(path: Path) -> list[dict[str, Any]]:
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                break
        figures: dict[str, Any] = {}
        for prop in case.iter("property"):
            try:
                figures.update(json.loads(prop.get("value", "")))
            except json.JSONDecodeError:
                figures[prop.get("name", "")] = prop.get("value")
        rows.append({"test": case.get("name", ""), "outcome": outcome,
                     "seconds": round(float(case.get("time", 0.0)), 1), "figures": figures})
    return rows


def ratio(num: Any, den: Any) -> str:
    return f"{num / den:.4f}x" if isinstance(num, int | float) and den else "-"


def print_report(rows: list[dict[str, Any]], long_form: bool, wall: float) -> None:
    print(f"\nendurance ({'long' if long_form else 'short'} forms), {wall:.0f} s in all")
    out = []
    for r in rows:
        f = r["figures"]
        failed = sum((f.get("failed") or {}).values())
        out.append([r["test"], r["outcome"], r["seconds"], f.get("sent", "-"),
                    f.get("recorded", "-"), failed, ratio(f.get("recorded"), f.get("sent")),
                    ratio(failed, f.get("sent")), f.get("rollout_s", "-"),
                    len(f.get("kills", [])) or "-", f.get("s_to_answer_max", "-")])
    print(table(out, ["test", "outcome", "s", "sent", "recorded", "failed", "recorded/sent",
                      "failed/sent", "rollout s", "kills", "max s to answer"]))


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    long_form = not a.quick
    names = a.only or list(TESTS)
    ids = [TESTS[n] for n in names]
    rc, rows, wall = run_pytest(ids, long_form, a.timeout_s)
    print_report(rows, long_form, wall)
    doc = {
        "benchmark": NAME,
        "config": {"long_form": long_form, "tests": ids},
        "machine": machine(),
        "git": git_rev(),
        "pytest_exit_code": rc,
        "wall_s": round(wall, 1),
        "tests": rows,
    }
    path = write_result(NAME if long_form else f"{NAME}_quick", doc, a.out)
    print(f"wrote {shown(path)}")
    return 0 if rc == 0 and rows and all(r["outcome"] == "passed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
