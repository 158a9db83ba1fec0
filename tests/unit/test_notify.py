"""Notifiers: a webhook reaches a real local HTTP server; bad specs fail validation."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from pydantic import ValidationError

from rayrollout.notify import LogNotifier, NotifierSpec, WebhookNotifier, make_notifier


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


def test_webhook_posts_the_event(hook: Hook) -> None:
    n = make_notifier(NotifierSpec(kind="webhook", url=hook.url + "/rollouts"))
    assert isinstance(n, WebhookNotifier)
    fut = n.notify({"model": "digits", "message": "rolled back"})
    assert fut is not None
    fut.result(timeout=10)
    assert hook.received == [{"model": "digits", "message": "rolled back"}]


def test_a_failing_webhook_is_logged_not_raised(hook: Hook, caplog: pytest.LogCaptureFixture
                                                ) -> None:
    fut = WebhookNotifier(hook.url + "/broken").notify({"message": "x"})
    fut.result(timeout=10)  # no exception
    assert "webhook" in caplog.text and "500" in caplog.text


def test_a_failing_webhook_logs_its_host_not_its_secrets(hook: Hook,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    """A webhook URL often carries a secret (a Slack path, a token in the query, user:pass):
    the failure log names the host and the status, never the URL's path, query or password."""
    port = hook.url.rsplit(":", 1)[1]
    url = f"http://bot:pa55word@127.0.0.1:{port}/broken/T0KEN-PATH?token=s3cret"
    WebhookNotifier(url).notify({"message": "x"}).result(timeout=10)
    assert f"127.0.0.1:{port}" in caplog.text and "500" in caplog.text
    for secret in ("pa55word", "T0KEN-PATH", "s3cret", "bot:"):
        assert secret not in caplog.text
    WebhookNotifier("http://127.0.0.1:1/x?token=s3cret", timeout_s=1.0).notify({}).result(
        timeout=10)  # nothing listens: a connection error, logged without the query
    assert "ConnectError" in caplog.text and "s3cret" not in caplog.text


def test_specs() -> None:
    assert isinstance(make_notifier(NotifierSpec(kind="log")), LogNotifier)
    with pytest.raises(ValidationError, match="kind"):
        NotifierSpec.model_validate({"kind": "pager"})
    with pytest.raises(ValidationError, match="url"):
        NotifierSpec.model_validate({"kind": "webhook", "url": "ftp://x"})
    with pytest.raises(ValueError, match="needs a url"):
        make_notifier(NotifierSpec(kind="webhook"))
