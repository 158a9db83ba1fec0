"""``SlackNotifier``: a webhook whose body is a Slack incoming-webhook message.

The message has ``text`` (the fallback shown in notifications and by clients without blocks)
and ``blocks``: a ``section`` with the model, the phase and the message in ``mrkdwn``, and a
``context`` line with the rollout, the routing epoch and the time (UTC). Any service that takes
Slack's format (Mattermost, Rocket.Chat, Discord's ``/slack`` endpoint) takes it too.

Guarantees: the text is escaped as Slack asks (``&``, ``<``, ``>``), so a reason that holds
``<!channel>`` or a link is shown as text, never as a mention or a link; each text stays within
Slack's limit for a section (3,000 characters). Delivery, retries, the host policy and the logs
are ``WebhookNotifier``'s.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rayrollout.notify.webhook import WebhookNotifier

MAX_TEXT = 3000  # characters of a section's text block (Slack's limit)
ICONS = {
    "rolled_back": ":rotating_light:",
    "promoted": ":white_check_mark:",
    "completed": ":white_check_mark:",
    "paused": ":double_vertical_bar:",
    "awaiting_approval": ":raised_hand:",
}


def escape(text: str) -> str:
    """Text as Slack's ``mrkdwn`` shows it literally (its three control characters)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, n: int = MAX_TEXT) -> str:
    """``escape(text)``, cut to at most ``n`` characters (never inside an escape), ``…`` last."""
    out: list[str] = []
    size = 0
    for ch in text:
        e = escape(ch)
        if size + len(e) > n - 1:
            return "".join(out) + "…"
        out.append(e)
        size += len(e)
    return "".join(out)


def message(event: dict[str, Any]) -> dict[str, Any]:
    """The Slack message for one notifier event (``{"t", "model", "rollout", "phase",
    "epoch", "message"}``; missing keys are left out of it)."""
    model = str(event.get("model") or "rayrollout")
    phase = str(event.get("phase") or "")
    body = str(event.get("message") or "")
    if body.startswith(f"{model}: "):  # decide's messages start with the model: said above
        body = body[len(model) + 2:]
    icon = ICONS.get(phase, ":information_source:")
    head = f"{icon} *{fit(model, 200)}*" + (f" · {fit(phase.replace('_', ' '), 40)}" if phase
                                           else "")
    context = []
    if event.get("rollout") is not None:
        context.append(f"rollout {event['rollout']}")
    if event.get("epoch") is not None:
        context.append(f"epoch {event['epoch']}")
    if isinstance(event.get("t"), int | float):
        when = dt.datetime.fromtimestamp(float(event["t"]), tz=dt.timezone.utc)
        context.append(when.strftime("%Y-%m-%d %H:%M:%S UTC"))
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {
        "type": "mrkdwn", "text": f"{head}\n{fit(body, MAX_TEXT - len(head) - 1)}"}}]
    if context:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": fit("rayrollout · " + " · ".join(context))}]})
    return {"text": fit(f"{model}: {body}"), "blocks": blocks}


class SlackNotifier(WebhookNotifier):
    """POSTs each event as a Slack message (``message``) to an incoming-webhook URL."""

    label = "slack"

    def payload(self, event: dict[str, Any]) -> dict[str, Any]:
        return message(event)
