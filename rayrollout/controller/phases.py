"""Rollout phases and the table of allowed transitions. An illegal transition is an error."""

from __future__ import annotations

from enum import StrEnum

from rayrollout.errors import Conflict


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
ACTIVE = frozenset({P.DEPLOYING, P.SHADOW, P.CANARY, P.AWAITING_APPROVAL, P.PAUSED})
TERMINAL = frozenset({P.COMPLETED, P.ROLLED_BACK})


class IllegalTransition(Conflict):
    """A verb or a decision asked for a move the table does not allow (HTTP 409)."""

    code = "illegal_transition"


def check(src: Phase, dst: Phase) -> None:
    if dst not in TRANSITIONS[src]:
        allowed = ", ".join(sorted(TRANSITIONS[src])) or "none"
        raise IllegalTransition(f"cannot go from {src} to {dst} (allowed: {allowed})")
