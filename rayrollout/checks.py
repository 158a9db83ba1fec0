"""Build the judges a rollout's analysis spec asks for, with the alpha budget split explicitly."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from rayrollout.analysis.base import Judge
from rayrollout.analysis.budget import split_alpha
from rayrollout.analysis.registry import JUDGE_KINDS, SEQUENTIAL_KINDS, make_judge

if TYPE_CHECKING:
    from rayrollout.spec import AnalysisSpec


def check_judges(a: AnalysisSpec, candidates: int) -> dict[str, Judge]:
    """The judges of one candidate; bad params raise ``ValueError`` naming the check."""
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
