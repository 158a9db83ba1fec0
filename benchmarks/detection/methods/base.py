"""What every method returns for one run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from benchmarks.detection.scenario import Scenario
from benchmarks.detection.simulator import Run


@dataclass(frozen=True)
class Outcome:
    """Rollback decision of one method on one run. ``t_decision`` is when the rollback is
    issued (seconds after canary start); ``None`` means no rollback within the horizon."""

    t_decision: float | None
    exposure: int  # canary requests served before the decision (all of them if none)
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rolled_back(self) -> bool:
        return self.t_decision is not None


class Method(Protocol):
    @property
    def name(self) -> str: ...

    def config(self) -> dict[str, Any]: ...

    def judge(self, run: Run, sc: Scenario, rng: np.random.Generator) -> Outcome: ...


def outcome_at(run: Run, t_decision: float | None, reason: str = "", **extra: Any) -> Outcome:
    t_end = run.horizon_s if t_decision is None else t_decision
    return Outcome(t_decision, run.exposure_before(t_end), reason, dict(extra))
