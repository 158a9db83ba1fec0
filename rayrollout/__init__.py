"""rayrollout: safe model rollouts on Ray Serve.

Canaries and shadows judged on live traffic by anytime-valid statistics, promoted step by step
or rolled back by one routing-table push.
"""

from rayrollout.config import (
    ActorOptions,
    BatchingConfig,
    RouterConfig,
    ShadowConfig,
    VersionConfig,
)
from rayrollout.errors import (
    BadRequest,
    ConfigError,
    ModelError,
    ModelTimeout,
    NotFound,
    PayloadTooLarge,
    RequestError,
    RolloutError,
    UnavailableError,
)
from rayrollout.routing import Choice, RoutingTable

__version__ = "0.1.0"

__all__ = [
    "ActorOptions",
    "BadRequest",
    "BatchingConfig",
    "Choice",
    "ConfigError",
    "ModelError",
    "ModelTimeout",
    "NotFound",
    "PayloadTooLarge",
    "RequestError",
    "RolloutError",
    "RouterConfig",
    "RoutingTable",
    "ShadowConfig",
    "UnavailableError",
    "VersionConfig",
    "__version__",
]
