"""The rollout spec: what to roll out, in which steps, guarded by which checks. Strict pydantic.

A spec is validated before anything starts (``rayrollout validate``, the Python API, the admin
API, ``serve run``); an error names the field and the value, e.g.
``strategy.steps: steps must increase: steps[2].weight=30 <= steps[1].weight=40``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, JsonValue, field_validator, model_validator

from rayrollout.analysis.assemble import check_judges
from rayrollout.analysis.budget import split_alpha
from rayrollout.analysis.power import errors_requests, latency_requests
from rayrollout.analysis.registry import JUDGE_KINDS, SEQUENTIAL_KINDS
from rayrollout.dataplane.routing import RoutingTable
from rayrollout.spec.base import NAME_PATTERN, Strict
from rayrollout.spec.serving import RouterConfig, VersionSpec


class StepSpec(Strict):
    """One canary step: ``weight`` percent to each candidate for at least ``min_duration_s``
    and ``min_requests`` candidate requests; ``approval`` waits for a person before leaving."""

    weight: float = Field(gt=0, le=100)
    min_duration_s: float = Field(0.0, ge=0)
    min_requests: int = Field(0, ge=0)
    approval: bool = False


class ShadowPhaseSpec(Strict):
    """Before any user sees a candidate: mirror ``fraction`` of requests to it."""

    fraction: float = Field(1.0, gt=0, le=1)
    min_duration_s: float = Field(0.0, ge=0)
    min_comparisons: int = Field(100, ge=0)
    max_in_flight: int = Field(64, ge=1, le=100_000)
    rtol: float = Field(0.05, ge=0)  # regressors: relative difference counted as disagreement


class StrategySpec(Strict):
    shadow: ShadowPhaseSpec | None = None
    steps: list[StepSpec] = Field(min_length=1)

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

    @field_validator("params")
    @classmethod
    def _not_reserved(cls, params: dict[str, JsonValue]) -> dict[str, JsonValue]:
        for key in params:
            if key in RESERVED_PARAMS:
                raise ValueError(f"params.{key} is not a check parameter: it is set by "
                                 f"{RESERVED_PARAMS[key]}")
        return params

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in JUDGE_KINDS:
            raise ValueError(f"unknown check kind {kind!r}; known: {sorted(JUDGE_KINDS)}")
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
                raise ValueError(
                    f"checks[{i}].kind={c.kind!r} is a threshold guard: list it under guards"
                )
        for i, g in enumerate(self.guards):
            if g.kind in SEQUENTIAL_KINDS:
                raise ValueError(f"guards[{i}].kind={g.kind!r} is a sequential check: list it "
                                 "under checks")
        names = [c.check_name for c in [*self.checks, *self.guards]]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"check names must be unique: {dup} repeated (set name:)")
        check_judges(self, 1)  # bad params fail here, naming the check and the parameter
        d = self.detect
        kinds = {c.kind for c in self.checks}
        if d is not None and d.errors_ratio is not None and "errors" not in kinds:
            raise ValueError("detect.errors_ratio needs an errors check in checks")
        if d is not None and d.latency_slower is not None and "latency" not in kinds:
            raise ValueError("detect.latency_slower needs a latency check in checks")
        return self

    def check_of(self, kind: str) -> CheckSpec:
        return next(c for c in self.checks if c.kind == kind)


class NotifierSpec(Strict):
    """Where promotions and rollbacks are announced: ``log`` or a ``webhook`` (JSON POST)."""

    kind: Literal["log", "webhook"]
    url: str | None = Field(None, pattern=r"^https?://")
    timeout_s: float = Field(2.0, gt=0, le=30)
    headers: dict[str, str] = Field(default_factory=dict)


class RolloutSpec(Strict):
    """A whole rollout of ``candidates`` against ``stable`` for one model."""

    model: str = Field(pattern=NAME_PATTERN)
    stable: VersionSpec
    candidates: list[VersionSpec] = Field(min_length=1, max_length=8)
    strategy: StrategySpec
    analysis: AnalysisSpec = AnalysisSpec()
    rollback_window_s: float = Field(300.0, ge=0)
    drain_s: float = Field(10.0, ge=0)  # a retired version's app is deleted this long after
    router: dict[str, JsonValue] = Field(default_factory=dict)  # extra RouterConfig fields
    store_path: str | None = None  # SQLite file; default under ~/.rayrollout/
    notifiers: list[NotifierSpec] = Field(default_factory=lambda: [NotifierSpec(kind="log")])

    @model_validator(mode="after")
    def _consistent(self) -> RolloutSpec:
        names = [self.stable.name] + [c.name for c in self.candidates]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"version names must be unique: {dup} repeated")
        top = self.strategy.steps[-1].weight * len(self.candidates)
        if top > 100:
            raise ValueError(
                f"strategy.steps[-1].weight={self.strategy.steps[-1].weight:g} x "
                f"{len(self.candidates)} candidates = {top:g}% > 100%"
            )
        for i, n in enumerate(self.notifiers):
            if n.kind == "webhook" and not n.url:
                raise ValueError(f"notifiers[{i}]: kind 'webhook' needs a url")
        if self.strategy.shadow and len(self.candidates) > 1:
            raise ValueError("strategy.shadow supports one candidate; got "
                             f"{len(self.candidates)}")
        bad = set(self.router) & {"model", "weights", "shadow", "flags"}
        if bad:
            raise ValueError(f"router.{sorted(bad)[0]} is set by the rollout, not by hand")
        RouterConfig.model_validate(self.router_config({self.stable.name: 100.0}, None, 1.0))
        try:
            self._needs()
        except ValueError as e:
            raise ValueError(f"analysis.detect: {e}") from None
        return self

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
        doc: dict[str, Any] = {
            "model": self.model,
            "weights": weights,
            "flags": {v.name: dict(v.flags) for v in [self.stable, *self.candidates]
                      if v.flags and v.name in weights},
            **self.router,
        }
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
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
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
