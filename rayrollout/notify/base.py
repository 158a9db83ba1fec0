"""The ``Notifier`` interface."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Protocol


class Notifier(Protocol):
    """Tells people about one event (``{"t", "model", "rollout", "phase", "epoch", "message"}``).

    ``notify`` returns at once; it may hand back a ``Future`` of the delivery (tests wait on
    it), and it never raises for a delivery failure."""

    def notify(self, event: dict[str, Any]) -> Future[None] | None: ...
