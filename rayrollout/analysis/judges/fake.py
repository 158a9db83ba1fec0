"""``FakeJudge``: scripted results for other components' tests (no statistics)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rayrollout.analysis.base import LabelledEvent
from rayrollout.analysis.result import CheckResult, Verdict
from rayrollout.dataplane.events import EventBatch, ShadowEvent


class FakeJudge:
    """Returns ``script`` results one per ``result()`` call, then repeats the last one.

    A script item may be a ``Verdict`` (wrapped in a plain result) or a ``CheckResult``. With
    an empty script every result is INCONCLUSIVE. ``observed`` records each ``observe`` call as
    ``(n_events, baseline, candidate, n_shadow, n_labelled)``; ``asked`` the ``now`` values.
    """

    kind = "fake"

    def __init__(
        self,
        name: str = "fake",
        script: Sequence[CheckResult | Verdict] = (),
        alpha: float = 0.0,
    ) -> None:
        self.name = name
        self.alpha = alpha
        self.script = [
            s
            if isinstance(s, CheckResult)
            else CheckResult(check=name, verdict=Verdict(s), reason=f"scripted {Verdict(s).name}")
            for s in script
        ]
        self.i = 0
        self.observed: list[tuple[int, str, str, int, int]] = []
        self.asked: list[float] = []

    def observe(
        self,
        events: EventBatch,
        baseline: str,
        candidate: str,
        shadow: Sequence[ShadowEvent] = (),
        labelled: Sequence[LabelledEvent] = (),
    ) -> None:
        self.observed.append((len(events), baseline, candidate, len(shadow), len(labelled)))

    def result(self, now: float) -> CheckResult:
        self.asked.append(now)
        if not self.script:
            return CheckResult(check=self.name, verdict=Verdict.INCONCLUSIVE, reason="no script")
        r = self.script[min(self.i, len(self.script) - 1)]
        self.i += 1
        return r

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "params": {"name": self.name, "alpha": self.alpha},
            "script": [r.to_dict() for r in self.script],
            "i": self.i,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FakeJudge:
        j = cls(
            name=state["params"]["name"],
            alpha=state["params"]["alpha"],
            script=[CheckResult.from_dict(d) for d in state["script"]],
        )
        j.i = int(state["i"])
        return j
