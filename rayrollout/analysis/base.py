"""The ``Judge`` plug-in point (``LabelledEvent`` is re-exported from
``rayrollout.dataplane.events``).

A judge compares a candidate version with a baseline version for one check. The controller
calls ``observe`` every tick with only the *new* events (incremental, O(new events)), then
``result(now)`` for a value (``CheckResult``). ``to_state()`` is JSON-able and
``from_state(to_state())`` resumes a judge exactly where it was (restartable controller).

Guarantees every built-in judge keeps:

* no clock reads and no own randomness: ``now`` and the events carry all time;
* ``PASS`` only with the configured minimum of data; ``INCONCLUSIVE`` before;
* ``ERROR`` when the metric could not be read (NaN / malformed columns), distinct from ``FAIL``;
* a sequential judge with share ``alpha`` FAILs with probability at most ``alpha`` over the
  whole rollout when the candidate is not worse (stated per judge in its docstring).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from rayrollout.analysis.result import CheckResult

__all__ = ["Judge", "LabelledEvent"]
from rayrollout.dataplane.events import EventBatch, LabelledEvent, ShadowEvent


@runtime_checkable
class Judge(Protocol):
    """One check: baseline vs candidate events in, a ``CheckResult`` out."""

    @property
    def kind(self) -> str:
        """The registry kind that builds this judge."""
        ...

    @property
    def name(self) -> str:
        """The check name reported in results."""
        ...

    @property
    def alpha(self) -> float:
        """The false-rollback share (0.0 for plain threshold guards)."""
        ...

    def observe(
        self,
        events: EventBatch,
        baseline: str,
        candidate: str,
        shadow: Sequence[ShadowEvent] = (),
        labelled: Sequence[LabelledEvent] = (),
    ) -> None:
        """Consume only the events that are new since the last call."""
        ...

    def result(self, now: float) -> CheckResult:
        """The judgement at time ``now`` (pure: does not change the judge's evidence)."""
        ...

    def to_state(self) -> dict[str, Any]:
        """JSON-able state including ``kind`` and ``params``."""
        ...
