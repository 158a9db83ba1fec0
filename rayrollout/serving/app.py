"""Serve application builders, and a Python entry point that deploys a model with its versions.

``serve run configs/<file>.yaml`` names these builders. Every model is served by the one
ingress application, named ``rayrollout`` (``names.INGRESS_APP``): ``build_ingress`` takes any
number of rollouts and plain models; ``build_rollout`` and ``build_router`` are the same
ingress with one model. Each version is its own application (``route_prefix`` null). The
builders' arguments are the strict pydantic models of ``rayrollout.spec`` and
``rayrollout.ingress.config``: Serve validates them before anything starts.
"""

# No ``from __future__ import annotations`` here: Serve inspects the builders' annotations as
# classes to validate their arguments.

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application

from rayrollout.ingress.config import IngressConfig
from rayrollout.serving.ingress import ingress_app
from rayrollout.serving.port import RayServePort
from rayrollout.serving.version import version_app
from rayrollout.spec import RolloutSpec, RouterConfig, VersionConfig

__all__ = ["IngressConfig", "build_ingress", "build_rollout", "build_router", "build_version",
           "deploy"]


def build_version(config: VersionConfig) -> Application:
    """One model version as an application (deploy it with ``route_prefix=None``)."""
    return version_app(config)


def build_ingress(config: IngressConfig) -> Application:
    """The one HTTP ingress of every model of ``config`` (deploy it as ``rayrollout``): each
    rollout's router starts its rollout when it comes up; models added later through the port
    (``rayrollout.start``, ``deploy``) join it without a restart."""
    return ingress_app(config.router_configs(), RayServePort, config.deployment)


def build_router(config: RouterConfig) -> Application:
    """The ingress serving one plain model (its versions deployed beside it)."""
    return build_ingress(IngressConfig(models=[config]))


def build_rollout(spec: RolloutSpec) -> Application:
    """The ingress serving ``spec.model``, whose router starts the rollout of ``spec`` when it
    comes up.

    ``serve run configs/rollout-<model>.yaml`` needs only this one application: the controller
    deploys the stable and candidate versions itself.
    """
    return build_ingress(IngressConfig(rollouts=[spec]))


def deploy(
    router: RouterConfig | dict[str, Any],
    versions: Sequence[VersionConfig | dict[str, Any]],
    route_prefix: str = "/",
    artifact_base: Path | None = None,
) -> None:
    """Deploy every version as its own app, then serve the model on the ingress (deployed if
    it is not there; another model's traffic is not touched); returns when all are running.

    ``route_prefix`` other than ``/`` is the model's own path prefix on the ingress, beside
    ``/v2/models/<model>/...``. Relative artifact paths resolve against ``artifact_base``
    (default: the current directory) here, on the driver, so replicas find them wherever
    they run on this node.
    """
    rcfg = RouterConfig.model_validate(router)
    vcfgs = [VersionConfig.model_validate(v) for v in versions]
    for v in vcfgs:
        serve.run(build_version(v.resolved(artifact_base)), name=v.app_name, route_prefix=None)
    RayServePort().deploy_router(rcfg, route_prefix)
