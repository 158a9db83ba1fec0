"""What the report reads: the admin API's ``GET /rollout/status`` and ``GET /rollout/history``
JSON, as pydantic models.

The models are lenient where the API may grow or be partial (unknown keys are ignored, every
field but the ones an entry cannot be drawn without has a default) and strict where a value is
used: a number that is not one, or an entry that is not an object, is a ``ConfigError`` that
names the field (``history[3].evidence.v2.0.log_e: ...``). Numbers accept the API's encoding of
infinities (``"inf"`` / ``"-inf"``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from rayrollout.errors import ConfigError
from rayrollout.spec.base import format_validation_error


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ResultIn(_In):
    """One check's result (``CheckResult.to_dict`` / ``view``)."""

    check: str
    verdict: str = ""
    statistic: str = ""
    value: float | None = None
    log_e: float | None = None
    threshold: float | None = None
    counts: dict[str, float | None] = {}
    reason: str = ""
    warning: bool = False


class ActionIn(_In):
    """One action of a decision (``Action.to_dict``: defaults are left out)."""

    kind: str
    version: str | None = None
    epoch: int | None = None
    weights: dict[str, float] | None = None
    shadow: str | None = None
    shadow_fraction: float = 0.0
    message: str = ""


class EntryIn(_In):
    """One entry of the decision log (``Decision.to_dict`` plus the store's ``log_seq``,
    ``rollout``, ``ts``)."""

    now: float
    seq: int = 0
    log_seq: int | None = None
    rollout: int | None = None
    ts: float | None = None
    phase_from: str = ""
    phase_to: str = ""
    step: int = -1
    epoch: int = 0
    actions: list[ActionIn] = []
    reason: str = ""
    evidence: dict[str, list[ResultIn]] = {}
    actor: str = ""


class CandidateIn(_In):
    name: str
    status: str = "active"
    reason: str = ""


class StepIn(_In):
    weight: float
    approval: bool = False


class StatusIn(_In):
    """``RolloutController.status()``; a model without a rollout has ``phase`` "none"."""

    model: str = ""
    rollout: int | None = None
    attempt: int | None = None
    phase: str = "none"
    final: bool = False
    step: int = -1
    steps: list[StepIn] = []
    epoch: int | None = None
    weights: dict[str, float] = {}
    shadow: str | None = None
    shadow_fraction: float = 0.0
    stable: str | None = None
    previous_stable: str | None = None
    candidates: list[CandidateIn] = []
    phase_since: float | None = None
    step_requests: int | None = None
    step_need: dict[str, Any] | None = None
    shadow_compared: int | None = None
    checks: dict[str, list[ResultIn]] = {}
    alpha: float | None = None
    decisions: int | None = None
    now: float | None = None
    # What the rollout still waits for (``controller.explain.waiting_for``: a list of entries
    # with ``candidate``, ``check``, ``text``), and the progress deadline, when it says.
    waiting_for: Any = None
    progress_deadline: dict[str, Any] | None = None
    deadline: dict[str, Any] | None = None


def parse(status: Any, history: Any) -> tuple[StatusIn, list[EntryIn]]:
    """The validated inputs; ``ConfigError`` naming the first bad fields otherwise."""
    if not isinstance(status, dict):
        raise ConfigError(f"status: expected the JSON object GET /rollout/status returns, "
                          f"got {type(status).__name__}")
    if not isinstance(history, list):
        raise ConfigError(f"history: expected the JSON list GET /rollout/history returns, "
                          f"got {type(history).__name__}")
    try:
        st = StatusIn.model_validate(status)
    except ValidationError as e:
        raise ConfigError(_prefixed("status", e)) from None
    entries = []
    for i, doc in enumerate(history):
        if not isinstance(doc, dict):
            raise ConfigError(f"history[{i}]: expected a decision log entry (a JSON object), "
                              f"got {type(doc).__name__}")
        try:
            entries.append(EntryIn.model_validate(doc))
        except ValidationError as e:
            raise ConfigError(_prefixed(f"history[{i}]", e)) from None
    return st, entries


def _prefixed(where: str, e: ValidationError) -> str:
    return "\n".join(f"{where}.{line}" for line in format_validation_error(e).splitlines())
