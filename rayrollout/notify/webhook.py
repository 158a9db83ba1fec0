"""``WebhookNotifier``: POSTs each event as JSON to a URL, off the controller's thread.

Delivery goes through a ``Sender`` (``rayrollout.notify.sender``; one shared by every notifier
of the process unless one is given): ``notify`` returns at once, a failure that may pass (no
connection, a timeout, HTTP 408, 429 or 5xx) is retried with exponential backoff and jitter up
to ``max_attempts`` times in all, any other failure (another 4xx, a redirect) is not; every
failed attempt is logged with the host and the status only, and a full queue drops the event
(counted and logged). ``payload`` makes the body: the event itself here, a Slack message in
``SlackNotifier``.

Which hosts a webhook may reach is the operator's choice, made where the controller runs,
never the spec's (a spec can come over HTTP): ``RAYROLLOUT_WEBHOOK_HOSTS`` lists them,
comma-separated, as exact host names or addresses, ``*.example.com`` (any subdomain) or ``*``
(any host). Unset, any host may be named. Either way a host that resolves to an address that
is not public (loopback, private, link-local such as a cloud metadata service, multicast,
reserved) is refused unless that exact host is listed. The name is checked when the notifier
is made (a rollout's start fails, naming the notifier) and the addresses before every POST;
redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import httpx

from rayrollout.errors import ConfigError
from rayrollout.notify.sender import Outcome, Sender
from rayrollout.spec import NotifierSpec

log = logging.getLogger("rayrollout.notify")

HOSTS_ENV = "RAYROLLOUT_WEBHOOK_HOSTS"
SENDER = Sender()  # the process's notifications: two worker threads, at most 256 pending


@dataclass(frozen=True)
class HostPolicy:
    """Exact hosts (which may be private), ``*.suffix`` patterns and ``*`` (public only)."""

    exact: frozenset[str]
    suffixes: tuple[str, ...]
    any_host: bool

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HostPolicy:
        env = os.environ if environ is None else environ
        raw = env.get(HOSTS_ENV)
        if raw is None:
            return cls(frozenset(), (), True)
        items = [h.strip().lower() for h in raw.split(",") if h.strip()]
        return cls(frozenset(h for h in items if "*" not in h),
                   tuple(h[1:] for h in items if h.startswith("*.")), "*" in items)

    def named(self, host: str) -> bool:
        h = host.lower()
        return h in self.exact or self.any_host or any(h.endswith(s) for s in self.suffixes)

    def addresses_ok(self, host: str, port: int) -> bool:
        """Whether every address ``host`` resolves to may be reached."""
        if host.lower() in self.exact:
            return True
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return False
        return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_global for i in infos)


class WebhookNotifier:
    """POSTs the event as JSON to ``url`` in the background; a failure is logged, never raised.
    """

    label = "webhook"  # how logs name this notifier's deliveries

    def __init__(self, url: str, timeout_s: float = 2.0, headers: dict[str, str] | None = None,
                 policy: HostPolicy | None = None, max_attempts: int = 4,
                 backoff_s: float = 0.5, sender: Sender | None = None) -> None:
        self.url, self.timeout_s, self.headers = url, timeout_s, dict(headers or {})
        self.max_attempts, self.backoff_s = max_attempts, backoff_s
        self.sender = sender or SENDER
        self.policy = policy or HostPolicy.from_env()
        u = httpx.URL(url)
        self.host, self.port = u.host, u.port or (443 if u.scheme == "https" else 80)
        if not self.policy.named(self.host):
            raise ConfigError(f"webhook host {self.host!r} is not in {HOSTS_ENV} where the "
                              "controller runs")

    @classmethod
    def from_spec(cls, spec: NotifierSpec, environ: Mapping[str, str] | None = None,
                  sender: Sender | None = None) -> WebhookNotifier:
        """The notifier a spec describes, its URL and credential headers read from
        ``environ`` (the controller's environment); ``ConfigError`` names what is missing."""
        env = os.environ if environ is None else environ
        url = spec.url
        if spec.url_env is not None:
            url = env.get(spec.url_env)
            if not url or not url.startswith(("http://", "https://")):
                raise ConfigError(f"url_env: {spec.url_env} is not set to an http(s) URL where "
                                  "the controller runs")
        headers = dict(spec.headers)
        for name, var in spec.headers_env.items():
            if var not in env:
                raise ConfigError(f"headers_env[{name!r}]: {var} is not set where the "
                                  "controller runs")
            headers[name] = env[var]
        assert url is not None  # NotifierSpec: a webhook has url or url_env
        try:
            return cls(url, spec.timeout_s, headers, HostPolicy.from_env(env),
                       spec.max_attempts, spec.backoff_s, sender)
        except httpx.InvalidURL:
            raise ConfigError("the webhook URL is not a valid URL") from None

    def payload(self, event: dict[str, Any]) -> dict[str, Any]:
        """The JSON body posted for ``event``: the event itself."""
        return dict(event)

    def notify(self, event: dict[str, Any]) -> Future[None]:
        body = self.payload(event)
        return self.sender.submit(lambda k: self._attempt(body, k),
                                  f"{self.label} {where(self.url)}", self.max_attempts,
                                  self.backoff_s)

    def _attempt(self, body: dict[str, Any], k: int) -> Outcome:
        """One POST; logs a failure (host and status only) and says whether to try again."""
        if not self.policy.addresses_ok(self.host, self.port):
            log.warning("%s to %s refused: it does not resolve to public addresses only "
                        "(list the host in %s to allow it)", self.label, where(self.url),
                        HOSTS_ENV)
            return Outcome.GIVE_UP
        n = f"attempt {k} of {self.max_attempts}"
        try:
            r = httpx.post(self.url, json=body, timeout=self.timeout_s, headers=self.headers,
                           follow_redirects=False)
        except httpx.TransportError as e:  # its text holds the URL: name the error's kind only
            log.warning("%s to %s failed: %s (%s)", self.label, where(self.url),
                        type(e).__name__, n)
            return Outcome.RETRY
        except httpx.HTTPError as e:
            log.warning("%s to %s failed: %s (%s)", self.label, where(self.url),
                        type(e).__name__, n)
            return Outcome.GIVE_UP
        if r.is_success:
            return Outcome.DONE
        log.warning("%s to %s failed: HTTP %d (%s)", self.label, where(self.url),
                    r.status_code, n)
        return Outcome.RETRY if r.status_code in (408, 429) or r.status_code >= 500 \
            else Outcome.GIVE_UP


def where(url: str) -> str:
    """``scheme://host[:port]`` of a URL, for logs: its path, query and password often hold
    a secret (a chat hook's path, a token)."""
    try:
        u = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(an invalid URL)"
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.host}{port}"
