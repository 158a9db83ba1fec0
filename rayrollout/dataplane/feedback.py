"""Join labels that come back later to the requests that were served. Pure code.

The router remembers the last ``window`` served requests (request id -> version, routing
weight, predicted class and its probability, epoch). A label for a remembered request becomes a
``LabelledEvent`` for the accuracy judges; a label for an unknown or forgotten id is counted.
Labels are matched on the router replica that served the request (one replica by default).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from rayrollout.dataplane.events import LabelledEvent
from rayrollout.dataplane.protocol import loads_json
from rayrollout.dataplane.tensors import short
from rayrollout.errors import BadRequest

MAX_ITEMS = 10_000
MAX_ID_CHARS = 256  # served ids are at most 128 characters; longer ones can match nothing


class FeedbackJoin:
    def __init__(self, window: int) -> None:
        self.window = window
        self._served: OrderedDict[str, tuple[Any, ...]] = OrderedDict()

    def served(self, rid: str, t: float, version: str, weight: float, pred: float, prob: float,
               epoch: int, randomised: bool) -> None:
        if self.window <= 0:
            return
        self._served[rid] = (t, version, weight, pred, prob, epoch, randomised)
        if len(self._served) > self.window:
            self._served.popitem(last=False)

    def label(self, rid: str, label: float) -> LabelledEvent | None:
        rec = self._served.pop(rid, None)
        if rec is None:
            return None
        t, version, weight, pred, prob, epoch, randomised = rec
        return LabelledEvent(t, version, weight, bool(pred == label), prob, epoch, randomised)


def parse_feedback(body: bytes) -> list[tuple[str, float]]:
    """``[(request_id, label), ...]``; a malformed body raises ``BadRequest`` naming the item."""
    doc = loads_json(body)
    items = doc.get("feedback", [doc]) if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise BadRequest("body must be {'request_id': ..., 'label': ...} or {'feedback': [...]}")
    if len(items) > MAX_ITEMS:
        raise BadRequest(f"feedback holds {len(items)} items; at most {MAX_ITEMS} per request")
    return [_item(i, it) for i, it in enumerate(items)]


def _item(i: int, it: Any) -> tuple[str, float]:
    if not isinstance(it, dict):
        raise BadRequest(f"feedback[{i}] must be an object")
    rid, label = it.get("request_id"), it.get("label")
    if not isinstance(rid, str) or not 0 < len(rid) <= MAX_ID_CHARS:
        raise BadRequest(f"feedback[{i}].request_id={short(rid)} must be a non-empty string of "
                         f"at most {MAX_ID_CHARS} characters")
    if isinstance(label, bool) or not isinstance(label, int | float):
        raise BadRequest(f"feedback[{i}].label={short(label)} must be a number")
    try:
        value = float(label)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise BadRequest(f"feedback[{i}].label={short(label)} must be a finite number")
    return rid, value
