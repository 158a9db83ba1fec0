"""``LogNotifier``: a warning in the controller's log for every event (the default)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("rayrollout.notify")


class LogNotifier:
    def notify(self, event: dict[str, Any]) -> None:
        log.warning("%s: %s", event.get("model"), event.get("message"))
