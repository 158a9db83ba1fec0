"""``RecordingNotifier``: keeps every event it is told, for tests and the in-memory platform."""

from __future__ import annotations

from typing import Any


class RecordingNotifier:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def notify(self, event: dict[str, Any]) -> None:
        self.events.append(dict(event))
