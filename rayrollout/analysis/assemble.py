"""Build the judges an analysis spec asks for, with the alpha budget split explicitly.

Takes any object shaped like ``rayrollout.spec.AnalysisSpec`` (``AnalysisLike``), so the
analysis engine never imports the spec models: the spec imports this to validate its checks.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from rayrollout.analysis.base import Judge
from rayrollout.analysis.budget import split_alpha
from rayrollout.analysis.registry import JUDGE_KINDS, SEQUENTIAL_KINDS, make_judge


class CheckLike(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def check_name(self) -> str: ...

    @property
    def weight(self) -> float: ...

    @property
    def params(self) -> Mapping[str, Any]: ...


class AnalysisLike(Protocol):
    @property
    def alpha(self) -> float: ...

    @property
    def warmup_s(self) -> float: ...

    @property
    def unit_mode(self) -> str: ...

    @property
    def checks(self) -> Sequence[CheckLike]: ...

    @property
    def guards(self) -> Sequence[CheckLike]: ...


def check_judges(a: AnalysisLike, candidates: int) -> dict[str, Judge]:
    """The judges of one candidate, in the spec's order (checks, then guards); bad params raise
    ``ValueError`` naming the check and the parameter."""
    seq_checks = a.checks
    budget = split_alpha(
        a.alpha,
        [c.check_name for c in seq_checks],
        candidates=candidates,
        weights={c.check_name: c.weight for c in seq_checks},
    )
    judges: dict[str, Judge] = {}
    for c in [*a.checks, *a.guards]:
        params: dict[str, Any] = {"name": c.check_name}
        accepted = inspect.signature(JUDGE_KINDS[c.kind]).parameters
        if c.kind in SEQUENTIAL_KINDS:
            params.update(alpha=budget.share(c.check_name), warmup_s=a.warmup_s)
            if "unit_mode" in accepted:
                params["unit_mode"] = a.unit_mode
        params.update(c.params)
        try:
            judges[c.check_name] = make_judge(c.kind, params)
        except ValueError as e:
            raise ValueError(f"check {c.check_name!r} (params {dict(c.params)!r}): {e}") from e
    return judges
