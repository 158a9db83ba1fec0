"""The package as Ray users install it: a wheel of the repository (``pip install .``), not the
editable install the tests otherwise run on. It carries every file under ``rayrollout/`` (the
status page, ``py.typed``) and the ``rayrollout`` console script, and an installed package finds
``models/...`` in the current directory or under ``RAYROLLOUT_HOME``. No Ray is started."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

CONFIG = "configs/rollout-digits.yaml"

# Run as a script (its own directory first on sys.path, not the current one), so that the
# package comes from PYTHONPATH: the installed wheel, ahead of the editable install.
PROBE = """\
import json, sys
import rayrollout
from pathlib import Path
from rayrollout.spec import VersionConfig, project_root
pkg = Path(rayrollout.__file__).parent
art = VersionConfig.model_validate({"model": "m", "name": "v1", "runtime": "onnx",
                                    "artifact": "models/artifacts/v1.onnx"}).artifact_path()
print(json.dumps({"package": str(pkg), "root": str(project_root()), "artifact": str(art),
                  "ray_imported": "ray" in sys.modules,
                  "files": sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*")
                                  if p.is_file() and "__pycache__" not in p.parts)}))
"""


def _source_files() -> set[str]:
    pkg = ROOT / "rayrollout"
    return {str(p.relative_to(pkg)) for p in pkg.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, the directory it was installed into without its dependencies)."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"  # a copy: building in the checkout would leave build/ and egg-info there
    shutil.copytree(ROOT / "rayrollout", src / "rayrollout",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(src),
                    "-w", str(tmp / "dist")], check=True, cwd=tmp)
    [wheel] = (tmp / "dist").glob("rayrollout-*.whl")
    target = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(target),
                    str(wheel)], check=True, cwd=tmp)
    return wheel, target


def _env(target: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAYROLLOUT_HOME", "PYTHONPATH")}
    return {**env, "PYTHONPATH": str(target), **extra}


def _probe(target: Path, cwd: Path, **env: str) -> dict[str, Any]:
    script = target.parent / "probe" / "probe.py"  # a directory with no package in it
    script.parent.mkdir(exist_ok=True)
    script.write_text(PROBE)
    out = subprocess.run([sys.executable, str(script)], cwd=cwd, env=_env(target, **env),
                         capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def _cli(target: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    exe = target / "bin" / "rayrollout"  # the console script pip wrote from the wheel
    return subprocess.run([str(exe), *args], cwd=cwd, env=_env(target, **env),
                          capture_output=True, text=True, check=False)


def test_the_wheel_carries_every_file_of_the_package_and_the_console_script(
        installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = z.read(entry_points).decode()
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires_python = [ln for ln in z.read(metadata).decode().splitlines()
                           if ln.startswith("Requires-Python:")]
    packaged = {n.removeprefix("rayrollout/") for n in names if n.startswith("rayrollout/")}
    assert {"py.typed", "ingress/status_page.html"} <= packaged
    missing = _source_files() - packaged
    assert not missing, f"files under rayrollout/ the wheel leaves out (package-data?): {missing}"
    assert "[console_scripts]\nrayrollout = rayrollout.cli:main" in scripts
    assert requires_python == ["Requires-Python: >=3.10"]


def test_the_installed_package_shadows_the_checkout_and_finds_models_in_the_current_directory(
        installed: tuple[Path, Path]) -> None:
    _, target = installed
    got = _probe(target, cwd=ROOT)
    assert Path(got["package"]) == target / "rayrollout"
    assert {"py.typed", "ingress/status_page.html"} <= set(got["files"])
    assert not got["ray_imported"]
    # not a checkout any more: relative paths resolve against the current directory
    assert Path(got["root"]) == ROOT
    assert got["artifact"] == str(ROOT / "models" / "artifacts" / "v1.onnx")

    r = _cli(target, ROOT, "validate", CONFIG)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{CONFIG}: ok (rollout of model 'digits'"), r.stdout


def test_elsewhere_rayrollout_home_says_where_models_are(
        installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, target = installed
    elsewhere = (tmp_path / "elsewhere").resolve()
    elsewhere.mkdir()
    assert Path(_probe(target, cwd=elsewhere)["root"]) == elsewhere  # no home: the cwd

    got = _probe(target, cwd=elsewhere, RAYROLLOUT_HOME=str(ROOT))
    assert Path(got["package"]) == target / "rayrollout"
    assert Path(got["root"]) == ROOT
    assert got["artifact"] == str(ROOT / "models" / "artifacts" / "v1.onnx")

    config = str(ROOT / CONFIG)
    r = _cli(target, elsewhere, "validate", config, RAYROLLOUT_HOME=str(ROOT))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{config}: ok (rollout of model 'digits'"), r.stdout
    bad = _cli(target, elsewhere, "validate", "missing.yaml", RAYROLLOUT_HOME=str(ROOT))
    assert bad.returncode == 2
    assert "missing.yaml: cannot read" in bad.stderr
