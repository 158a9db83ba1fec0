"""Configuration models: strict, frozen pydantic models that reject unknown fields.

These are the arguments of the Serve application builders (``serve run configs/<file>.yaml``)
and of the Python API. A bad value fails before anything starts, with an error that names the
field and the value. Wire schemas of the HTTP API live elsewhere
(``rayrollout.dataplane.protocol``).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, JsonValue, field_validator, model_validator

from rayrollout._compat import Self
from rayrollout.dataplane.routing import RoutingTable
from rayrollout.names import router_app_name, version_app_name
from rayrollout.spec.base import NAME_PATTERN, Strict, field_error
from rayrollout.spec.deployment import SERVE_OPTIONS, check_serve_options
from rayrollout.spec.faults import FaultSpec

HEADER_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"  # a lowercase HTTP header name


class BatchingConfig(Strict):
    """Dynamic batching (``@serve.batch``) of one version."""

    max_batch_size: int = Field(32, ge=1, le=4096)
    batch_wait_timeout_s: float = Field(0.002, ge=0, le=10)


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
IMPORT_PATH_PATTERN = rf"^{_IDENT}(\.{_IDENT})*[:.]{_IDENT}$"  # module:attribute
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class PredictionSpec(Strict):
    """How the prediction the judges need (drift, disagreement, accuracy) is read from a
    pass-through app's JSON answer: a JSON pointer (RFC 6901) into it, or a function
    (``module:function``, given the parsed JSON, returning a number or a label).

    A label (a string) becomes its index in ``labels``; a label not listed there, or a value
    that is neither a number nor a label, is no prediction (NaN: the request still counts for
    errors and latency)."""

    pointer: str | None = Field(None, pattern=r"^(/[^/]*)+$", max_length=1024)
    function: str | None = Field(None, pattern=IMPORT_PATH_PATTERN, max_length=512)
    labels: list[str] = Field(default_factory=list, max_length=100_000)
    # How shadow answers are compared (equality of labels, or a relative tolerance); a
    # rollout sets it from the version's ``task``.
    task: Literal["classification", "regression"] = "classification"

    @model_validator(mode="after")
    def _one(self) -> PredictionSpec:
        if (self.pointer is None) == (self.function is None):
            raise ValueError("give exactly one of pointer and function")
        return self


class AppSpec(Strict):
    """A Serve application the user wrote, named as in a Serve config: ``import_path`` (an
    ``Application`` or an application builder, ``module:attribute``) and the builder's ``args``.

    ``interface`` says how the router talks to it:

    * ``tensor``: its ingress deployment offers ``predict(inputs: dict[str, np.ndarray]) ->
      dict[str, np.ndarray]`` and ``signature() -> dict`` (``rayrollout.TensorModel`` gives
      both, dynamic batching included); requests are validated against the signature and
      every judge works as for ONNX versions.
    * ``http``: the router passes requests under the model's prefix through to the app and
      its answers back unchanged; ``prediction`` reads the judges' prediction from the answer.
    """

    import_path: str = Field(pattern=IMPORT_PATH_PATTERN, max_length=512)
    args: dict[str, JsonValue] = Field(default_factory=dict)
    interface: Literal["tensor", "http"] = "tensor"
    prediction: PredictionSpec | None = None

    @model_validator(mode="after")
    def _prediction_for_http(self) -> AppSpec:
        if self.prediction is not None and self.interface != "http":
            raise field_error(("prediction",), "prediction reads a pass-through app's answer: "
                              "it needs interface: http", None)
        return self


class VersionSpec(Strict):
    """One model version: what serves it, its Serve deployment options, batching, and its bundle
    of flags.

    What serves it is one of:

    * ``runtime: onnx | torchscript`` and an ``artifact``;
    * ``runtime: python`` and ``runtime_class`` (``module:Class``, a ``ModelRuntime``), built
      as ``Class(artifact_path_or_None, device=..., **runtime_args)``;
    * ``app``: the user's own Serve application (``AppSpec``).

    ``artifact`` is a path, a ``file://`` URI or an object-store URI (``s3://``, ``gs://``),
    fetched by each replica into a per-node cache; ``sha256``, when given, must match.

    The Serve deployment options (``num_replicas``, ``autoscaling_config``,
    ``max_ongoing_requests``, ``ray_actor_options`` and the others Serve names) are named as in
    a Serve config and checked by Serve's own schema (``rayrollout.spec.deployment``). For an
    ``app`` they apply to its ingress deployment.

    ``flags`` (feature flags and config) are served with the version and roll back with it.
    """

    name: str = Field(pattern=NAME_PATTERN)
    runtime: Literal["onnx", "torchscript", "python"] | None = None
    artifact: str | None = Field(None, min_length=1, max_length=4096)  # a path or a URI
    sha256: str | None = Field(None, pattern=SHA256_PATTERN)
    runtime_class: str | None = Field(None, pattern=IMPORT_PATH_PATTERN, max_length=512)
    runtime_args: dict[str, JsonValue] = Field(default_factory=dict)
    app: AppSpec | None = None
    task: Literal["classification", "regression"] = "classification"
    # -- Serve's deployment options (validated by Serve's DeploymentSchema) --------------------
    num_replicas: int | Literal["auto"] | None = None  # None: 1, or autoscaling_config's
    autoscaling_config: dict[str, JsonValue] | None = None
    max_ongoing_requests: int = Field(256, ge=1, le=100_000)
    max_queued_requests: int | None = Field(None, ge=-1, le=10**9)  # -1: no limit
    ray_actor_options: dict[str, Any] = Field(default_factory=lambda: {"num_cpus": 0.0})
    health_check_period_s: float | None = None
    health_check_timeout_s: float | None = None
    graceful_shutdown_wait_loop_s: float | None = None
    graceful_shutdown_timeout_s: float | None = None
    max_replicas_per_node: int | None = Field(None, ge=1, le=1_000_000)
    placement_group_bundles: list[dict[str, float]] | None = None
    placement_group_strategy: Literal["PACK", "SPREAD", "STRICT_PACK",
                                      "STRICT_SPREAD"] | None = None
    user_config: dict[str, JsonValue] | None = None
    # -- rayrollout's own ----------------------------------------------------------------------
    batching: BatchingConfig = BatchingConfig()
    intra_op_threads: int = Field(1, ge=1, le=64)
    # Batches of at most this many rows run on the replica's event loop: for cheap CPU models a
    # thread hop costs more than the model. Larger batches (and GPU models) use a worker thread.
    inline_rows: int = Field(64, ge=0, le=1_000_000)
    flags: dict[str, JsonValue] = Field(default_factory=dict)
    faults: FaultSpec | None = None  # injected on purpose, for drills (off by default)

    @field_validator("ray_actor_options", mode="before")
    @classmethod
    def _json_options(cls, v: Any) -> Any:
        """Plain JSON, finite numbers (Serve's schema checks what each option means)."""
        if isinstance(v, dict):
            for key, value in v.items():
                try:
                    json.dumps(value, allow_nan=False)
                except (TypeError, ValueError):
                    raise field_error((key,), "must be JSON with finite numbers", value
                                      ) from None
        return v

    @model_validator(mode="after")
    def _what_serves_it(self) -> VersionSpec:
        if self.app is not None:
            for f in ("runtime", "runtime_class", "faults"):
                if getattr(self, f) is not None:
                    raise field_error((f,), f"{f} does not apply to an app version (the app "
                                      "serves itself)", getattr(self, f))
            if self.runtime_args:
                raise field_error(("runtime_args",), "runtime_args does not apply to an app "
                                  "version: give the app's arguments in app.args", None)
        elif self.runtime is None:
            raise field_error(("runtime",), "give runtime (onnx, torchscript or python) or app",
                              None)
        elif self.runtime == "python":
            if self.runtime_class is None:
                raise field_error(("runtime_class",), "runtime: python needs runtime_class "
                                  "(module:Class implementing ModelRuntime)", None)
        else:
            if self.artifact is None:
                raise field_error(("artifact",), f"runtime: {self.runtime} needs an artifact",
                                  None)
            for f in ("runtime_class", "runtime_args"):
                if getattr(self, f):
                    raise field_error((f,), f"{f} is for runtime: python", getattr(self, f))
        if self.sha256 is not None and self.artifact is None:
            raise field_error(("sha256",), "sha256 checks an artifact: set artifact", None)
        if any(getattr(self, k) != _DEFAULTS[k] for k in SERVE_OPTIONS):
            check_serve_options(self.serve_options())  # the defaults are Serve-valid as they are
        return self

    @property
    def interface(self) -> str:
        """How the router talks to it: ``tensor`` (validated arrays) or ``http`` (passed
        through)."""
        return self.app.interface if self.app is not None else "tensor"

    @property
    def autoscaling(self) -> bool:
        return self.autoscaling_config is not None or self.num_replicas == "auto"

    @property
    def replicas(self) -> int | None:
        """Its fixed replica count (None when it autoscales)."""
        if self.autoscaling:
            return None
        return self.num_replicas if isinstance(self.num_replicas, int) else 1

    def serve_options(self, replicas: int | None = None) -> dict[str, Any]:
        """Its Serve deployment options, as ``serve.deployment`` / ``.options`` take them
        (unset ones left to Serve). ``replicas`` overrides the count of a fixed-size version,
        and is the floor (``min_replicas``) of an autoscaling one."""
        opts = {k: getattr(self, k) for k in SERVE_OPTIONS if getattr(self, k) is not None}
        if replicas is not None and self.autoscaling:
            auto = dict(self.autoscaling_config or {})
            top = auto.get("max_replicas")
            floor = replicas if not isinstance(top, int) else min(replicas, top)
            auto["min_replicas"] = max(int(auto.get("min_replicas", 1)), floor)  # type: ignore[arg-type]
            auto.pop("initial_replicas", None)
            opts["autoscaling_config"] = auto
            opts.pop("num_replicas", None)
        elif replicas is not None:
            opts["num_replicas"] = replicas
        if self.num_replicas is None and not self.autoscaling and "num_replicas" not in opts:
            opts["num_replicas"] = 1
        return opts

    def for_model(self, model: str) -> VersionConfig:
        return VersionConfig.model_validate({"model": model, **self.model_dump(mode="json")})


_DEFAULTS = {k: VersionSpec.model_fields[k].get_default(call_default_factory=True)
             for k in SERVE_OPTIONS}


class VersionConfig(VersionSpec):
    """A ``VersionSpec`` of a named model: the argument of the version application builder."""

    model: str = Field(pattern=NAME_PATTERN)

    @property
    def app_name(self) -> str:
        return version_app_name(self.model, self.name)

    @property
    def device(self) -> str:
        gpus = self.ray_actor_options.get("num_gpus") or 0
        return "cuda" if isinstance(gpus, int | float) and gpus > 0 else "cpu"

    @property
    def artifact_uri(self) -> bool:
        """Whether the artifact is a URI (``file://``, ``s3://``...) rather than a path."""
        return self.artifact is not None and "://" in self.artifact

    def artifact_path(self, base: Path | None = None) -> Path:
        """The artifact (a path, not a URI) as an absolute path.

        A relative path resolves against ``base`` when given; otherwise against the current
        directory if the file is there, else against the project root (``project_root()``), so
        ``serve run configs/x.yaml``, the Python API and an installed package find
        ``models/...`` whatever directory Ray starts its workers in.
        """
        if self.artifact is None or self.artifact_uri:
            raise ValueError(f"version {self.name!r} has no artifact path (artifact="
                             f"{self.artifact!r})")
        p = Path(self.artifact)
        if p.is_absolute():
            return p
        if base is not None:
            return base / p
        if (Path.cwd() / p).exists():
            return Path.cwd() / p
        return project_root() / p

    def resolved(self, base: Path | None = None) -> VersionConfig:
        """This config with a relative artifact path made absolute, resolved here (on the
        driver or the controller) so that a replica finds it whatever directory it starts in.
        A URI is left as it is: each replica fetches it."""
        if self.artifact is None or self.artifact_uri:
            return self
        return self.model_copy(update={"artifact": str(self.artifact_path(base))})


class ShadowConfig(Strict):
    """Mirror ``fraction`` of requests to ``version``; never awaited by the primary response."""

    version: str = Field(pattern=NAME_PATTERN)
    fraction: float = Field(1.0, ge=0, le=1)
    max_in_flight: int = Field(64, ge=1, le=100_000)
    rtol: float = Field(0.05, ge=0)  # regressors: relative difference counted as disagreement


# A model's own path prefix on the ingress: one or more segments, none of them the ingress's.
PATH_PREFIX_PATTERN = r"^(/[A-Za-z0-9_.~-]+)+$"
RESERVED_PREFIXES = frozenset({"v1", "v2", "rollout", "-", ".", ".."})


class RouterDeployment(Strict):
    num_replicas: int = Field(1, ge=1, le=1024)
    max_ongoing_requests: int = Field(1000, ge=1, le=1_000_000)
    num_cpus: float = Field(0.0, ge=0)


def check_store_url(v: str) -> str:
    """A PostgreSQL URL with no password: a config is shown by Serve and a spec is stored. An
    error shows the URL with its password, if any, as ***."""
    shown = re.sub(r"(://[^/@:]*:)[^/]*@", r"\1***@", v)
    shown = re.sub(r"(?i)(password=)[^&#]*", r"\1***", shown)
    problem = None
    if not v.lower().startswith(("postgresql://", "postgres://")):
        problem = "not a postgresql:// URL (a SQLite file is store_path)"
    elif not v.isprintable() or any(c.isspace() for c in v):
        problem = "a URL has no spaces or control characters"
    elif shown != v:
        problem = ("the URL carries a password: a config is shown by Serve and a spec is "
                   "stored; give it in PGPASSWORD (or a ~/.pgpass file) where the controller "
                   "runs, or the whole URL in $RAYROLLOUT_STORE_URL")
    if problem is not None:
        raise field_error((), problem, shown[:200])
    return v


# A rollout store on a PostgreSQL server, for clusters: postgresql://user@host:port/database
StoreUrl = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(check_store_url)]


