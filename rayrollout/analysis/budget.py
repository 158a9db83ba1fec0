"""Splitting one false-rollback budget ``alpha`` over checks and candidates (Bonferroni).

Each sequential check of each candidate gets ``alpha * weight_i / sum(weights) / candidates``.
By the union bound the probability that *any* check falsely rolls back *any* candidate is at
most ``alpha``. Plain threshold guards have no false-rollback bound and take no share. The
split is explicit and reported (``explain()``), never implicit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AlphaBudget:
    """The per-check share of ``total`` for each of ``candidates`` candidates."""

    total: float
    candidates: int
    shares: Mapping[str, float]
    weights: Mapping[str, float]

    def share(self, check: str) -> float:
        """The alpha share of one check (for one candidate); KeyError names the check."""
        if check not in self.shares:
            raise KeyError(f"no alpha share for check {check!r}; known: {sorted(self.shares)}")
        return self.shares[check]

    def threshold(self, check: str) -> float:
        """The e-value at which ``check`` fails: ``1 / share``."""
        return 1.0 / self.share(check)

    def explain(self) -> str:
        """One line per check, e.g. ``errors: 0.05 x 1/3 / 1 candidate = 0.0167 (E >= 60)``."""
        tot = sum(self.weights.values())
        lines = [f"alpha {self.total:g} split over {len(self.shares)} checks (Bonferroni)"]
        for name, s in self.shares.items():
            lines.append(
                f"  {name}: {self.total:g} x {self.weights[name]:g}/{tot:g} / "
                f"{self.candidates} candidate(s) = {s:.4g} (fails at E >= {1.0 / s:.4g})"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "candidates": self.candidates,
            "shares": dict(self.shares),
            "weights": dict(self.weights),
        }


def split_alpha(
    total: float,
    checks: Sequence[str],
    candidates: int = 1,
    weights: Mapping[str, float] | None = None,
) -> AlphaBudget:
    """Weighted Bonferroni split; the shares of all checks and candidates sum to ``total``.

    ``weights`` (default 1 each) must be positive and name only listed checks.
    """
    if not 0.0 < total < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {total!r}")
    if candidates < 1:
        raise ValueError(f"candidates must be >= 1, got {candidates!r}")
    names = list(checks)
    if not names:
        raise ValueError("no checks to split alpha over")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate check names: {dupes}")
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"weights name unknown checks: {unknown}; checks: {names}")
    w = {n: float(weights.get(n, 1.0)) for n in names}
    bad = {n: v for n, v in w.items() if not (v > 0.0 and math.isfinite(v))}
    if bad:
        raise ValueError(f"weights must be positive: {bad}")
    tot = sum(w.values())
    shares = {n: total * v / tot / candidates for n, v in w.items()}
    return AlphaBudget(total=total, candidates=candidates, shares=shares, weights=w)
