"""The ``Notifier`` plug-in point: tell people what a rollout did.

One interface, one implementation per file, an explicit registry:

* ``log`` — ``LogNotifier`` (``rayrollout.notify.log``), the default;
* ``webhook`` — ``WebhookNotifier`` (``rayrollout.notify.webhook``), a JSON POST to a host the
  operator allows (``RAYROLLOUT_WEBHOOK_HOSTS``);
* ``RecordingNotifier`` (``rayrollout.notify.fake``) keeps what it was told, for tests.

Notifiers never block the controller: a webhook is posted from a small thread pool with a short
timeout, and a failure is logged, never raised. An unknown kind is a validation error of the
spec (``NotifierSpec.kind``), never a silent default.
"""

from __future__ import annotations

from collections.abc import Callable

from rayrollout.notify.base import Notifier
from rayrollout.notify.fake import RecordingNotifier
from rayrollout.notify.log import LogNotifier
from rayrollout.notify.webhook import WebhookNotifier
from rayrollout.spec import NotifierSpec


def _log(spec: NotifierSpec) -> Notifier:
    return LogNotifier()


def _webhook(spec: NotifierSpec) -> Notifier:
    return WebhookNotifier.from_spec(spec)


NOTIFIERS: dict[str, Callable[[NotifierSpec], Notifier]] = {"log": _log, "webhook": _webhook}


def make_notifier(spec: NotifierSpec) -> Notifier:
    """The notifier a spec names; ``ValueError`` for a kind that is not registered."""
    factory = NOTIFIERS.get(spec.kind)
    if factory is None:
        raise ValueError(f"unknown notifier kind {spec.kind!r}; known: {sorted(NOTIFIERS)}")
    return factory(spec)


__all__ = [
    "NOTIFIERS",
    "LogNotifier",
    "Notifier",
    "NotifierSpec",
    "RecordingNotifier",
    "WebhookNotifier",
    "make_notifier",
]
