"""rayrollout: safe model rollouts on Ray Serve.

Canaries and shadows judged on live traffic by anytime-valid statistics, promoted step by step
or rolled back by one routing-table push.

The public API, all importable from here without starting Ray::

    import rayrollout as rr

    spec = rr.load_spec("configs/rollout-digits.yaml")   # a RolloutSpec, validated
    ro = rr.start(spec)                                  # on the Ray cluster this process joined
    ro.status(); ro.pause(); ro.abort(reason="pager")    # or rr.connect("digits") later
    rr.AdminClient("http://router:8000", token).status() # the same over HTTP

Everything else is reachable through its sub-package (``rayrollout.analysis`` for judges and
e-processes, ``rayrollout.runtime`` for model runtimes, ``rayrollout.controller`` for the
decision core); ``docs/architecture.md`` in the repository maps them.
"""

from rayrollout._version import __version__
from rayrollout.analysis.result import CheckResult, Verdict
from rayrollout.client.admin import AdminClient
from rayrollout.client.api import Rollout, connect, start
from rayrollout.controller.phases import Phase
from rayrollout.errors import (
    AdminError,
    BadRequest,
    ConfigError,
    Conflict,
    IllegalTransition,
    ModelError,
    ModelTimeout,
    NotFound,
    PayloadTooLarge,
    RequestError,
    RolloutError,
    Unauthorized,
    UnavailableError,
)
from rayrollout.spec import (
    AnalysisSpec,
    CheckSpec,
    RolloutSpec,
    RouterConfig,
    StepSpec,
    VersionConfig,
    VersionSpec,
    load_spec,
)

__all__ = [
    "AdminClient",
    "AdminError",
    "AnalysisSpec",
    "BadRequest",
    "CheckResult",
    "CheckSpec",
    "ConfigError",
    "Conflict",
    "IllegalTransition",
    "ModelError",
    "ModelTimeout",
    "NotFound",
    "PayloadTooLarge",
    "Phase",
    "RequestError",
    "Rollout",
    "RolloutError",
    "RolloutSpec",
    "RouterConfig",
    "StepSpec",
    "Unauthorized",
    "UnavailableError",
    "Verdict",
    "VersionConfig",
    "VersionSpec",
    "__version__",
    "connect",
    "load_spec",
    "start",
]
