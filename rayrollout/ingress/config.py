"""``IngressConfig``: the argument of the one ingress application (``serve run`` of a config
whose ``rayrollout`` application is ``rayrollout.serving.app:build_ingress``).

::

    applications:
      - name: rayrollout            # names.INGRESS_APP: the port and the controllers find it so
        route_prefix: /
        import_path: rayrollout.serving.app:build_ingress
        args:
          rollouts: [<RolloutSpec>, ...]   # each model's router starts its rollout
          models: [<RouterConfig>, ...]    # plain models, their versions deployed beside
          deployment: {num_replicas: 2}    # optional; default: the largest any model asks

Guarantees: at least one model; every model named once across ``rollouts`` and ``models``;
no two models share a path prefix. A validation error names the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from rayrollout.spec import RolloutSpec, RouterConfig, RouterDeployment
from rayrollout.spec.base import Strict, field_error


def rollout_router(spec: RolloutSpec) -> RouterConfig:
    """The router of ``spec.model`` that starts the rollout of ``spec`` when it comes up:
    all traffic to the stable until the controller pushes its first table."""
    doc: dict[str, Any] = spec.router_config({spec.stable.name: 100.0}, None, 1.0)
    doc["rollout"] = spec.model_dump(mode="json")
    return RouterConfig.model_validate(doc)


class IngressConfig(Strict):
    rollouts: list[RolloutSpec] = Field(default_factory=list, max_length=256)
    models: list[RouterConfig] = Field(default_factory=list, max_length=256)
    deployment: RouterDeployment | None = None

    @model_validator(mode="after")
    def _distinct(self) -> IngressConfig:
        if not self.rollouts and not self.models:
            raise field_error(("models",), "an ingress serves at least one model: give "
                              "rollouts or models", None)
        seen: dict[str, str] = {}
        prefixes: dict[str, str] = {}
        for where, cfg in self._named():
            if cfg.model in seen:
                raise field_error((*where, "model"), f"model {cfg.model!r} is served once; "
                                  f"{seen[cfg.model]} names it already", cfg.model)
            seen[cfg.model] = ".".join(map(str, where))
            p = cfg.prefix
            if p is not None and p in prefixes:
                raise field_error((*where,), f"path prefix {p!r} is model "
                                  f"{prefixes[p]!r}'s already", p)
            if p is not None:
                prefixes[p] = cfg.model
        return self

    def _named(self) -> list[tuple[tuple[str | int, ...], RouterConfig]]:
        named: list[tuple[tuple[str | int, ...], RouterConfig]] = [
            (("rollouts", i), rollout_router(s)) for i, s in enumerate(self.rollouts)]
        return named + [(("models", i), m) for i, m in enumerate(self.models)]

    def router_configs(self) -> list[RouterConfig]:
        """Every model's router config: the rollouts' first, in order."""
        return [cfg for _, cfg in self._named()]
