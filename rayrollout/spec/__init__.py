"""What users write: the strict, frozen pydantic models of versions, routers and rollouts.

* ``rayrollout.spec.serving`` — the arguments of the Serve application builders: a version
  (``VersionSpec`` / ``VersionConfig``) and a router (``RouterConfig``).
* ``rayrollout.spec.rollout`` — a whole rollout (``RolloutSpec``): candidates, steps, checks,
  guards, notifiers; ``load_spec`` reads one from a dict or a YAML file.
* ``rayrollout.spec.faults`` — faults a version injects on purpose (``FaultSpec``), for drills.

Every model rejects unknown fields and fails before anything starts with an error naming the
field and the value (``format_validation_error``). Wire schemas of the HTTP API are not here:
they live with the routes that speak them (``rayrollout.dataplane.protocol``,
``rayrollout.ingress``).
"""

from rayrollout.spec.base import NAME_PATTERN, Strict, format_validation_error
from rayrollout.spec.faults import FaultSpec
from rayrollout.spec.rollout import (
    AnalysisSpec,
    CheckSpec,
    NotifierSpec,
    RolloutSpec,
    ShadowPhaseSpec,
    StepSpec,
    StrategySpec,
    load_spec,
)
from rayrollout.spec.serving import (
    AppSpec,
    BatchingConfig,
    PredictionSpec,
    RouterConfig,
    RouterDeployment,
    ShadowConfig,
    VersionConfig,
    VersionSpec,
    project_root,
)

__all__ = [
    "NAME_PATTERN",
    "AnalysisSpec",
    "AppSpec",
    "BatchingConfig",
    "CheckSpec",
    "FaultSpec",
    "NotifierSpec",
    "PredictionSpec",
    "RolloutSpec",
    "RouterConfig",
    "RouterDeployment",
    "ShadowConfig",
    "ShadowPhaseSpec",
    "StepSpec",
    "StrategySpec",
    "Strict",
    "VersionConfig",
    "VersionSpec",
    "format_validation_error",
    "load_spec",
    "project_root",
]
