"""How far a rollout spec may reach on the machines it runs on: which artifacts.

A spec can come over HTTP from anyone holding an ``admin`` token, so what it names is held to
what the operator configured where the controller runs, not to what the spec says:

* A local artifact (a path, or a ``file://`` URI read as its path) must lie under an artifact
  root directory: the project's ``models/`` and every directory in
  ``RAYROLLOUT_ARTIFACT_ROOTS``. The path is resolved first (``..`` and symbolic links), and a
  path outside every root is refused without looking at the file, so the answer never says
  whether it exists.
* An object-store artifact (``s3://``, ``gs://``, ``gcs://``) must start with a URI prefix
  listed in ``RAYROLLOUT_ARTIFACT_ROOTS`` (``s3://bucket`` or ``s3://bucket/prefix``), matched
  whole segment by whole segment (``s3://b/models`` admits ``s3://b/models/v1.onnx``, not
  ``s3://b/models-old/v1.onnx``); ``gcs://`` and ``gs://`` are the same store. The store is
  not asked anything. There is no URI root by default.
* Any other scheme, or a malformed URI, is refused naming the supported schemes.
* A version with no artifact (an app, a python runtime without one) has nothing to check.

``RAYROLLOUT_ARTIFACT_ROOTS`` is a list of directories and URI prefixes separated by
``os.pathsep`` (``:``) or ``,``. A ``scheme://`` stays whole (the ``:`` before ``//`` does not
split), so ``/srv/models:s3://ml/models,gs://ml-eu/models`` is three roots; a prefix itself may
not contain ``:`` or ``,``.

(Webhook hosts are held to ``RAYROLLOUT_WEBHOOK_HOSTS`` by ``rayrollout.notify.webhook``.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rayrollout.errors import ConfigError
from rayrollout.runtime.artifacts import (
    OBJECT_STORES,
    local_path,
    parse_object_uri,
    uri_scheme,
)
from rayrollout.spec.rollout import RolloutSpec
from rayrollout.spec.serving import VersionSpec, project_root

ARTIFACT_ROOTS_ENV = "RAYROLLOUT_ARTIFACT_ROOTS"

_SCHEME_ONLY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


@dataclass(frozen=True)
class ArtifactRoots:
    """Where artifacts may come from: resolved directories, and URI prefixes (each ending in
    ``/``, its scheme in lower case and ``gcs`` written ``gs``)."""

    dirs: tuple[Path, ...]
    uris: tuple[str, ...]

    def admits_path(self, path: Path) -> bool:
        p = path.resolve()
        return any(p.is_relative_to(r) for r in self.dirs)

    def admits_uri(self, uri: str) -> bool:
        u = _normal_uri(uri)
        return any(u.startswith(r) for r in self.uris)


def split_roots(value: str) -> list[str]:
    """The entries of ``RAYROLLOUT_ARTIFACT_ROOTS``: split on ``,`` and ``os.pathsep``, a
    ``scheme`` followed by ``//...`` joined back into one URI; blanks dropped."""
    out: list[str] = []
    for chunk in value.split(","):
        parts = chunk.split(os.pathsep)
        i = 0
        while i < len(parts):
            part = parts[i].strip()
            if (os.pathsep == ":" and _SCHEME_ONLY.match(part) and i + 1 < len(parts)
                    and parts[i + 1].startswith("//")):
                part = f"{part}:{parts[i + 1].strip()}"
                i += 1
            if part:
                out.append(part)
            i += 1
    return out


def artifact_roots(environ: Mapping[str, str] | None = None) -> ArtifactRoots:
    """The roots configured here: ``models/`` of the project and ``RAYROLLOUT_ARTIFACT_ROOTS``
    (a ``file://`` entry is its directory). ``ConfigError`` naming an entry whose scheme is
    not supported, so a typo does not silently admit nothing."""
    env = os.environ if environ is None else environ
    dirs = [project_root() / "models"]
    uris: list[str] = []
    for entry in split_roots(env.get(ARTIFACT_ROOTS_ENV, "")):
        scheme = uri_scheme(entry)
        if scheme in (None, "file"):
            dirs.append(local_path(entry))
        elif scheme in OBJECT_STORES and entry.split("://", 1)[1].strip("/"):
            uris.append(_normal_uri(entry).rstrip("/") + "/")
        else:
            raise ConfigError(f"{ARTIFACT_ROOTS_ENV} entry {entry[:200]!r} is neither a "
                              "directory nor an s3://, gs:// or gcs:// bucket (and prefix)")
    return ArtifactRoots(tuple(d.resolve() for d in dirs), tuple(uris))


def check_artifacts(spec: RolloutSpec, environ: Mapping[str, str] | None = None) -> None:
    """``ConfigError`` naming the first version whose artifact is outside every root, or is a
    URI of a scheme not supported."""
    roots = artifact_roots(environ)
    named = [("stable", spec.stable)] + [(f"candidates[{i}]", c)
                                         for i, c in enumerate(spec.candidates)]
    for where, v in named:
        _check_version(where, v, spec.model, roots)


def _check_version(where: str, v: VersionSpec, model: str, roots: ArtifactRoots) -> None:
    if v.artifact is None:
        return
    field, shown = f"{where}.artifact", repr(v.artifact[:200])
    scheme = uri_scheme(v.artifact)
    if scheme is None:
        inside = roots.admits_path(v.for_model(model).artifact_path())
    elif scheme == "file":
        inside = roots.admits_path(local_path(v.artifact, field))
    else:
        parse_object_uri(v.artifact, field)
        inside = roots.admits_uri(v.artifact)
    if inside:
        return
    if scheme in OBJECT_STORES:
        raise ConfigError(
            f"{field}={shown} is outside the artifact roots; list its bucket and "
            f"prefix ({scheme}://bucket/prefix) in {ARTIFACT_ROOTS_ENV} where the controller "
            "runs")
    raise ConfigError(
        f"{field}={shown} is outside the artifact roots; put it under the project's "
        f"models/ or a directory listed in {ARTIFACT_ROOTS_ENV} where the controller runs")


def _normal_uri(uri: str) -> str:
    scheme, rest = uri.split("://", 1)
    scheme = OBJECT_STORES.get(scheme.lower(), (scheme.lower(),))[0]
    return f"{scheme}://{rest}"
