"""Configuration models: strict, frozen pydantic models that reject unknown fields.

These are the arguments of the Serve application builders (``serve run configs/<file>.yaml``)
and of the Python API. A bad value fails before anything starts, with an error that names the
field and the value. Wire schemas of the HTTP API live elsewhere
(``rayrollout.dataplane.protocol``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, JsonValue, field_validator, model_validator

from rayrollout.dataplane.routing import RoutingTable
from rayrollout.names import router_app_name, version_app_name
from rayrollout.spec.base import NAME_PATTERN, Strict
from rayrollout.spec.faults import FaultSpec

HEADER_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"  # a lowercase HTTP header name


class ActorOptions(Strict):
    """Subset of Ray's ``ray_actor_options`` a version may set."""

    num_cpus: float = Field(0.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    memory: int | None = Field(None, ge=0, le=2**50)  # bytes: at most 1 PiB

    def to_ray(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class BatchingConfig(Strict):
    """Dynamic batching (``@serve.batch``) of one version."""

    max_batch_size: int = Field(32, ge=1, le=4096)
    batch_wait_timeout_s: float = Field(0.002, ge=0, le=10)


class VersionSpec(Strict):
    """One model version: its artifact, runtime, resources, batching and its bundle of flags.

    ``flags`` (feature flags and config) are served with the version and roll back with it.
    """

    name: str = Field(pattern=NAME_PATTERN)
    runtime: Literal["onnx", "torchscript"]
    artifact: str = Field(min_length=1, max_length=4096)  # a path (PATH_MAX) or a URI
    task: Literal["classification", "regression"] = "classification"
    num_replicas: int = Field(1, ge=1, le=1024)
    max_ongoing_requests: int = Field(256, ge=1, le=100_000)
    ray_actor_options: ActorOptions = ActorOptions()
    batching: BatchingConfig = BatchingConfig()
    intra_op_threads: int = Field(1, ge=1, le=64)
    # Batches of at most this many rows run on the replica's event loop: for cheap CPU models a
    # thread hop costs more than the model. Larger batches (and GPU models) use a worker thread.
    inline_rows: int = Field(64, ge=0, le=1_000_000)
    flags: dict[str, JsonValue] = Field(default_factory=dict)
    faults: FaultSpec | None = None  # injected on purpose, for drills (off by default)

    def for_model(self, model: str) -> VersionConfig:
        return VersionConfig.model_validate({"model": model, **self.model_dump(mode="json")})


class VersionConfig(VersionSpec):
    """A ``VersionSpec`` of a named model: the argument of the version application builder."""

    model: str = Field(pattern=NAME_PATTERN)

    @property
    def app_name(self) -> str:
        return version_app_name(self.model, self.name)

    @property
    def device(self) -> str:
        return "cuda" if self.ray_actor_options.num_gpus > 0 else "cpu"

    def artifact_path(self, base: Path | None = None) -> Path:
        """The artifact as an absolute path.

        A relative path resolves against ``base`` when given; otherwise against the current
        directory if the file is there, else against the project root (``RAYROLLOUT_HOME`` or
        the checkout this package runs from), so ``serve run configs/x.yaml`` finds
        ``models/...`` whatever directory Ray starts its workers in.
        """
        p = Path(self.artifact)
        if p.is_absolute():
            return p
        if base is not None:
            return base / p
        if (Path.cwd() / p).exists():
            return Path.cwd() / p
        return project_root() / p

    def resolved(self, base: Path | None = None) -> VersionConfig:
        """This config with its artifact as an absolute path, resolved here (on the driver or
        the controller) so that a replica finds it whatever directory it starts in."""
        return self.model_copy(update={"artifact": str(self.artifact_path(base))})


class ShadowConfig(Strict):
    """Mirror ``fraction`` of requests to ``version``; never awaited by the primary response."""

    version: str = Field(pattern=NAME_PATTERN)
    fraction: float = Field(1.0, ge=0, le=1)
    max_in_flight: int = Field(64, ge=1, le=100_000)
    rtol: float = Field(0.05, ge=0)  # regressors: relative difference counted as disagreement


class RouterDeployment(Strict):
    num_replicas: int = Field(1, ge=1, le=1024)
    max_ongoing_requests: int = Field(1000, ge=1, le=1_000_000)
    num_cpus: float = Field(0.0, ge=0)


class RouterConfig(Strict):
    """Argument of the router application (the HTTP ingress of one model).

    ``weights`` are percentages over live versions and must sum to 100; a version may have 0
    (deployed and pinnable, but not served at random).
    """

    model: str = Field(pattern=NAME_PATTERN)
    weights: dict[str, float] = Field(min_length=1)
    shadow: ShadowConfig | None = None
    flags: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)
    # A version (in weights) that requests other versions failed are retried on, once; the
    # failure still counts against the version that failed (a rollout's retry_on_stable).
    fallback: str | None = None
    sticky_header: str = Field("x-rollout-key", pattern=HEADER_PATTERN)
    pin_header: str = Field("x-rollout-version", pattern=HEADER_PATTERN)
    max_body_bytes: int = Field(1_000_000, ge=64, le=1 << 30)
    max_batch_rows: int = Field(1024, ge=1, le=1_000_000)
    request_timeout_s: float = Field(30.0, gt=0)
    event_buffer: int = Field(200_000, ge=100, le=10_000_000)
    feedback_window: int = Field(100_000, ge=0, le=10_000_000)  # served requests kept for labels
    seed: int | None = Field(None, ge=0, le=2**63 - 1)  # per-request random draws; None: the OS
    # Bearer tokens of the admin API and the feedback route (``rayrollout.ingress.auth``):
    # "name[/scope+scope]:token" entries from the environment variable named here and from a
    # file only its owner can read. Never the tokens themselves: a config is shown by Serve.
    admin_tokens_env: str = Field("RAYROLLOUT_ADMIN_TOKENS",
                                  pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    tokens_file: str | None = Field(None, min_length=1, max_length=4096)
    # The store of rollouts started over HTTP (POST /rollout/start may not choose it).
    store_path: str | None = Field(None, min_length=1, max_length=4096)
    # A rollout to start when the router comes up (``serve run`` of a rollout config).
    rollout: dict[str, JsonValue] | None = None
    deployment: RouterDeployment = RouterDeployment()

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("admin_tokens", "tokens"):
                if key in data:
                    raise ValueError(
                        f"{key}: tokens are not accepted in a config (Serve shows a config's "
                        "arguments to anyone who can read it, and a spec is stored); put them in "
                        "the environment variable named by admin_tokens_env, or in tokens_file")
        return data

    @field_validator("weights")
    @classmethod
    def _weights_valid(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if not isinstance(w, int | float) or math.isnan(w) or w < 0 or w > 100:
                raise ValueError(f"weights[{name!r}]={w!r} must be a number in [0, 100]")
        total = sum(v.values())
        if abs(total - 100.0) > 1e-6:
            raise ValueError(f"weights must sum to 100: {dict(v)!r} sums to {total:g}")
        return v

    @model_validator(mode="after")
    def _shadow_not_primary(self) -> RouterConfig:
        if self.shadow and self.weights.get(self.shadow.version, 0) > 0:
            raise ValueError(
                f"shadow.version={self.shadow.version!r} also has weight "
                f"{self.weights[self.shadow.version]:g}: a shadow must not serve primary traffic"
            )
        for v in self.flags:
            if v not in self.weights:
                raise ValueError(f"flags[{v!r}] names a version that is not in weights")
        if self.fallback is not None and self.fallback not in self.weights:
            raise ValueError(f"fallback={self.fallback!r} names a version that is not in weights")
        return self

    @property
    def app_name(self) -> str:
        return router_app_name(self.model)

    def routing_table(self, epoch: int = 0) -> RoutingTable:
        """The routing table this config describes, at ``epoch``: the one place a
        ``RoutingTable`` is made from a configuration (the router's first table, and every
        table the controller pushes)."""
        sh = self.shadow
        return RoutingTable(
            model=self.model,
            epoch=epoch,
            weights=dict(self.weights),
            shadow=sh.version if sh else None,
            shadow_fraction=sh.fraction if sh else 0.0,
            shadow_max_in_flight=sh.max_in_flight if sh else 64,
            shadow_rtol=sh.rtol if sh else 0.05,
            flags={v: dict(f) for v, f in self.flags.items()},
            fallback=self.fallback,
        )

    def live_versions(self) -> list[str]:
        names = list(self.weights)
        if self.shadow and self.shadow.version not in names:
            names.append(self.shadow.version)
        return names


def project_root() -> Path:
    """``RAYROLLOUT_HOME`` if set, else the directory above the ``rayrollout`` package."""
    env = os.environ.get("RAYROLLOUT_HOME")
    return Path(env) if env else Path(__file__).resolve().parents[2]
