"""Serve application builders, and a Python entry point that deploys a router with its versions.

``serve run configs/<file>.yaml`` names these builders; each version is its own application
(``route_prefix`` null), the router is the one HTTP ingress. The builders' arguments are the
strict pydantic models of ``rayrollout.spec``: Serve validates them before anything starts.
"""

# No ``from __future__ import annotations`` here: Serve inspects the builders' annotations as
# classes to validate their arguments.

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application

from rayrollout.serving.ingress import router_app
from rayrollout.serving.port import RayServePort
from rayrollout.serving.version import version_app
from rayrollout.spec import RolloutSpec, RouterConfig, VersionConfig

__all__ = ["build_rollout", "build_router", "build_version", "deploy"]

def build_version(config: VersionConfig) -> Application:
    """One model version as an application (deploy it with ``route_prefix=None``)."""
    return version_app(config)


def build_router(config: RouterConfig) -> Application:
    """The HTTP ingress of one model (``route_prefix`` as the config's application says)."""
    return router_app(config, RayServePort)


def deploy(
    router: RouterConfig | dict[str, Any],
    versions: Sequence[VersionConfig | dict[str, Any]],
    route_prefix: str = "/",
    artifact_base: Path | None = None,
) -> None:
    """Deploy every version as its own app, then the router; returns when all are running.

    Relative artifact paths resolve against ``artifact_base`` (default: the current directory)
    here, on the driver, so replicas find them wherever they run on this node.
    """
    rcfg = RouterConfig.model_validate(router)
    vcfgs = [VersionConfig.model_validate(v) for v in versions]
    for v in vcfgs:
        serve.run(build_version(v.resolved(artifact_base)), name=v.app_name, route_prefix=None)
    serve.run(build_router(rcfg), name=rcfg.app_name, route_prefix=route_prefix)


def build_rollout(spec: RolloutSpec) -> Application:
    """The router of ``spec.model``, which starts the rollout of ``spec`` when it comes up.

    ``serve run configs/rollout-<model>.yaml`` needs only this one application: the controller
    deploys the stable and candidate versions itself.
    """
    doc = spec.router_config({spec.stable.name: 100.0}, None, 1.0)
    doc["rollout"] = spec.model_dump(mode="json")
    return build_router(RouterConfig.model_validate(doc))
