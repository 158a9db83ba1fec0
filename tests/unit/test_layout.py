"""The package's shape: the curated public API, its typing marker, the import contracts, and
documentation whose links stay inside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import rayrollout
from tests.conftest import ROOT

PUBLIC = {
    # the spec and how to load it
    "RolloutSpec", "VersionSpec", "VersionConfig", "RouterConfig", "StepSpec", "AnalysisSpec",
    "CheckSpec", "load_spec",
    # bringing your own model: a runtime class, or a Serve deployment called with tensors
    "ModelRuntime", "ModelSignature", "TensorSpec", "TensorModel",
    # the Python API and the admin API client
    "start", "connect", "Rollout", "AdminClient",
    # outcomes and phases
    "Verdict", "CheckResult", "Phase",
    # the exception tree users catch
    "RolloutError", "ConfigError", "RequestError", "BadRequest", "PayloadTooLarge", "NotFound",
    "Unauthorized", "Conflict", "IllegalTransition", "UnavailableError", "ModelError",
    "ModelTimeout", "AdminError",
    "__version__",
}


def test_the_public_api_is_what_all_says() -> None:
    assert set(rayrollout.__all__) == PUBLIC
    assert sorted(rayrollout.__all__) == list(rayrollout.__all__)
    for name in rayrollout.__all__:
        assert getattr(rayrollout, name) is not None, name
    assert rayrollout.__version__ == "0.1.0"


def test_importing_the_package_starts_no_ray_and_loads_no_model_runtime() -> None:
    code = ("import sys, rayrollout; "
            "print(sorted(m for m in ('ray', 'starlette', 'onnxruntime', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "[]"


def test_the_package_is_typed() -> None:
    assert (Path(rayrollout.__file__).parent / "py.typed").exists()


def test_every_subpackage_has_an_init_with_a_docstring() -> None:
    pkg = Path(rayrollout.__file__).parent
    for d in sorted(p for p in pkg.iterdir() if p.is_dir() and p.name != "__pycache__"):
        init = d / "__init__.py"
        assert init.exists(), d
        assert init.read_text().lstrip().startswith('"""'), init


def test_the_import_contracts_hold() -> None:
    """The architecture's rules (``[tool.importlinter]`` in pyproject.toml): no cycles, layers,
    no Ray outside the shell. The test command runs ``lint-imports`` too; this keeps a plain
    ``pytest`` run honest."""
    exe = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(exe), "--no-cache"], capture_output=True, text=True, cwd=ROOT,
                       check=False)
    assert r.returncode == 0, r.stdout[-4000:]
    assert "0 broken" in r.stdout


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md")),
            *sorted((ROOT / "benchmarks").glob("**/*.md")), ROOT / "models" / "README.md"]


def test_documentation_links_resolve_inside_the_repository() -> None:
    checked = 0
    for doc in _docs():
        if not doc.exists():
            continue
        text = doc.read_text()
        for target in LINK.findall(text):
            if target.startswith(("http://", "https://", "mailto:", "#")):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(ROOT), f"{doc.name}: {target} leaves the repository"
            assert path.exists(), f"{doc.name}: {target} does not exist"
            checked += 1
        assert "../shared" not in text, f"{doc.name} points outside the repository"
    assert checked > 5


def test_project_root_is_the_checkout_relative_artifacts_resolve_against() -> None:
    from rayrollout.spec import VersionConfig, project_root

    assert project_root() == ROOT
    cfg = VersionConfig.model_validate(
        {"model": "m", "name": "v1", "runtime": "onnx", "artifact": "models/artifacts/v1.onnx"})
    assert cfg.resolved().artifact == str(ROOT / "models" / "artifacts" / "v1.onnx")
