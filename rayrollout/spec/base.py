"""The base of every config model: strict, frozen pydantic that rejects unknown fields, and the
one way a validation error is shown (``field.path: message (got value)``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def field_error(loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """An error located at ``loc`` inside the model being validated. Raised from one of its
    validators, pydantic places it under the model's own path, so a rule that looks at several
    fields still names the one that breaks it (``analysis.guards.0.kind``, not ``analysis``)."""
    return ValidationError.from_exception_data("spec", [InitErrorDetails(
        type=PydanticCustomError("value_error", "{message}", {"message": message}),
        loc=loc, input=value)])


SHOWN_VALUE = 80  # characters of a bad value an error shows
SHOWN_MESSAGE = 500  # characters of one problem's message


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else f"{text[:most]}... ({len(text):,} characters)"


def format_validation_error(exc: Exception) -> str:
    """One line per problem: ``field.path: message (got value)``.

    A value is shown as its ``repr`` cut to ``SHOWN_VALUE`` characters and a message to
    ``SHOWN_MESSAGE``, so a megabyte sent as a number comes back as a short line, not an echo.
    Mappings are not shown (their bad entry has its own line)."""
    if not isinstance(exc, ValidationError):
        return _clip(str(exc), SHOWN_MESSAGE)
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        inp = err.get("input")
        shown = "" if isinstance(inp, dict) else f" (got {_clip(repr(inp), SHOWN_VALUE)})"
        lines.append(f"{_clip(loc, SHOWN_MESSAGE)}: {_clip(err['msg'], SHOWN_MESSAGE)}{shown}")
    return "\n".join(lines)