class StoreChoice:
    """Of a model with ``store_path`` and ``store_url``: at most one is set, and
    ``store_target()`` is the one the controller opens."""

    if TYPE_CHECKING:
        store_path: str | None
        store_url: str | None

    @model_validator(mode="after")
    def _one_store(self) -> Self:
        if self.store_path is not None and self.store_url is not None:
            raise field_error(("store_url",), "store_url and store_path are exclusive: a "
                              "rollout has one store", self.store_url)
        return self

    def store_target(self) -> str | None:
        """``store_url`` or ``store_path`` (None: ``$RAYROLLOUT_STORE_URL``, else the default
        file on the controller's node)."""
        return self.store_url or self.store_path


class RouterConfig(StoreChoice, Strict):
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
    # The store of rollouts started over HTTP (POST /rollout/start may not choose it): a
    # SQLite file (store_path) or a PostgreSQL URL (store_url); neither: $RAYROLLOUT_STORE_URL,
    # else a file on the controller's node.
    store_path: str | None = Field(None, min_length=1, max_length=4096)
    store_url: StoreUrl | None = None
    # How it talks to its versions: ``tensor`` (validated arrays, the Open Inference Protocol
    # and /v1 routes) or ``http`` (requests under its prefix passed through to apps that speak
    # their own HTTP; ``predictions`` reads each version's prediction from its answers).
    interface: Literal["tensor", "http"] = "tensor"
    predictions: dict[str, PredictionSpec] = Field(default_factory=dict)
    # The model's own path prefix on the ingress (``/name[/more]``): every request under it is
    # this model's, seen by its router as if the prefix were not there (a pass-through model's
    # requests are passed on under it). Default: ``/<model>`` for ``interface: http``, none for
    # a tensor model (which is always served at ``/v2/models/<model>/...`` as well).
    path_prefix: str | None = Field(None, max_length=200, pattern=PATH_PREFIX_PATTERN)
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
        for v in self.predictions:
            if v not in self.live_versions():
                raise ValueError(f"predictions[{v!r}] names a version that is not live")
        if self.predictions and self.interface != "http":
            raise ValueError("predictions read pass-through answers: set interface: http")
        return self

    @field_validator("path_prefix")
    @classmethod
    def _prefix_not_reserved(cls, v: str | None) -> str | None:
        if v is not None and v.split("/")[1] in RESERVED_PREFIXES:
            raise ValueError(f"path_prefix={v!r} starts with /{v.split('/')[1]}, which the "
                             f"ingress serves itself ({', '.join(sorted(RESERVED_PREFIXES))})")
        return v

    @property
    def app_name(self) -> str:
        return router_app_name(self.model)

    @property
    def prefix(self) -> str | None:
        """The path prefix this model is served under on the ingress (None: only at
        ``/v2/models/<model>/...`` and ``/v1/models/<model>/...``)."""
        if self.path_prefix is not None:
            return self.path_prefix
        return f"/{self.model}" if self.interface == "http" else None

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
            predictions={v: p.model_dump(mode="json", exclude_none=True)
                         for v, p in self.predictions.items()},
        )

    def live_versions(self) -> list[str]:
        names = list(self.weights)
        if self.shadow and self.shadow.version not in names:
            names.append(self.shadow.version)
        return names


def project_root() -> Path:
    """Where relative artifact paths resolve: ``RAYROLLOUT_HOME`` if set; else the checkout
    this package runs from (an editable install: the directory holding ``pyproject.toml`` above
    the package); else (an installed package) the current directory."""
    env = os.environ.get("RAYROLLOUT_HOME")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "rayrollout").is_dir():
        return checkout
    return Path.cwd()
