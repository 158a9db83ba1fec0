"""The base of every config model: strict, frozen pydantic that rejects unknown fields, and the
one way a validation error is shown (``field.path: message (got value)``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def format_validation_error(exc: Exception) -> str:
    """One line per problem: ``field.path: message (got value)``."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        inp = err.get("input")
        shown = "" if isinstance(inp, dict) else f" (got {inp!r})"
        lines.append(f"{loc}: {err['msg']}{shown}")
    return "\n".join(lines)
