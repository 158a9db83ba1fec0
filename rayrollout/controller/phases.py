"""Rollout phases, the table of allowed transitions, and the verbs people may send in each phase.

This module is the one source of truth for all three: ``decide`` checks every move against
``TRANSITIONS`` and every verb against ``VERBS``, the controller's status lists the verbs
allowed now (computed by ``decide.allowed_verbs`` from the same table), and the admin API serves
``VERBS`` (``GET /rollout/verbs``) to the status page and the CLI, which carry no copy of it.
An illegal transition or verb raises ``IllegalTransition`` (HTTP 409).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rayrollout._compat import StrEnum
from rayrollout.errors import IllegalTransition

__all__ = [
    "ACTIVE",
    "FINAL",
    "TERMINAL",
    "TRANSITIONS",
    "VERBS",
    "IllegalTransition",
    "Phase",
    "Verb",
    "check",
]


class Phase(StrEnum):
    PENDING = "pending"
    DEPLOYING = "deploying"
    SHADOW = "shadow"
    CANARY = "canary"
    AWAITING_APPROVAL = "awaiting_approval"
    PAUSED = "paused"
    PROMOTED = "promoted"  # candidate is stable; the old stable stays warm for ``undo``
    COMPLETED = "completed"  # the rollback window passed; the old stable is retired
    ROLLED_BACK = "rolled_back"


P = Phase
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    P.PENDING: frozenset({P.DEPLOYING}),
    P.DEPLOYING: frozenset({P.SHADOW, P.CANARY, P.PAUSED, P.ROLLED_BACK}),
    P.SHADOW: frozenset({P.CANARY, P.PAUSED, P.AWAITING_APPROVAL, P.PROMOTED, P.ROLLED_BACK}),
    P.CANARY: frozenset({P.CANARY, P.AWAITING_APPROVAL, P.PAUSED, P.PROMOTED, P.ROLLED_BACK}),
    P.AWAITING_APPROVAL: frozenset({P.CANARY, P.PAUSED, P.PROMOTED, P.ROLLED_BACK}),
    P.PAUSED: frozenset({P.DEPLOYING, P.SHADOW, P.CANARY, P.AWAITING_APPROVAL, P.PROMOTED,
                         P.ROLLED_BACK}),
    P.PROMOTED: frozenset({P.COMPLETED, P.ROLLED_BACK}),
    P.COMPLETED: frozenset(),
    P.ROLLED_BACK: frozenset({P.DEPLOYING}),
}
# Phases in which candidates are judged and a FAIL rolls back.
ACTIVE = frozenset({P.DEPLOYING, P.SHADOW, P.CANARY, P.AWAITING_APPROVAL, P.PAUSED})
# Phases nothing leaves by itself.
TERMINAL = frozenset({P.COMPLETED, P.ROLLED_BACK})
# Phases where a watcher stops: the rollout's outcome is known (promoted may still be undone).
FINAL = TERMINAL | {P.PROMOTED}


@dataclass(frozen=True)
class Verb:
    """A person's command: in which phases it is accepted, what it takes, what it does.

    ``refused`` is the message when the phase is not one of ``phases`` (``{phase}`` is filled
    in); ``destructive`` verbs are confirmed by a person in the status page first."""

    name: str
    phases: frozenset[Phase]
    help: str
    refused: str
    params: tuple[str, ...] = ()
    destructive: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phases": sorted(str(p) for p in self.phases),
            "help": self.help,
            "params": list(self.params),
            "destructive": self.destructive,
        }


_VERBS = (
    Verb("pause", ACTIVE - {P.PAUSED}, "hold the rollout where it is (judging goes on)",
         "cannot pause in phase {phase}", ("reason",)),
    Verb("resume", frozenset({P.PAUSED}), "go on from where the rollout was paused",
         "cannot resume in phase {phase}"),
    Verb("approve", frozenset({P.AWAITING_APPROVAL}), "leave a step that waits for approval",
         "nothing waits for approval in phase {phase}"),
    Verb("promote", frozenset({P.SHADOW, P.CANARY, P.AWAITING_APPROVAL, P.PAUSED}),
         "go to the next step now (full: make the candidate stable at 100% now)",
         "cannot promote in phase {phase}", ("full", "candidate")),
    Verb("abort", ACTIVE, "roll back now: all traffic to stable, candidates withdrawn",
         "cannot abort in phase {phase}; use undo after promotion", ("reason",),
         destructive=True),
    Verb("retry", frozenset({P.ROLLED_BACK}), "start a rolled-back rollout again, fresh evidence",
         "retry needs a rolled-back rollout; phase {phase}", destructive=True),
    Verb("undo", frozenset({P.PROMOTED}), "make the previous stable stable again (within the "
         "rollback window)", "undo needs a promotion within its window; phase {phase}",
         destructive=True),
)
VERBS: Mapping[str, Verb] = {v.name: v for v in _VERBS}


def check(src: Phase, dst: Phase) -> None:
    """Raise ``IllegalTransition`` unless ``TRANSITIONS`` allows ``src -> dst``."""
    if dst not in TRANSITIONS[src]:
        allowed = ", ".join(sorted(TRANSITIONS[src])) or "none"
        raise IllegalTransition(f"cannot go from {src} to {dst} (allowed: {allowed})")
