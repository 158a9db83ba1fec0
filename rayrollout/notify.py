"""The ``Notifier`` plug-in point: tell people what a rollout did. Log and webhook built in.

Notifiers never block the controller: a webhook is posted from a small thread pool with a short
timeout, and a failure is logged, never raised. An unknown kind is a validation error.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, Protocol

import httpx
from pydantic import Field

from rayrollout.config import Strict

log = logging.getLogger("rayrollout.notify")


class NotifierSpec(Strict):
    kind: Literal["log", "webhook"]
    url: str | None = Field(None, pattern=r"^https?://")
    timeout_s: float = Field(2.0, gt=0, le=30)
    headers: dict[str, str] = Field(default_factory=dict)


class Notifier(Protocol):
    def notify(self, event: dict[str, Any]) -> Future[None] | None: ...


class LogNotifier:
    def notify(self, event: dict[str, Any]) -> None:
        log.warning("%s: %s", event.get("model"), event.get("message"))


class WebhookNotifier:
    """POSTs the event as JSON to ``url``."""

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


def make_notifier(spec: NotifierSpec) -> Notifier:
    if spec.kind == "webhook":
        if not spec.url:
            raise ValueError("notifiers: kind 'webhook' needs a url")
        return WebhookNotifier(spec.url, spec.timeout_s, spec.headers)
    return LogNotifier()
