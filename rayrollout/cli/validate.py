"""``rayrollout validate``: check a config file before anything starts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rayrollout.cli.render import say
from rayrollout.spec import (
    RolloutSpec,
    RouterConfig,
    VersionConfig,
    format_validation_error,
    load_spec,
)


def _is_rollout_config(doc: Any) -> bool:
    """A rollout spec itself, or a Serve config whose app uses ``build_rollout``."""
    if not isinstance(doc, dict):
        return False
    if "applications" not in doc:
        return True
    return any(
        str(app.get("import_path", "")).endswith(":build_rollout")
        for app in doc["applications"] or []
        if isinstance(app, dict)
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
        if _is_rollout_config(doc):
            spec = load_spec(path)
            checks = [c.check_name for c in [*spec.analysis.checks, *spec.analysis.guards]]
            say(
                f"{path}: ok (rollout of model {spec.model!r}: stable {spec.stable.name!r}, "
                f"candidates {[c.name for c in spec.candidates]}, "
                f"steps {[s.weight for s in spec.strategy.steps]}, checks {checks})"
            )
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


def _validate_serve(path: Path, doc: dict[str, Any]) -> int:
    """A Serve multi-app config of ``build_router`` and ``build_version`` applications."""
    router, versions = None, []
    for app in doc["applications"] or []:
        target = str(app["import_path"]).split(":")[-1]
        if target == "build_router":
            router = RouterConfig.model_validate(app["args"])
        elif target == "build_version":
            versions.append(VersionConfig.model_validate(app["args"]))
    if router is None:
        say(
            f"{path}: invalid\napplications: none uses rayrollout.serving.app:build_router "
            "or :build_rollout",
            file=sys.stderr,
        )
        return 2
    missing = [v for v in router.live_versions() if v not in {x.name for x in versions}]
    if missing:
        say(f"{path}: invalid\nweights: versions {missing} have no application", file=sys.stderr)
        return 2
    say(f"{path}: ok (model {router.model!r}, versions {[v.name for v in versions]})")
    return 0
