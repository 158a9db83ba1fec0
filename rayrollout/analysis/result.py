"""Outcomes of one check, as values.

``Verdict`` is ordered best to worst (``PASS < INCONCLUSIVE < ERROR < FAIL``) so that the
verdict of a step is ``max`` over its checks (``worst``). A ``CheckResult`` is frozen and
round-trips through JSON (``to_dict`` / ``from_dict``) so that the controller can record it
in its decision log and a replay can compare it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Verdict(IntEnum):
    """Outcome of one check, ordered best to worst: the worst verdict of a step wins."""

    PASS = 0  # enough data and no evidence of harm
    INCONCLUSIVE = 1  # not enough data yet (never reported as PASS)
    ERROR = 2  # the metric could not be read
    FAIL = 3  # evidence of harm crossed the check's threshold


def _enc(x: float | None) -> float | str | None:
    """Strict-JSON number: None for None/NaN, "inf"/"-inf" for infinities."""
    if x is None or math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x)


def _dec(x: float | str | None) -> float | None:
    return None if x is None else float(x)


def _dec_nan(x: float | str | None) -> float:
    return math.nan if x is None else float(x)


@dataclass(frozen=True)
class CheckResult:
    """One check's judgement at one time.

    * ``log_e`` is the natural log of the e-value (the evidence against "candidate is not
      worse"); ``threshold`` is the e-value that makes it FAIL (``1/alpha``). Both are
      ``None`` for checks that are not e-processes (plain SLO thresholds).
    * ``ci`` is a confidence interval (or sequence) for the effect named by ``statistic``
      when the check has one.
    * ``counts`` holds the numbers of events the check used (JSON scalars only).
    """

    check: str
    verdict: Verdict
    statistic: str = ""
    value: float | None = None
    log_e: float | None = None
    threshold: float | None = None
    ci: tuple[float, float] | None = None
    counts: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    warning: bool = False

    @property
    def e_value(self) -> float | None:
        """The e-value itself (may be ``inf`` when ``log_e`` is huge)."""
        if self.log_e is None:
            return None
        return math.exp(self.log_e) if self.log_e < 709.0 else math.inf

    @property
    def log10_e(self) -> float | None:
        """Evidence in decimal orders of magnitude, as shown in reports."""
        return None if self.log_e is None else self.log_e / math.log(10.0)

    @property
    def log10_threshold(self) -> float | None:
        """The failing threshold in the same units as ``log10_e`` (``E = 10^x``)."""
        th = self.threshold
        return math.log10(th) if th is not None and th > 0 and math.isfinite(th) else None

    def view(self) -> dict[str, Any]:
        """``to_dict`` plus the evidence and its threshold as ``log10_e`` / ``log10_threshold``
        (what the CLI, the status page and the demo show, computed once here)."""
        return {**self.to_dict(), "log10_e": _enc(self.log10_e),
                "log10_threshold": _enc(self.log10_threshold)}

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict: NaN becomes null, infinities the strings "inf" / "-inf"."""
        return {
            "check": self.check,
            "verdict": self.verdict.name,
            "statistic": self.statistic,
            "value": _enc(self.value),
            "log_e": _enc(self.log_e),
            "threshold": _enc(self.threshold),
            "ci": None if self.ci is None else [_enc(self.ci[0]), _enc(self.ci[1])],
            "counts": {k: _enc(float(v)) for k, v in self.counts.items()},
            "reason": self.reason,
            "warning": self.warning,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckResult:
        """Inverse of ``to_dict`` (a verdict is accepted by name or by value)."""
        verdict = d["verdict"]
        ci = d.get("ci")
        return cls(
            check=str(d["check"]),
            verdict=Verdict[verdict] if isinstance(verdict, str) else Verdict(int(verdict)),
            statistic=str(d.get("statistic", "")),
            value=_dec(d.get("value")),
            log_e=_dec(d.get("log_e")),
            threshold=_dec(d.get("threshold")),
            ci=None if ci is None else (_dec_nan(ci[0]), _dec_nan(ci[1])),
            counts={k: float(v) for k, v in d.get("counts", {}).items()},
            reason=str(d.get("reason", "")),
            warning=bool(d.get("warning", False)),
        )


def worst(results: Iterable[CheckResult]) -> Verdict:
    """The worst verdict of ``results``; ``INCONCLUSIVE`` when there are none (never PASS)."""
    verdicts = [r.verdict for r in results]
    return max(verdicts) if verdicts else Verdict.INCONCLUSIVE
