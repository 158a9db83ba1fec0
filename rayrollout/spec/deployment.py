"""A version's Serve deployment options, checked by Serve's own schema.

``VersionSpec`` names the options as a Serve config does (``num_replicas``,
``autoscaling_config``, ``ray_actor_options``...). Their values are checked here by the schema
Ray Serve itself uses for a config's deployments (``ray.serve.schema.DeploymentSchema``, its
``autoscaling_config`` by ``ray.serve.config.AutoscalingConfig`` and ``ray_actor_options`` by
``RayActorOptionsSchema``), so an option means exactly what it means to Serve and a wrong one
fails before anything is deployed, named as ``<option>.<field>``.

Serve's schema modules are pure pydantic; they are imported lazily, by name (this imports the
``ray`` package, and starts nothing).
"""

from __future__ import annotations

import importlib
from typing import Any

from rayrollout.spec.base import field_error

# Serve's deployment options a version may set (the fields of ``VersionSpec`` of those names).
SERVE_OPTIONS = (
    "num_replicas",
    "autoscaling_config",
    "max_ongoing_requests",
    "max_queued_requests",
    "ray_actor_options",
    "health_check_period_s",
    "health_check_timeout_s",
    "graceful_shutdown_wait_loop_s",
    "graceful_shutdown_timeout_s",
    "max_replicas_per_node",
    "placement_group_bundles",
    "placement_group_strategy",
    "user_config",
)
# The other options of Serve's schema, and why a version does not take them.
NOT_TAKEN = {
    "name": "rayrollout names each version's deployment",
    "logging_config": "rayrollout sets it (no per-request access log: the router records them)",
    "request_router_config": "a version is called by the rollout's router, one handle per version",
    "deployment_actors": "not supported for versions",
    "backpressure_config": "not supported for versions",
    "gang_scheduling_config": "not supported for versions",
    "placement_group_bundle_label_selector": "not supported for versions",
    "rolling_update_percentage": "a version is replaced by a rollout, never updated in place",
    "max_surge_percent": "a version is replaced by a rollout, never updated in place",
}


def _serve_schema() -> Any:
    # ``ray.serve.schema`` is pydantic only; imported by name so the spec layer needs no Ray
    # at import time (and the import contracts see no edge to ``ray``).
    return importlib.import_module("ray.serve.schema")


def _serve_config() -> Any:
    return importlib.import_module("ray.serve.config")


def serve_schema_fields() -> set[str]:
    """The option names of Serve's ``DeploymentSchema`` in the installed Ray."""
    return set(_serve_schema().DeploymentSchema.model_fields)


def check_serve_options(options: dict[str, Any]) -> None:
    """Raise a located validation error for the first option Serve's schema refuses."""
    schema = _serve_schema()
    from pydantic import ValidationError

    try:
        schema.DeploymentSchema.model_validate({"name": "version", **options})
    except ValidationError as e:
        err = e.errors()[0]
        # a rule over several options has no location: file it under the option it names
        loc = tuple(err["loc"]) or next(
            ((k,) for k in options if k in err["msg"]), (next(iter(options)),))
        raise field_error(loc, f"{err['msg']} (Serve's deployment schema)",
                          err.get("input")) from None
    actor = options.get("ray_actor_options") or {}
    known = set(schema.RayActorOptionsSchema.model_fields)
    for key in actor:
        if key not in known:
            raise field_error(("ray_actor_options", key), "not one of Serve's ray_actor_options: "
                              f"{sorted(known)}", actor[key])
    auto = options.get("autoscaling_config")
    if auto is not None:
        cfg = _serve_config().AutoscalingConfig
        try:
            cfg.model_validate(auto)
        except ValidationError as e:
            err = e.errors()[0]
            raise field_error(("autoscaling_config", *err["loc"]),
                              f"{err['msg']} (Serve's AutoscalingConfig)",
                              err.get("input")) from None
        unknown = sorted(set(auto) - set(cfg.model_fields))
        if unknown:
            raise field_error(("autoscaling_config", unknown[0]), "not one of Serve's "
                              f"autoscaling_config fields: {sorted(cfg.model_fields)}",
                              auto[unknown[0]])
