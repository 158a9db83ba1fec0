"""The ``MetricSource`` interface: where a check's numbers come from, and how reading fails.

A source answers one query with one number (``value``) or raises a ``SourceError`` whose
``kind`` says what went wrong, so the judge that gets the reading can tell "Prometheus is
down" from "the query is wrong" from "there is no data yet". The kinds are plain strings
because a reading is recorded with the tick that used it (the store keeps it as JSON) and
judged by the pure analysis engine, which imports no source:

============  ================================================================  ===========
kind          what happened                                                      verdict
============  ================================================================  ===========
unavailable   the server could not be reached, timed out, or answered 5xx         ERROR
query_error   the server refused the query (a PromQL syntax or type error)        ERROR
bad_response  the answer was not what the API promises (not JSON, a range         ERROR
              vector, an unknown result type, a 4xx other than 400/422)
many_series   more than one series answered a query that must give one number     ERROR
empty         no series answered (no data yet, or a selector that matches none)  INCONCLUSIVE
nan           the one value is NaN or infinite (0/0 before any traffic)          INCONCLUSIVE
============  ================================================================  ===========

(The verdicts are the judges' own: ``rayrollout.analysis.judges.promql.ERROR_VERDICTS``.)
Whatever the kind, a reading that failed is never evidence against the candidate.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from rayrollout.errors import RolloutError

ERROR_KINDS = ("unavailable", "query_error", "bad_response", "many_series", "empty", "nan")


class SourceError(RolloutError):
    """A query got no usable number; ``kind`` is one of ``ERROR_KINDS``."""

    code = "source_error"
    kind = "bad_response"

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            if kind not in ERROR_KINDS:
                raise ValueError(f"unknown source error kind {kind!r}; known: {ERROR_KINDS}")
            self.kind = kind


class SourceUnavailable(SourceError):
    """The server could not be reached, did not answer in time, or answered 5xx."""

    kind = "unavailable"


class QueryFailed(SourceError):
    """The server refused the query (HTTP 400/422 with ``status: error``)."""

    kind = "query_error"


class BadResponse(SourceError):
    """The answer does not follow the query API (not JSON, an unexpected type)."""

    kind = "bad_response"


class TooManySeries(SourceError):
    """More than one series answered; the query must aggregate to one (``sum(...)``)."""

    kind = "many_series"


class EmptyResult(SourceError):
    """No series answered the query."""

    kind = "empty"


class NotANumber(SourceError):
    """The one value is NaN or infinite."""

    kind = "nan"


@runtime_checkable
class MetricSource(Protocol):
    """Answers a query with one finite number.

    ``at`` is the evaluation time (seconds since the epoch; None: the server's now). A source
    blocks for at most its own timeout, then raises ``SourceUnavailable``; every failure is a
    ``SourceError``, never another exception. Implementations: ``PromQLSource`` (Prometheus'
    HTTP API) and ``FakeSource`` (scripted, for tests)."""

    @property
    def where(self) -> str:
        """Where the numbers come from, as shown in reasons (``http://host:port``)."""
        ...

    def value(self, query: str, at: float | None = None) -> float:
        """The query's one value at ``at``; a ``SourceError`` when there is none."""
        ...
