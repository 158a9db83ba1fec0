"""The explicit registry of judge kinds: config name -> class. No silent default.

``make_judge(kind, params)`` builds a judge from a config's params dict and
``restore_judge(state)`` rebuilds one from ``to_state()`` (restarted controller). An unknown
kind or an unknown/invalid parameter raises ``ValueError`` naming it.

``params_model(kind)`` is the strict pydantic schema of a kind's config params: every keyword
of the judge's constructor but the ones the rollout sets itself (``RESERVED``), typed and
bounded by ``PARAM_RULES`` (or the constructor's own annotation where no rule exists). A spec
validates a check's params against it, so a wrong one fails naming
``analysis.checks.N.params.<name>``; rules that tie params together (``lo <= 1 <= hi``,
increasing ``edges``) stay in the judges and fail when the judge is built.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from rayrollout.analysis.base import Judge
from rayrollout.analysis.judges import accuracy, drift, latency
from rayrollout.analysis.judges.accuracy import AccuracyJudge
from rayrollout.analysis.judges.disagreement import DisagreementJudge
from rayrollout.analysis.judges.drift import DriftJudge
from rayrollout.analysis.judges.errors import ErrorRateJudge
from rayrollout.analysis.judges.latency import LatencyJudge
from rayrollout.analysis.judges.latency_tail import LatencyTailJudge
from rayrollout.analysis.judges.promql import MAX_QUERY, PromQLCompareJudge, PromQLThresholdJudge
from rayrollout.analysis.judges.threshold import ThresholdErrorJudge, ThresholdLatencyJudge
from rayrollout.dataplane.events import Outcome

JUDGE_KINDS: Mapping[str, Any] = {
    "errors": ErrorRateJudge,
    "latency": LatencyJudge,
    "latency_tail": LatencyTailJudge,
    "drift": DriftJudge,
    "disagreement": DisagreementJudge,
    "accuracy": AccuracyJudge,
    "threshold_errors": ThresholdErrorJudge,
    "threshold_latency": ThresholdLatencyJudge,
    "promql_threshold": PromQLThresholdJudge,
    "promql_compare": PromQLCompareJudge,
}

# Kinds that are anytime-valid tests and so take a share of the alpha budget.
SEQUENTIAL_KINDS = frozenset(
    {"errors", "latency", "latency_tail", "drift", "disagreement", "accuracy", "promql_compare"}
)


# Constructor keywords the rollout sets itself; never config params (the spec says by what).
RESERVED = frozenset({"alpha", "warmup_s", "unit_mode", "name", "start_t"})

_COUNT = 10**12  # requests, blocks, comparisons: beyond any rollout, within a JSON number
_SIZE = 10**7  # buffer lengths and bins: each one costs memory on the controller
_LIST = 1000  # entries of a grid, bet or edge list

_Count = Annotated[int, Field(ge=0, le=_COUNT)]
_PosCount = Annotated[int, Field(ge=1, le=_COUNT)]
_Size = Annotated[int, Field(ge=1, le=_SIZE)]
_Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # (list items too: no NaN, no inf)
_NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Finite = Annotated[float, Field(allow_inf_nan=False)]
_Frac = Annotated[float, Field(ge=0, le=1)]
_Open01 = Annotated[float, Field(gt=0, lt=1)]
_OUTCOME: Any = Literal[tuple(o.name for o in Outcome)]
_Outcomes: Any = Annotated[list[_OUTCOME], Field(min_length=1, max_length=len(Outcome))]
_Bets = Annotated[list[_NonNeg], Field(min_length=1, max_length=_LIST)]
_Grid = Annotated[list[_Pos], Field(min_length=1, max_length=_LIST)]

# The type and bounds of each config param, by name (one meaning per name across kinds), and
# by (kind, name) where a kind narrows it. A value outside them fails naming the param.
PARAM_RULES: Mapping[str, Any] = {
    "rho0": _Pos,
    "grid": _Grid,
    "cs_kappa": _Pos,
    "kappa": _Pos,
    "max_unreadable_frac": _Frac,
    "min_candidate_requests": _Count,
    "min_comparisons": _Count,
    "min_labelled": _Count,
    "min_blocks": _PosCount,
    "min_requests": _PosCount,
    "min_reference": _PosCount | None,
    "reference_n": _PosCount,
    "tau": _NonNeg,
    "delta_ms": _NonNeg,
    "delta": Annotated[float, Field(ge=0, lt=1)],
    "lambdas": _Bets,
    "outcomes": _Outcomes,
    "window": _Size,
    "sketch_size": _Size,
    "capacity": _Size,
    "n_bins": Annotated[int, Field(ge=1, le=_LIST)],
    "p": _Open01,
    "d0": _Open01,
    "quantile": Annotated[float, Field(gt=0, le=1)],
    "refresh_s": _Pos,
    "window_s": _Pos,
    "max_ms": _Pos,
    "max_error_rate": _Frac,
    "lo": Annotated[float, Field(gt=0, le=1)],
    "hi": Annotated[float, Field(ge=1)],
    "edges": Annotated[list[_Finite], Field(min_length=1, max_length=_LIST)] | None,
    "guarded": Annotated[list[Annotated[int, Field(ge=0, le=_LIST)]],
                         Field(max_length=_LIST + 1)] | None,
    "failed_as_disagree": bool,
    # PromQL checks (rayrollout.analysis.judges.promql): where, what and how often to read
    "url": Annotated[str, Field(pattern=r"^https?://[!-~]+$", max_length=2048)],
    "query": Annotated[str, Field(min_length=1, max_length=MAX_QUERY)],
    "interval_s": Annotated[float, Field(ge=0.5, le=3600, allow_inf_nan=False)],
    "timeout_s": Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)],
    "min_value": _Finite | None,
    "max_value": _Finite | None,
    "failures": Annotated[int, Field(ge=1, le=_LIST)],
    "stable_too": bool,
    "min_intervals": Annotated[int, Field(ge=1, le=10**6)],
    "settle_s": Annotated[float, Field(ge=0, le=86_400, allow_inf_nan=False)],
}
KIND_PARAM_RULES: Mapping[tuple[str, str], Any] = {
    ("latency", "method"): Literal[latency.METHODS],
    ("drift", "mode"): Literal[drift.MODES],
    ("accuracy", "mode"): Literal[accuracy.MODES],
    ("disagreement", "lambdas"): _Bets | None,
    ("drift", "delta"): _NonNeg,  # a tolerance on rank scores, not a probability
}

_PARAMS_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


@cache
def params_model(kind: str) -> type[BaseModel]:
    """The strict schema of ``kind``'s config params (see the module docstring)."""
    cls = _cls(kind)
    hints = typing.get_type_hints(cls.__init__)
    fields: dict[str, Any] = {}
    for name, p in inspect.signature(cls).parameters.items():
        if name in RESERVED or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        rule = KIND_PARAM_RULES.get((kind, name), PARAM_RULES.get(name, hints[name]))
        fields[name] = (rule, p.default)
    model: type[BaseModel] = create_model(
        f"{cls.__name__}Params", __config__=_PARAMS_CONFIG, **fields)
    return model


def _cls(kind: str) -> Any:
    try:
        return JUDGE_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown judge kind {kind!r}; known: {sorted(JUDGE_KINDS)}") from None


def make_judge(kind: str, params: Mapping[str, Any] | None = None) -> Judge:
    """Build a judge of ``kind`` from ``params`` (keyword arguments of its class)."""
    cls = _cls(kind)
    try:
        judge: Judge = cls(**dict(params or {}))
    except TypeError as e:  # an unknown or missing parameter
        raise ValueError(f"bad params for judge kind {kind!r}: {e}") from e
    return judge


def restore_judge(state: Mapping[str, Any]) -> Judge:
    """Rebuild a judge from its ``to_state()``; it continues exactly where it was."""
    judge: Judge = _cls(str(state.get("kind"))).from_state(dict(state))
    return judge
