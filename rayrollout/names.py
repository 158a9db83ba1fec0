"""Names both planes agree on: Serve application and deployment names, the controller actor's
name and namespace, and where a rollout's state lives by default.

This module imports nothing from the package, so the data plane, the control plane and the shell
can all use it without importing one another.
"""

from __future__ import annotations

from pathlib import Path

NAMESPACE = "rayrollout"  # the Ray namespace of every controller actor, and of the catalog
INGRESS_APP = "rayrollout"  # the one Serve application that is the HTTP ingress of every model
ROUTER_DEPLOYMENT = "Router"  # the ingress deployment of the ingress application
CATALOG_PREFIX = "model:"  # catalog keys (Ray's GCS key-value store, namespace NAMESPACE)
VERSION_DEPLOYMENT = "ModelVersion"  # the deployment of a version application


def version_app_name(model: str, version: str) -> str:
    """Serve application name of one model version (deployed with no route prefix)."""
    return f"{model}-{version}"


def router_app_name(model: str) -> str:
    """Serve application name of a model's router: the one ingress application, which serves
    every model (each with its own ``Router``)."""
    return INGRESS_APP


def catalog_key(model: str) -> str:
    """The catalog key of ``model``: its router config (JSON) while the ingress serves it, a
    tombstone (``null``) once removed. Written by the port, read by every ingress replica as it
    starts, so a replica restarted anywhere serves the models added after its app was
    deployed."""
    return f"{CATALOG_PREFIX}{model}"


def controller_name(model: str) -> str:
    """Name of the controller actor of ``model`` in ``NAMESPACE``."""
    return f"rayrollout-controller-{model}"


def default_store_path(model: str) -> str:
    """The SQLite store of ``model`` when a spec names none."""
    return str(Path.home() / ".rayrollout" / f"{model}.db")


def version_route_prefix(model: str, version: str) -> str:
    """Route prefix of a pass-through version app on Serve's proxy, where its router forwards
    the requests of ``model`` (apps that speak their own HTTP; tensor versions have none)."""
    return f"/-/rayrollout/{model}/{version}"
