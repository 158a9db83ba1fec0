"""``rayrollout validate``: check a config file before anything starts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rayrollout.cli.render import say
from rayrollout.ingress.config import IngressConfig
from rayrollout.names import INGRESS_APP
from rayrollout.spec import (
    RolloutSpec,
    RouterConfig,
    VersionConfig,
    format_validation_error,
    load_spec,
)


def step_plan(spec: RolloutSpec) -> list[str]:
    """What each step needs to catch ``analysis.detect``, and how long that takes at
    ``detect.expected_rps`` (empty when the spec asks for nothing)."""
    d = spec.analysis.detect
    if d is None:
        return []
    lines = []
    n = len(spec.candidates)
    for i, (step, (need, why)) in enumerate(zip(spec.strategy.steps, spec.step_needs(),
                                                strict=True)):
        need = max(need, step.min_requests)
        when = ""
        if d.expected_rps:
            seconds = need / (d.expected_rps * step.weight / 100.0)
            seconds = max(seconds, step.min_duration_s)
            when = f", about {_duration(seconds)} at {d.expected_rps:g} req/s"
        lines.append(f"  step {i + 1} ({step.weight:g}% x {n}): needs {need:,} candidate "
                     f"requests to catch {why}{when}")
    return lines


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _rollout(spec: RolloutSpec) -> str:
    checks = [c.check_name for c in [*spec.analysis.checks, *spec.analysis.guards]]
    return (f"rollout of model {spec.model!r}: stable {spec.stable.name!r}, "
            f"candidates {[c.name for c in spec.candidates]}, "
            f"steps {[s.weight for s in spec.strategy.steps]}, checks {checks}")


def validate(path: Path) -> int:
    """Check a rollout spec or a Serve config of rayrollout's builders; print ok or the errors
    (one per line, naming field and value). Returns the exit status: 0 ok, 2 invalid."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        say(f"{path}: cannot read: {e}", file=sys.stderr)
        return 2
    if not isinstance(doc, dict):
        say(
            f"{path}: invalid\n<root>: expected a mapping (got {type(doc).__name__})",
            file=sys.stderr,
        )
        return 2
    try:
        if "applications" not in doc:
            spec = load_spec(path)
            say(f"{path}: ok ({_rollout(spec)})")
            for line in step_plan(spec):
                say(line)
            return 0
        return _validate_serve(path, doc)
    except ValidationError as e:
        say(f"{path}: invalid\n{format_validation_error(e)}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, AttributeError) as e:
        say(f"{path}: invalid\nmissing or malformed entry: {e}", file=sys.stderr)
        return 2


INGRESS_BUILDERS = ("build_ingress", "build_rollout", "build_router")


def _invalid(path: Path, message: str) -> int:
    say(f"{path}: invalid\n{message}", file=sys.stderr)
    return 2


def _validate_serve(path: Path, doc: dict[str, Any]) -> int:
    """A Serve multi-app config: one ingress application named ``rayrollout``
    (``build_ingress``, ``build_rollout`` or ``build_router``) and the ``build_version``
    applications of its plain models."""
    ingress: list[tuple[int, str, IngressConfig]] = []
    versions: list[VersionConfig] = []
    for i, app in enumerate(doc["applications"] or []):
        target = str(app["import_path"]).split(":")[-1]
        args = app.get("args") or {}
        if target == "build_ingress":
            ingress.append((i, str(app.get("name")), IngressConfig.model_validate(args)))
        elif target == "build_rollout":
            cfg = IngressConfig(rollouts=[RolloutSpec.model_validate(args)])
            ingress.append((i, str(app.get("name")), cfg))
        elif target == "build_router":
            cfg = IngressConfig(models=[RouterConfig.model_validate(args)])
            ingress.append((i, str(app.get("name")), cfg))
        elif target == "build_version":
            versions.append(VersionConfig.model_validate(args))
    if not ingress:
        return _invalid(path, "applications: none uses rayrollout.serving.app:build_ingress, "
                              ":build_rollout or :build_router")
    if len(ingress) > 1:
        return _invalid(path, f"applications: {len(ingress)} ingress applications; one "
                              "(build_ingress) serves every model")
    i, name, cfg = ingress[0]
    if name != INGRESS_APP:
        return _invalid(path, f"applications.{i}.name: {name!r}; the ingress application is "
                              f"named {INGRESS_APP!r} (the controllers and the port find it "
                              "by that name)")
    have = {(v.model, v.name) for v in versions}
    for router in cfg.models:
        missing = [v for v in router.live_versions() if (router.model, v) not in have]
        if missing:
            return _invalid(path, f"weights: versions {missing} of model {router.model!r} "
                                  "have no application")
    lines = [_rollout(s) for s in cfg.rollouts] + [
        f"model {r.model!r}, versions "
        f"{[v.name for v in versions if v.model == r.model]}" for r in cfg.models]
    if len(lines) == 1:
        say(f"{path}: ok ({lines[0]})")
    else:
        say(f"{path}: ok ({len(lines)} models on one ingress)")
        for line in lines:
            say(f"  {line}")
    for spec in cfg.rollouts:
        for line in step_plan(spec):
            say(line)
    return 0
