"""``WebhookNotifier``: POSTs each event as JSON to a URL, off the controller's thread.

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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from rayrollout.errors import ConfigError
from rayrollout.spec import NotifierSpec

log = logging.getLogger("rayrollout.notify")

HOSTS_ENV = "RAYROLLOUT_WEBHOOK_HOSTS"


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
    """POSTs the event as JSON to ``url``; a failure is logged, never raised."""

    _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rayrollout-webhook")

    def __init__(self, url: str, timeout_s: float = 2.0, headers: dict[str, str] | None = None,
                 policy: HostPolicy | None = None) -> None:
        self.url, self.timeout_s, self.headers = url, timeout_s, dict(headers or {})
        self.policy = policy or HostPolicy.from_env()
        u = httpx.URL(url)
        self.host, self.port = u.host, u.port or (443 if u.scheme == "https" else 80)
        if not self.policy.named(self.host):
            raise ConfigError(f"webhook host {self.host!r} is not in {HOSTS_ENV} where the "
                              "controller runs")

    @classmethod
    def from_spec(cls, spec: NotifierSpec, environ: Mapping[str, str] | None = None
                  ) -> WebhookNotifier:
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
            return cls(url, spec.timeout_s, headers, HostPolicy.from_env(env))
        except httpx.InvalidURL:
            raise ConfigError("the webhook URL is not a valid URL") from None

    def notify(self, event: dict[str, Any]) -> Future[None]:
        return self._pool.submit(self._post, event)

    def _post(self, event: dict[str, Any]) -> None:
        if not self.policy.addresses_ok(self.host, self.port):
            log.warning("webhook to %s refused: it does not resolve to public addresses only "
                        "(list the host in %s to allow it)", where(self.url), HOSTS_ENV)
            return
        try:
            r = httpx.post(self.url, json=event, timeout=self.timeout_s, headers=self.headers,
                           follow_redirects=False)
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
