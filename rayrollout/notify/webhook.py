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
        except httpx.HTTPStatusError as e:
            log.warning("webhook to %s failed: HTTP %d", where(self.url), e.response.status_code)
        except httpx.HTTPError as e:  # its text holds the URL: name the error's kind only
            log.warning("webhook to %s failed: %s", where(self.url), type(e).__name__)


def where(url: str) -> str:
    """``scheme://host[:port]`` of a URL, for logs: its path, query and password often hold
    a secret (a chat hook's path, a token)."""
    try:
        u = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(an invalid URL)"
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.host}{port}"
