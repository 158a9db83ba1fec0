"""What the router needs to pass a request through to an app that speaks its own HTTP. Pure.

* ``Forward``: one request as it goes to the version (method, path under the model's prefix,
  query, headers, body) and ``Answer``: the version's answer as it comes back.
* ``forward_headers`` / ``answer_headers``: the headers that travel, without the hop-by-hop
  ones (RFC 9110 7.6.1) and without the length, which the body sets again.
* ``Extractor``: the prediction the judges need, read from a JSON answer by a JSON pointer
  (RFC 6901) or a user's function; a label becomes its index in the version's ``labels``.
  Anything that does not give a finite number is no prediction (NaN): the request still counts
  for errors and latency, and nothing the app answers can fail the router.
* ``compare_predictions``: a shadow's prediction against the primary's: equality for labels,
  a relative tolerance for numbers.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from rayrollout.imports import import_object

log = logging.getLogger("rayrollout.router")

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
})


class Forward(NamedTuple):
    method: str
    path: str  # under the model's prefix, starting with "/"
    query: str  # the raw query string, without "?"
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Answer(NamedTuple):
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def forward_headers(headers: Sequence[tuple[str, str]], drop: Sequence[str] = ()
                    ) -> tuple[tuple[str, str], ...]:
    """The request headers that go on to the version (``drop``: the router's own, such as the
    credential of the admin API or the pin header, never reach the app)."""
    skip = HOP_BY_HOP | {d.lower() for d in drop}
    return tuple((k, v) for k, v in headers if k.lower() not in skip)


def answer_headers(headers: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in headers if k.lower() not in HOP_BY_HOP)


def _pointer(doc: Any, pointer: str) -> Any:
    """RFC 6901: ``""`` is the whole document; ``~1`` is ``/`` and ``~0`` is ``~``."""
    if pointer == "":
        return doc
    for raw in pointer[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict):
            if part not in doc:
                return None
            doc = doc[part]
        elif isinstance(doc, list):
            if not part.isdigit() or int(part) >= len(doc):
                return None
            doc = doc[int(part)]
        else:
            return None
    return doc


class Extractor:
    """Reads one version's prediction from its answers (``spec``: a ``PredictionSpec`` as a
    dict: ``pointer`` or ``function``, and ``labels``)."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.pointer: str | None = spec.get("pointer")
        fn = spec.get("function")
        self.function: Callable[[Any], Any] | None = import_object(fn) if fn else None
        self.labels = {str(label): i for i, label in enumerate(spec.get("labels") or ())}

    def __call__(self, body: bytes) -> float:
        try:
            doc = json.loads(body)
            value = self.function(doc) if self.function is not None else _pointer(
                doc, self.pointer or "")
        except Exception as e:  # not JSON, or the user's function failed: no prediction
            log.debug("no prediction in the answer: %s: %s", type(e).__name__, e)
            return math.nan
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, int | float):
            return float(value) if math.isfinite(value) else math.nan
        if isinstance(value, str) and value in self.labels:
            return float(self.labels[value])
        return math.nan


def compare_predictions(primary: float, shadow: float, task: str, rtol: float
                        ) -> tuple[float, float]:
    """``(disagree, abs_diff)`` of two predictions; a missing one disagrees."""
    if math.isnan(primary) or math.isnan(shadow):
        return 1.0, math.nan
    diff = abs(primary - shadow)
    if task == "classification":
        return float(primary != shadow), diff
    return float(diff > rtol * max(abs(primary), 1e-12)), diff
