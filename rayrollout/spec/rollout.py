"""The rollout spec: what to roll out, in which steps, guarded by which checks. Strict pydantic.

A spec is validated before anything starts (``rayrollout validate``, the Python API, the admin
API, ``serve run``); an error names the field and the value, e.g.
``strategy.steps: steps must increase: steps[2].weight=30 <= steps[1].weight=40``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, JsonValue, ValidationInfo, field_validator, model_validator

from rayrollout.analysis.assemble import check_judges
from rayrollout.analysis.budget import split_alpha
from rayrollout.analysis.power import errors_requests, latency_requests
from rayrollout.analysis.registry import JUDGE_KINDS, SEQUENTIAL_KINDS, params_model
from rayrollout.dataplane.routing import RoutingTable
from rayrollout.spec.base import NAME_PATTERN, Strict, field_error
from rayrollout.spec.serving import RouterConfig, StoreChoice, StoreUrl, VersionSpec


class StepSpec(Strict):
    """One canary step: ``weight`` percent to each candidate for at least ``min_duration_s``
    and ``min_requests`` candidate requests; ``approval`` waits for a person before leaving."""

    weight: float = Field(gt=0, le=100)
    min_duration_s: float = Field(0.0, ge=0)
    min_requests: int = Field(0, ge=0, le=10**12)
    approval: bool = False


class ShadowPhaseSpec(Strict):
    """Before any user sees a candidate: mirror ``fraction`` of requests to it."""

    fraction: float = Field(1.0, gt=0, le=1)
    min_duration_s: float = Field(0.0, ge=0)
    min_comparisons: int = Field(100, ge=0, le=10**12)
    max_in_flight: int = Field(64, ge=1, le=100_000)
    rtol: float = Field(0.05, ge=0)  # regressors: relative difference counted as disagreement


class CapacitySpec(Strict):
    """How many replicas a candidate runs while it takes a share of the traffic.

    For fixed-size versions, ``candidate: traffic`` sizes the candidate with its share:
    ``max(min_replicas, ceil(share x full size))``, where the full size is the larger of the
    stable's and the candidate's replica counts (as Argo Rollouts' ``setCanaryScale`` with
    ``matchTrafficWeight``); ``full`` runs it at full size from the start. Autoscaling versions
    size themselves on their own load. Either way the stable keeps its full capacity for the
    whole rollout, and before promotion the candidate is brought to the stable's capacity.
    With ``wait`` (the default), traffic moves up only once the replicas it needs are running.
    """

    candidate: Literal["traffic", "full"] = "traffic"
    min_replicas: int = Field(1, ge=1, le=1024)
    wait: bool = True


class StrategySpec(Strict):
    """The shadow phase, the canary steps, their capacity, and the progress deadline.

    ``progress_deadline_s`` (as Argo Rollouts' ``progressDeadlineSeconds``): a shadow phase or
    canary step that something other than its minimum duration holds (a check INCONCLUSIVE or
    ERROR, fewer requests or comparisons than it needs) for longer than this pauses the
    rollout and notifies, instead of holding for ever; None (the default) waits for ever. A
    FAIL still rolls back at once; a resume starts a fresh deadline."""

    shadow: ShadowPhaseSpec | None = None
    steps: list[StepSpec] = Field(min_length=1)
    capacity: CapacitySpec = CapacitySpec()
    progress_deadline_s: float | None = Field(None, gt=0, le=30 * 86400)

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[StepSpec]) -> list[StepSpec]:
        for i in range(1, len(steps)):
            if steps[i].weight <= steps[i - 1].weight:
                raise ValueError(
                    f"steps must increase: steps[{i}].weight={steps[i].weight:g} <= "
                    f"steps[{i - 1}].weight={steps[i - 1].weight:g}"
                )
        return steps


# judge arguments the rollout sets itself: a check's params may not override them
RESERVED_PARAMS = {
    "alpha": "analysis.alpha and the check's weight (its share of the error budget)",
    "warmup_s": "analysis.warmup_s",
    "unit_mode": "analysis.unit_mode",
    "name": "the check's name",
    "start_t": "the controller (the candidate's first request)",
}


class CheckSpec(Strict):
    """One judge guarding the rollout. ``weight`` is its share of the alpha budget."""

    kind: str  # a kind of the judge registry (``rayrollout.analysis.registry.JUDGE_KINDS``)
    name: str | None = Field(None, pattern=NAME_PATTERN)
    weight: float = Field(1.0, gt=0)
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("params", mode="before")
    @classmethod
    def _known_params(cls, params: Any, info: ValidationInfo) -> Any:
        """Each param is one of its kind's, of its type and in its range (``params_model``):
        a wrong one fails as ``params.<name>``. Reserved ones say what sets them. (Before the
        JSON check, so that an error names the param, not a branch of ``JsonValue``.)"""
        if not isinstance(params, dict):
            return params  # not a mapping: the field's own type check says so
        for key in params:
            if key in RESERVED_PARAMS:
                raise field_error((key,), f"params.{key} is not a check parameter: it is set "
                                  f"by {RESERVED_PARAMS[key]}", params[key])
        kind = info.data.get("kind")
        if kind is not None:  # None: the kind itself failed, and says so
            params_model(kind).model_validate(params)
        return params

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in JUDGE_KINDS:
            raise ValueError(f"unknown check kind {kind[:64]!r}; known: {sorted(JUDGE_KINDS)}")
        return kind

    @property
    def check_name(self) -> str:
        return self.name or self.kind


def _default_checks() -> list[CheckSpec]:
    return [CheckSpec(kind="errors"), CheckSpec(kind="latency"), CheckSpec(kind="latency_tail")]


class DetectSpec(Strict):
    """What every canary step must be able to catch before it is left, and how surely.

    A step is then held until its candidate requests reach what the checks need for that
    (``rayrollout.analysis.power``), on top of its own ``min_requests`` and ``min_duration_s``;
    ``validate`` prints what each step needs and the status how long it has to go."""

    power: float = Field(0.8, gt=0.5, lt=1)
    errors_ratio: float | None = Field(None, gt=1)  # candidate error rate this many x baseline's
    base_error_rate: float = Field(0.005, gt=0, lt=1)  # the baseline's error rate
    latency_slower: float | None = Field(None, gt=0)  # candidate this much slower (0.1: 10%)
    latency_sigma: float = Field(0.6, gt=0, le=5)  # spread of log latency (log-normal sd)
    expected_rps: float | None = Field(None, gt=0)  # traffic, for validate's step durations

    def wanted(self) -> str:
        parts = []
        if self.errors_ratio is not None:
            parts.append(f"errors x{self.errors_ratio:g} on a {self.base_error_rate:.2%} base")
        if self.latency_slower is not None:
            parts.append(f"latency +{self.latency_slower:.0%}")
        return f"{' and '.join(parts)} with {self.power:.0%} power"


class AnalysisSpec(Strict):
    """The checks, one false-rollback budget ``alpha`` split over them (and the candidates),
    hard SLO guards, a warm-up excluded from the statistics, and what each step must be able
    to catch (``detect``)."""

    alpha: float = Field(0.05, gt=0, lt=1)
    warmup_s: float = Field(0.0, ge=0)
    checks: list[CheckSpec] = Field(default_factory=_default_checks)
    guards: list[CheckSpec] = Field(default_factory=list)
    tick_s: float = Field(1.0, ge=0.1, le=60)
    unit_mode: Literal["request", "session"] = "request"
    detect: DetectSpec | None = None

    @model_validator(mode="after")
    def _kinds_in_place(self) -> AnalysisSpec:
        for i, c in enumerate(self.checks):
            if c.kind not in SEQUENTIAL_KINDS:
                raise field_error(("checks", i, "kind"), f"checks[{i}].kind={c.kind!r} is a "
                                  "threshold guard: list it under guards", c.kind)
        for i, g in enumerate(self.guards):
            if g.kind in SEQUENTIAL_KINDS:
                raise field_error(("guards", i, "kind"), f"guards[{i}].kind={g.kind!r} is a "
                                  "sequential check: list it under checks", g.kind)
        located = [*(("checks", i, c) for i, c in enumerate(self.checks)),
                   *(("guards", i, g) for i, g in enumerate(self.guards))]
        names = [c.check_name for _, _, c in located]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            where, i, c = next(x for x in located[::-1] if x[2].check_name == dup[0])
            raise field_error((where, i, "name"), f"check names must be unique: {dup} "
                              "repeated (set name:)", c.name)
        try:
            check_judges(self, 1)  # params that only fail together fail here
        except ValueError as e:
            where, i, c = next((x for x in located if str(e).startswith(
                f"check {x[2].check_name!r}")), ("checks", 0, self.checks[0]))
            raise field_error((where, i, "params"), str(e), c.params) from None
        d = self.detect
        kinds = {c.kind for c in self.checks}
        if d is not None and d.errors_ratio is not None and "errors" not in kinds:
            raise field_error(("detect", "errors_ratio"),
                              "detect.errors_ratio needs an errors check in checks",
                              d.errors_ratio)
        if d is not None and d.latency_slower is not None and "latency" not in kinds:
            raise field_error(("detect", "latency_slower"),
                              "detect.latency_slower needs a latency check in checks",
                              d.latency_slower)
        return self

    def check_of(self, kind: str) -> CheckSpec:
        return next(c for c in self.checks if c.kind == kind)


ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
# Header names that carry credentials: their values come from the environment (headers_env).
_SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|passw|api[-_]?key|signature",
                            re.IGNORECASE)


def _header_name(name: str) -> None:
    if not re.match(r"^[A-Za-z0-9-]{1,64}$", name):
        raise field_error((name,), "not an HTTP header name", name)


# Notifier fields added after specs were stored: the digest leaves them out at their default.
NOTIFIER_ADDED: dict[str, Any] = {"max_attempts": 4, "backoff_s": 0.5}


class NotifierSpec(Strict):
    """Where promotions, rollbacks and pauses are announced: ``log``, a ``webhook`` (the
    event as JSON) or ``slack`` (a Slack incoming-webhook message: ``text`` and ``blocks``).

    A spec is stored and may be shown, so it holds no secret: a webhook URL that is one (a
    chat hook's path) comes from ``url_env``, and credential headers from ``headers_env``
    (header -> environment variable), both read where the controller runs. ``headers`` may
    only carry plain ones; a URL may not carry a user or password. A delivery that fails for
    a reason that may pass (no connection, a timeout, HTTP 408, 429 or 5xx) is tried up to
    ``max_attempts`` times in all, waiting about ``backoff_s`` x 2^k (with jitter) between.
    """

    kind: Literal["log", "webhook", "slack"]
    url: str | None = Field(None, pattern=r"^https?://[!-~]+$", max_length=2048)
    url_env: str | None = Field(None, pattern=ENV_NAME_PATTERN)
    timeout_s: float = Field(2.0, gt=0, le=30)
    headers: dict[str, str] = Field(default_factory=dict, max_length=32)
    headers_env: dict[str, str] = Field(default_factory=dict, max_length=32)
    max_attempts: int = Field(NOTIFIER_ADDED["max_attempts"], ge=1, le=10)
    backoff_s: float = Field(NOTIFIER_ADDED["backoff_s"], gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _no_userinfo(cls, v: str | None) -> str | None:
        if v is not None and "@" in re.split(r"[/?#]", v.split("://", 1)[1], maxsplit=1)[0]:
            raise ValueError("url carries a user or password: a spec is stored and shown; "
                             "give the whole URL in url_env instead")
        return v

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            _header_name(name)
            if len(value) > 1024 or not value.isprintable():
                raise field_error((name,), "a header value is at most 1024 printable "
                                  "characters (no CR or LF)", value)
            if _SECRET_HEADER.search(name) or value.lower().startswith(("bearer ", "basic ")):
                raise field_error((name,), f"headers[{name!r}] carries a credential: a spec "
                                  "is stored and shown; name an environment variable in "
                                  "headers_env instead", value[:8] + "...")
        return v

    @field_validator("headers_env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name, var in v.items():
            _header_name(name)
            if not re.match(ENV_NAME_PATTERN, var):
                raise field_error((name,), f"headers_env[{name!r}]={var[:64]!r} is not an "
                                  "environment variable name", var)
        return v

    @model_validator(mode="after")
    def _where(self) -> NotifierSpec:
        if self.kind != "log" and (self.url is None) == (self.url_env is None):
            raise ValueError(f"kind {self.kind!r} needs exactly one of url and url_env")
        if self.kind == "log" and (self.url or self.url_env or self.headers or self.headers_env):
            raise ValueError("kind 'log' takes no url, url_env, headers or headers_env")
        return self

    def shown(self) -> dict[str, Any]:
        """This notifier as status and logs may show it: a URL only as scheme://host."""
        doc = self.model_dump(mode="json", exclude_defaults=True)
        if self.url:
            doc["url"] = re.sub(r"^(https?://[^/?#]*).*$", r"\1/...", self.url)
        return doc


class RolloutSpec(StoreChoice, Strict):
    """A whole rollout of ``candidates`` against ``stable`` for one model."""

    model: str = Field(pattern=NAME_PATTERN)
    stable: VersionSpec
    candidates: list[VersionSpec] = Field(min_length=1, max_length=8)
    strategy: StrategySpec
    analysis: AnalysisSpec = AnalysisSpec()
    rollback_window_s: float = Field(300.0, ge=0)
    drain_s: float = Field(10.0, ge=0)  # a retired version's app is deleted this long after
    router: dict[str, Any] = Field(default_factory=dict)  # extra RouterConfig fields (checked)
    # Where the rollout's state lives: a SQLite file on the controller's node (store_path), or
    # a PostgreSQL server (store_url, no password); neither: $RAYROLLOUT_STORE_URL where the
    # controller runs, else ~/.rayrollout/<model>.db on its node.
    store_path: str | None = Field(None, min_length=1, max_length=4096)
    store_url: StoreUrl | None = None
    # A candidate's failed request (error, timeout) is retried once on the stable, so its user
    # gets an answer; the failure still counts against the candidate. Off: the user gets it.
    retry_on_stable: bool = False
    notifiers: list[NotifierSpec] = Field(default_factory=lambda: [NotifierSpec(kind="log")])

    @field_validator("router")
    @classmethod
    def _router_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Extra ``RouterConfig`` fields, checked here so an error names ``router.<key>``."""
        bad = set(v) & {"model", "weights", "shadow", "flags", "rollout", "fallback",
                        "interface", "predictions"}
        if bad:
            key = sorted(bad)[0]
            raise field_error((key,), f"router.{key} is set by the rollout, not by hand", None)
        RouterConfig.model_validate({"model": "m", "weights": {"v": 100.0}, **v})
        return v

    @model_validator(mode="after")
    def _consistent(self) -> RolloutSpec:
        seen = {self.stable.name: "stable.name"}
        for i, c in enumerate(self.candidates):
            if c.name in seen:
                raise field_error(("candidates", i, "name"), "version names must be unique: "
                                  f"{[c.name]} repeated (candidates.{i}.name={c.name!r} is "
                                  f"{seen[c.name]})", c.name)
            seen[c.name] = f"candidates.{i}.name"
        last = len(self.strategy.steps) - 1
        top = self.strategy.steps[-1].weight * len(self.candidates)
        if top > 100:
            raise field_error(
                ("strategy", "steps", last, "weight"),
                f"strategy.steps[-1].weight={self.strategy.steps[-1].weight:g} x "
                f"{len(self.candidates)} candidates = {top:g}% > 100%",
                self.strategy.steps[-1].weight)
        self._shadow_for_disagreement()
        self._one_interface()
        if self.strategy.shadow and len(self.candidates) > 1:
            raise field_error(("strategy", "shadow"), "strategy.shadow supports one candidate; "
                              f"got {len(self.candidates)}", None)
        try:
            self._needs()
        except ValueError as e:
            raise field_error(("analysis", "detect"), f"analysis.detect: {e}", None) from None
        return self

    def _one_interface(self) -> None:
        """Every version of a model speaks the same way to its router; a pass-through model's
        prediction-based checks need every version to say how its prediction is read."""
        kind = self.stable.interface
        for i, c in enumerate(self.candidates):
            if c.interface != kind:
                raise field_error(("candidates", i, "app"), f"candidates[{i}] is a {c.interface} "
                                  f"version but the stable is {kind}: a model's versions share "
                                  "one interface", None)
        needs = [c.check_name for c in self.analysis.checks
                 if c.kind in ("drift", "disagreement", "accuracy")]
        if kind != "http" or not needs:
            return
        for where, v in [("stable", self.stable), *((f"candidates.{i}", c)
                                                     for i, c in enumerate(self.candidates))]:
            if v.app is None or v.app.prediction is None:
                loc: tuple[str | int, ...] = (*where.split("."), "app", "prediction")
                raise field_error(loc, f"checks {needs} judge predictions: {where}.app.prediction "
                                  "must say how to read them from its answers", None)

    def _shadow_for_disagreement(self) -> None:
        """A disagreement check compares shadow answers: without a shadow phase of at least its
        ``min_comparisons`` it could never pass, and would hold every step for ever."""
        sh = self.strategy.shadow
        for i, c in enumerate(self.analysis.checks):
            if c.kind != "disagreement":
                continue
            need = int(c.params.get("min_comparisons", 100))  # type: ignore[arg-type]
            if sh is None:
                raise field_error(("analysis", "checks", i, "kind"),
                                  f"check {c.check_name!r} (disagreement) needs a shadow phase: "
                                  "set strategy.shadow", c.kind)
            if sh.min_comparisons < need:
                raise field_error(("strategy", "shadow", "min_comparisons"),
                                  f"strategy.shadow.min_comparisons={sh.min_comparisons} < "
                                  f"{need}, the min_comparisons of check {c.check_name!r}",
                                  sh.min_comparisons)

    def step_need(self, i: int) -> int:
        """Candidate requests step ``i`` needs for its checks to catch ``analysis.detect``
        (0 when the spec asks for nothing)."""
        return self._needs()[i][0]

    def step_needs(self) -> list[tuple[int, str]]:
        """Per step: the candidate requests ``analysis.detect`` needs, and why (in words)."""
        return self._needs()

    def _needs(self) -> list[tuple[int, str]]:
        a = self.analysis
        d = a.detect
        if d is None or (d.errors_ratio is None and d.latency_slower is None):
            return [(0, "")] * len(self.strategy.steps)
        n_cand = len(self.candidates)
        budget = split_alpha(a.alpha, [c.check_name for c in a.checks], candidates=n_cand,
                             weights={c.check_name: c.weight for c in a.checks})
        out = []
        for step in self.strategy.steps:
            stable = 100.0 - step.weight * n_cand
            w = step.weight / (step.weight + stable)  # the candidate's share of its pair
            need = 0
            if d.errors_ratio is not None:
                c = a.check_of("errors")
                need = max(need, errors_requests(
                    d.errors_ratio, d.base_error_rate, w, budget.share(c.check_name), d.power,
                    rho0=float(c.params.get("rho0", 1.0))))  # type: ignore[arg-type]
            if d.latency_slower is not None:
                c = a.check_of("latency")
                need = max(need, latency_requests(
                    d.latency_slower, d.latency_sigma, w, budget.share(c.check_name), d.power,
                    tau=float(c.params.get("tau", 0.0))))  # type: ignore[arg-type]
            out.append((need, d.wanted()))
        return out

    def version(self, name: str) -> VersionSpec:
        for v in [self.stable, *self.candidates]:
            if v.name == name:
                return v
        raise KeyError(name)

    def router_config(
        self, weights: dict[str, float], shadow: str | None, fraction: float
    ) -> dict[str, Any]:
        versions = [self.stable, *self.candidates]
        doc: dict[str, Any] = {
            "model": self.model,
            "weights": weights,
            "flags": {v.name: dict(v.flags) for v in versions
                      if v.flags and v.name in weights},
            **self.router,
        }
        if self.stable.interface == "http":
            doc["interface"] = "http"
            doc["predictions"] = {
                v.name: {**v.app.prediction.model_dump(mode="json", exclude_none=True),
                         "task": v.task}
                for v in versions if v.app is not None and v.app.prediction is not None
                and (v.name in weights or v.name == shadow)}
        if self.retry_on_stable and self.stable.name in weights:
            doc["fallback"] = self.stable.name
        sh = self.strategy.shadow
        if shadow:
            doc["shadow"] = {"version": shadow, "fraction": fraction,
                             "max_in_flight": sh.max_in_flight if sh else 64,
                             "rtol": sh.rtol if sh else 0.05}
        return doc

    def routing_table(
        self, weights: dict[str, float], shadow: str | None, fraction: float, epoch: int
    ) -> RoutingTable:
        """The table the routers serve for this spec at ``epoch``: flags of the versions in
        ``weights``, the shadow with its bounds and tolerance (``RouterConfig.routing_table``)."""
        return RouterConfig.model_validate(
            self.router_config(weights, shadow, fraction)).routing_table(epoch)

    def digest(self) -> str:
        """A stable hash of the spec: the same spec started twice is the same rollout."""
        doc = self.model_dump(mode="json")
        if doc.get("store_url") is None:  # fields added later count only when set, so the
            doc.pop("store_url", None)     # digest of a spec written before them is unchanged
        if doc["strategy"].get("progress_deadline_s") is None:
            doc["strategy"].pop("progress_deadline_s", None)
        for n in doc["notifiers"]:
            for key, default in NOTIFIER_ADDED.items():
                if n.get(key) == default:
                    n.pop(key, None)
        text = json.dumps(doc, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_spec(spec: RolloutSpec | dict[str, Any] | str | Path) -> RolloutSpec:
    """A spec from a model, a dict, or a YAML file (a rollout spec, or a ``serve run`` config
    whose router application's args hold one under ``rollout``)."""
    if isinstance(spec, RolloutSpec):
        return spec
    if isinstance(spec, str | Path):
        doc = yaml.safe_load(Path(spec).read_text())
        if isinstance(doc, dict) and "applications" in doc:
            for app in doc["applications"]:
                if app.get("import_path", "").endswith(":build_rollout"):
                    return RolloutSpec.model_validate(app["args"])
            raise ValueError(f"{spec}: no application uses rayrollout.serving.app:build_rollout")
        spec = doc
    return RolloutSpec.model_validate(spec)
