"""rayrollout: safe model rollouts on Ray Serve.

Canaries and shadows judged on live traffic by anytime-valid statistics, promoted step by step
or rolled back by one routing-table push.

The public API, all importable from here without starting Ray::

    import rayrollout as rr

    spec = rr.load_spec("configs/rollout-digits.yaml")   # a RolloutSpec, validated
    ro = rr.start(spec)                                  # on the Ray cluster this process joined
    ro.status(); ro.pause(); ro.abort(reason="pager")    # or rr.connect("digits") later
    rr.AdminClient("http://router:8000", token).status() # the same over HTTP

A version can be a model file (ONNX, TorchScript), the user's own ``ModelRuntime`` class, or
the user's own Serve application; ``rr.TensorModel`` is the base of a deployment the router
calls with tensors (imported on first use: it needs Ray Serve).

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
from rayrollout.runtime import ModelRuntime, ModelSignature, TensorSpec
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
    "ModelRuntime",
    "ModelSignature",
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
    "TensorModel",
    "TensorSpec",
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


def __getattr__(name: str) -> object:
    if name == "TensorModel":  # a Serve deployment base: imports Ray Serve, so only when used
        from rayrollout.serving.tensor import TensorModel

        return TensorModel
    raise AttributeError(f"module 'rayrollout' has no attribute {name!r}")
