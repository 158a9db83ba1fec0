"""Outcome names in judge params (JSON-able strings) to codes, rejecting unknown names."""

from __future__ import annotations

from collections.abc import Sequence

from rayrollout.dataplane.events import Outcome


def outcome_codes(names: Sequence[str], judge: str) -> tuple[int, ...]:
    """Codes of outcome names such as ``["OK", "TIMEOUT"]``; a clear error on a bad name."""
    known = [o.name for o in Outcome]
    codes = []
    for n in names:
        if n not in known:
            raise ValueError(f"{judge}: unknown outcome {n!r}; known: {known}")
        codes.append(int(Outcome[n]))
    if not codes:
        raise ValueError(f"{judge}: outcomes must not be empty")
    return tuple(codes)
