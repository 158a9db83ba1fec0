"""The ``Notifier`` plug-in point: tell people what a rollout did.

One interface, one implementation per file, an explicit registry:

* ``log`` — ``LogNotifier`` (``rayrollout.notify.log``), the default;
* ``webhook`` — ``WebhookNotifier`` (``rayrollout.notify.webhook``), a JSON POST to a host the
  operator allows (``RAYROLLOUT_WEBHOOK_HOSTS``);
* ``slack`` — ``SlackNotifier`` (``rayrollout.notify.slack``), the same POST with a Slack
  incoming-webhook message (``text`` and ``blocks``) as its body;
* ``RecordingNotifier`` (``rayrollout.notify.fake``) keeps what it was told, for tests.

Notifiers never block the controller: a webhook's deliveries are jobs of a background
``Sender`` (``rayrollout.notify.sender``) with a bounded queue (a full one drops the event,
counted and logged) and a short timeout per attempt; a failure that may pass is retried with
exponential backoff and jitter, a bounded number of times, and every failure is logged, never
raised. An unknown kind is a validation error of the spec (``NotifierSpec.kind``), never a
silent default.
"""

from __future__ import annotations

from collections.abc import Callable

from rayrollout.notify.base import Notifier
from rayrollout.notify.fake import RecordingNotifier
from rayrollout.notify.log import LogNotifier
from rayrollout.notify.sender import Sender
from rayrollout.notify.slack import SlackNotifier
from rayrollout.notify.webhook import WebhookNotifier
from rayrollout.spec import NotifierSpec


def _log(spec: NotifierSpec) -> Notifier:
    return LogNotifier()


def _webhook(spec: NotifierSpec) -> Notifier:
    return WebhookNotifier.from_spec(spec)


def _slack(spec: NotifierSpec) -> Notifier:
    return SlackNotifier.from_spec(spec)


NOTIFIERS: dict[str, Callable[[NotifierSpec], Notifier]] = {
    "log": _log, "webhook": _webhook, "slack": _slack}


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
    "Sender",
    "SlackNotifier",
    "WebhookNotifier",
    "make_notifier",
]
