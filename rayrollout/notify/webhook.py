"""``WebhookNotifier``: POSTs each event as JSON to a URL, off the controller's thread."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx

log = logging.getLogger("rayrollout.notify")


class WebhookNotifier:
    """POSTs the event as JSON to ``url``; a failure is logged, never raised."""

    _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rayrollout-webhook")

    def __init__(self, url: str, timeout_s: float = 2.0, headers: dict[str, str] | None = None):
        self.url, self.timeout_s, self.headers = url, timeout_s, dict(headers or {})

    def notify(self, event: dict[str, Any]) -> Future[None]:
        return self._pool.submit(self._post, event)

    def _post(self, event: dict[str, Any]) -> None:
        try:
            r = httpx.post(self.url, json=event, timeout=self.timeout_s, headers=self.headers)
            r.raise_for_status()
        except httpx.HTTPError as e:
            log.warning("webhook %s failed: %s", self.url, e)
