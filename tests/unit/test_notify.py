"""Notifiers: a webhook reaches a real local HTTP server; bad specs fail validation."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from pydantic import ValidationError

from rayrollout.errors import ConfigError
from rayrollout.notify import LogNotifier, NotifierSpec, WebhookNotifier, make_notifier
from rayrollout.notify.webhook import HOSTS_ENV, HostPolicy

LOCAL = HostPolicy.from_env({HOSTS_ENV: "127.0.0.1"})  # the test's hook, listed by name


class Hook:
    def __init__(self) -> None:
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers["content-length"])
                hook.received.append(json.loads(self.rfile.read(n)))
                self.send_response(500 if self.path.startswith("/broken") else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.server.shutdown()
    h.server.server_close()


def test_webhook_posts_the_event(hook: Hook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOSTS_ENV, "127.0.0.1")
    n = make_notifier(NotifierSpec(kind="webhook", url=hook.url + "/rollouts"))
    assert isinstance(n, WebhookNotifier)
    fut = n.notify({"model": "digits", "message": "rolled back"})
    assert fut is not None
    fut.result(timeout=10)
    assert hook.received == [{"model": "digits", "message": "rolled back"}]


def test_a_failing_webhook_is_logged_not_raised(hook: Hook, caplog: pytest.LogCaptureFixture
                                                ) -> None:
    fut = WebhookNotifier(hook.url + "/broken", policy=LOCAL).notify({"message": "x"})
    fut.result(timeout=10)  # no exception
    assert "webhook" in caplog.text and "500" in caplog.text


def test_a_failing_webhook_logs_its_host_not_its_secrets(hook: Hook,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    """A webhook URL often carries a secret (a Slack path, a token in the query, user:pass):
    the failure log names the host and the status, never the URL's path, query or password."""
    port = hook.url.rsplit(":", 1)[1]
    url = f"http://bot:pa55word@127.0.0.1:{port}/broken/T0KEN-PATH?token=s3cret"
    WebhookNotifier(url, policy=LOCAL).notify({"message": "x"}).result(timeout=10)
    assert f"127.0.0.1:{port}" in caplog.text and "500" in caplog.text
    for secret in ("pa55word", "T0KEN-PATH", "s3cret", "bot:"):
        assert secret not in caplog.text
    WebhookNotifier("http://127.0.0.1:1/x?token=s3cret", timeout_s=1.0, policy=LOCAL).notify(
        {}).result(
        timeout=10)  # nothing listens: a connection error, logged without the query
    assert "ConnectError" in caplog.text and "s3cret" not in caplog.text


def test_specs() -> None:
    assert isinstance(make_notifier(NotifierSpec(kind="log")), LogNotifier)
    with pytest.raises(ValidationError, match="kind"):
        NotifierSpec.model_validate({"kind": "pager"})
    with pytest.raises(ValidationError, match="url"):
        NotifierSpec.model_validate({"kind": "webhook", "url": "ftp://x"})
    with pytest.raises(ValidationError, match="exactly one of url and url_env"):
        NotifierSpec.model_validate({"kind": "webhook"})


@pytest.mark.parametrize(("doc", "field"), [
    ({"url": "https://bot:pa55@hooks.example.com/x"}, "url carries a user or password"),
    ({"url": "https://h.example.com", "headers": {"Authorization": "Bearer x"}},
     "headers['Authorization'] carries a credential"),
    ({"url": "https://h.example.com", "headers": {"X-Api-Key": "k"}}, "headers['X-Api-Key']"),
    ({"url": "https://h.example.com", "headers": {"X-Note": "Basic abc"}}, "headers['X-Note']"),
    ({"url": "https://h.example.com", "headers_env": {"Authorization": "no-such var"}},
     "headers_env['Authorization']"),
    ({"url": "https://h.example.com", "url_env": "HOOK"}, "exactly one of url and url_env"),
])
def test_a_spec_holds_no_secret(doc: dict[str, object], field: str) -> None:
    """A spec is stored and shown: credentials come from the controller's environment."""
    with pytest.raises(ValidationError, match=re.escape(field)):
        NotifierSpec.model_validate({"kind": "webhook", **doc})


def test_secrets_come_from_the_environment_and_are_never_shown(hook: Hook) -> None:
    spec = NotifierSpec(kind="webhook", url_env="HOOK_URL",
                        headers_env={"Authorization": "HOOK_AUTH"}, headers={"X-Team": "ml"})
    env = {"HOOK_URL": hook.url + "/T0KEN-PATH", "HOOK_AUTH": "Bearer s3cret",
           HOSTS_ENV: "127.0.0.1"}
    n = WebhookNotifier.from_spec(spec, env)
    assert n.url.endswith("/T0KEN-PATH") and n.headers == {"X-Team": "ml",
                                                            "Authorization": "Bearer s3cret"}
    n.notify({"message": "x"}).result(timeout=10)
    assert hook.received == [{"message": "x"}]
    for missing, names in (({"HOOK_AUTH": "x"}, "url_env: HOOK_URL"),
                           ({"HOOK_URL": hook.url}, "headers_env['Authorization']: HOOK_AUTH")):
        with pytest.raises(ConfigError, match=re.escape(names)):
            WebhookNotifier.from_spec(spec, {**missing, HOSTS_ENV: "127.0.0.1"})
    shown = NotifierSpec(kind="webhook", url="https://hooks.example.com/services/T0KEN").shown()
    assert shown["url"] == "https://hooks.example.com/..."


@pytest.mark.parametrize(("hosts", "url", "named"), [
    (None, "https://hooks.example.com/x", True),  # unset: any host may be named
    ("hooks.example.com", "https://hooks.example.com/x", True),
    ("hooks.example.com", "https://evil.example.net/x", False),
    ("*.example.com", "https://a.b.example.com/x", True),
    ("*.example.com", "https://example.com.evil.net/x", False),
    ("*", "https://anything.example.org/x", True),
])
def test_webhook_hosts_are_the_operators_choice(hosts: str | None, url: str, named: bool
                                                ) -> None:
    env = {} if hosts is None else {HOSTS_ENV: hosts}
    spec = NotifierSpec(kind="webhook", url=url)
    if named:
        assert WebhookNotifier.from_spec(spec, env).host == url.split("/")[2]
    else:
        with pytest.raises(ConfigError, match=f"is not in {HOSTS_ENV}"):
            WebhookNotifier.from_spec(spec, env)


@pytest.mark.parametrize("host", ["169.254.169.254", "127.0.0.1", "10.1.2.3", "[::1]",
                                  "localhost"])
def test_a_host_that_is_not_public_is_refused_unless_listed(
    host: str, hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    """No blind SSRF: a metadata service, loopback or private address is not reached unless
    the operator listed that very host; the refusal is logged without the URL's path."""
    for hosts in (None, "*"):
        n = WebhookNotifier(f"http://{host}:9/latest/meta-data/S3CRET",
                            policy=HostPolicy.from_env({} if hosts is None else {HOSTS_ENV: hosts}))
        n.notify({"message": "x"}).result(timeout=10)
    assert caplog.text.count("refused") == 2 and "S3CRET" not in caplog.text
    assert HostPolicy.from_env({HOSTS_ENV: host.strip("[]")}).addresses_ok(host.strip("[]"), 9)
