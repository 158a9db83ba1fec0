"""How far a rollout spec may reach on the machines it runs on: which artifact files.

A spec can come over HTTP from anyone holding an ``admin`` token, so what it names is held to
what the operator configured where the controller runs, not to what the spec says:

* Artifacts must lie under an artifact root: the project's ``models/`` directory and every
  directory in ``RAYROLLOUT_ARTIFACT_ROOTS`` (separated by ``os.pathsep``). The path is
  resolved first (``..`` and symbolic links), and a path outside every root is refused
  without looking at the file, so the answer never says whether it exists.

(Webhook hosts are held to ``RAYROLLOUT_WEBHOOK_HOSTS`` by ``rayrollout.notify.webhook``.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rayrollout.errors import ConfigError
from rayrollout.spec.rollout import RolloutSpec
from rayrollout.spec.serving import project_root

ARTIFACT_ROOTS_ENV = "RAYROLLOUT_ARTIFACT_ROOTS"


def artifact_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if environ is None else environ
    extra = [Path(p) for p in env.get(ARTIFACT_ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    return [r.resolve() for r in [project_root() / "models", *extra]]


def check_artifacts(spec: RolloutSpec, environ: Mapping[str, str] | None = None) -> None:
    """``ConfigError`` naming the first version whose artifact is outside every root."""
    roots = artifact_roots(environ)
    named = [("stable", spec.stable)] + [(f"candidates[{i}]", c)
                                         for i, c in enumerate(spec.candidates)]
    for where, v in named:
        path = v.for_model(spec.model).artifact_path().resolve()
        if not any(path.is_relative_to(r) for r in roots):
            raise ConfigError(
                f"{where}.artifact={v.artifact[:200]!r} is outside the artifact roots; put it "
                f"under the project's models/ or a directory listed in {ARTIFACT_ROOTS_ENV} "
                "where the controller runs")
