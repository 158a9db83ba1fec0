"""``FakeSource``: a scripted ``MetricSource`` for tests (no network).

Each query answers what was set for it: a number, a ``SourceError`` (raised), or a function of
the evaluation time. A query nothing was set for answers like Prometheus for a selector that
matches no series (``EmptyResult``); ``down`` makes every query fail as an unreachable server.
``asked`` records every ``(query, at)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from rayrollout.sources.base import EmptyResult, SourceError, SourceUnavailable

Answer = float | SourceError | Callable[[float | None], float]


class FakeSource:
    def __init__(self, answers: Mapping[str, Answer] | None = None,
                 where: str = "fake://prometheus") -> None:
        self.answers: dict[str, Answer] = dict(answers or {})
        self.down = False
        self.asked: list[tuple[str, float | None]] = []
        self._where = where
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return self._where

    def set(self, query: str, answer: Answer) -> None:
        with self._lock:
            self.answers[query] = answer

    def value(self, query: str, at: float | None = None) -> float:
        with self._lock:
            self.asked.append((query, at))
            answer = self.answers.get(query)
            down = self.down
        if down:
            raise SourceUnavailable(f"{self._where} cannot be reached (fake: down)")
        if answer is None:
            raise EmptyResult(f"no series answered {query!r} at {self._where}")
        if isinstance(answer, SourceError):
            raise answer
        if callable(answer):
            return float(answer(at))
        return float(answer)
