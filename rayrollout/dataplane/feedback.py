"""Join labels that come back later to the requests that were served. Pure code.

The router remembers the last ``window`` served requests (request id -> version, routing
weight, predicted class and its probability, epoch). A label for a remembered request becomes a
``LabelledEvent`` for the accuracy judges; a label for an unknown or forgotten id is counted.
Labels are matched on the router replica that served the request (one replica by default).

Labels decide rollouts, so who may label what is fixed here:

* The first label of a request claims it for the credential that sent it. The same credential
  may send it again (``duplicate``, a no-op) or correct it (``corrected``) while the label has
  not yet been collected for the judges; once judged it cannot be taken back (``late``).
  Another credential's label for it is ``refused``.
* Ids are unguessable when the router makes them (``new_request_id``). An id a client chose
  (``x-request-id``) lives in its own namespace (``client:<id>``), so it can never stand for a
  router-made id; a client id served twice within the window is ``ambiguous`` and neither
  request takes a label (a client that reuses another's id can drop that label, never steer
  it onto its own prediction).
"""

from __future__ import annotations

import math
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rayrollout._compat import StrEnum
from rayrollout.dataplane.events import LabelledEvent
from rayrollout.dataplane.protocol import loads_json
from rayrollout.dataplane.tensors import short
from rayrollout.errors import BadRequest

MAX_ITEMS = 10_000
MAX_CLIENT_ID_CHARS = 128
CLIENT_PREFIX = "client:"
MAX_ID_CHARS = MAX_CLIENT_ID_CHARS + len(CLIENT_PREFIX)  # longer ids can match nothing


def new_request_id() -> str:
    """A router-made request id: 128 random bits, so a label can only be sent by someone who
    saw the response."""
    return secrets.token_hex(16)


def client_request_id(given: str | None) -> str | None:
    """The namespaced id for a client's ``x-request-id`` (None when it sent none); 400 for an
    id that is empty, too long or not printable ASCII without spaces."""
    if given is None:
        return None
    if not 0 < len(given) <= MAX_CLIENT_ID_CHARS or not all("!" <= c <= "~" for c in given):
        raise BadRequest(f"header x-request-id={short(given)} must be 1 to "
                         f"{MAX_CLIENT_ID_CHARS} printable ASCII characters without spaces")
    return CLIENT_PREFIX + given


class LabelResult(StrEnum):
    MATCHED = "matched"
    CORRECTED = "corrected"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"
    REFUSED = "refused"
    LATE = "late"
    AMBIGUOUS = "ambiguous"


@dataclass(slots=True)  # up to ``window`` of them live in the router
class _Served:
    t: float
    version: str
    weight: float
    pred: float
    prob: float
    epoch: int
    randomised: bool
    ambiguous: bool = False
    labeller: str | None = None
    label: float | None = None
    event: LabelledEvent | None = None

    def labelled(self, label: float) -> LabelledEvent:
        return LabelledEvent(self.t, self.version, self.weight, bool(self.pred == label),
                             self.prob, self.epoch, self.randomised)


# (the event to replace, its replacement) -> whether it was still pending (not yet judged)
Relabel = Callable[[LabelledEvent, LabelledEvent], bool]


class FeedbackJoin:
    def __init__(self, window: int) -> None:
        self.window = window
        self._served: OrderedDict[str, _Served] = OrderedDict()

    def served(self, rid: str, t: float, version: str, weight: float, pred: float, prob: float,
               epoch: int, randomised: bool) -> None:
        if self.window <= 0:
            return
        old = self._served.get(rid)
        if old is not None:  # only a client id can come twice: neither request is joinable
            old.ambiguous = True
            return
        self._served[rid] = _Served(t, version, weight, pred, prob, epoch, randomised)
        if len(self._served) > self.window:
            self._served.popitem(last=False)

    def label(self, rid: str, label: float, who: str, relabel: Relabel
              ) -> tuple[LabelResult, LabelledEvent | None]:
        """What a label from credential ``who`` does, and the new event for the judges (only
        for ``matched``: a correction replaces its pending event through ``relabel``)."""
        rec = self._served.get(rid)
        if rec is None:
            return LabelResult.UNKNOWN, None
        if rec.ambiguous:
            return LabelResult.AMBIGUOUS, None
        if rec.labeller is None:
            rec.labeller, rec.label, rec.event = who, label, rec.labelled(label)
            return LabelResult.MATCHED, rec.event
        if rec.labeller != who:
            return LabelResult.REFUSED, None
        if rec.label == label:
            return LabelResult.DUPLICATE, None
        assert rec.event is not None
        new = rec.labelled(label)
        if not relabel(rec.event, new):
            return LabelResult.LATE, None
        rec.label, rec.event = label, new
        return LabelResult.CORRECTED, None


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
