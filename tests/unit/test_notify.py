"""Notifiers: webhook and Slack deliveries reach a real local HTTP server, are retried with
backoff when it fails, never block the caller; bad specs fail validation."""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError

from rayrollout.errors import ConfigError
from rayrollout.notify import (
    LogNotifier,
    NotifierSpec,
    Sender,
    SlackNotifier,
    WebhookNotifier,
    make_notifier,
)
from rayrollout.notify.sender import Outcome, backoff
from rayrollout.notify.slack import MAX_TEXT, message
from rayrollout.notify.webhook import HOSTS_ENV, HostPolicy
from rayrollout.spec import RolloutSpec
from tests.unit.controller.helpers import spec_doc

LOCAL = HostPolicy.from_env({HOSTS_ENV: "127.0.0.1"})  # the test's hook, listed by name
FAST = 0.01  # backoff_s: retries a few milliseconds apart


class Hook:
    """A real HTTP server on loopback. ``/broken...`` always answers 500; ``/flaky<N>/...``
    answers ``status`` (503 by default) to its first N requests, then 204; ``/gone`` answers
    404; while ``gate`` is set to an unset event, every request waits on it first."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts: dict[str, int] = {}
        self.status = 503
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if hook.gate is not None:
                    hook.gate.wait(30)
                n = int(self.headers["content-length"])
                body = json.loads(self.rfile.read(n))
                with hook.lock:
                    k = hook.attempts[self.path] = hook.attempts.get(self.path, 0) + 1
                    hook.received.append(body)
                m = re.match(r"/flaky(\d+)", self.path)
                if self.path.startswith("/broken"):
                    code = 500
                elif self.path.startswith("/gone"):
                    code = 404
                elif m and k <= int(m.group(1)):
                    code = hook.status
                else:
                    code = 204
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    if h.gate is not None:
        h.gate.set()
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
    n = WebhookNotifier(hook.url + "/broken", policy=LOCAL, backoff_s=FAST)
    fut = n.notify({"message": "x"})
    fut.result(timeout=10)  # no exception
    assert "webhook" in caplog.text and "500" in caplog.text


def test_a_failing_webhook_logs_its_host_not_its_secrets(hook: Hook,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    """A webhook URL often carries a secret (a Slack path, a token in the query, user:pass):
    the failure log names the host and the status, never the URL's path, query or password."""
    port = hook.url.rsplit(":", 1)[1]
    url = f"http://bot:pa55word@127.0.0.1:{port}/broken/T0KEN-PATH?token=s3cret"
    WebhookNotifier(url, policy=LOCAL, backoff_s=FAST).notify({"message": "x"}).result(timeout=10)
    assert f"127.0.0.1:{port}" in caplog.text and "500" in caplog.text
    for secret in ("pa55word", "T0KEN-PATH", "s3cret", "bot:"):
        assert secret not in caplog.text
    WebhookNotifier("http://127.0.0.1:1/x?token=s3cret", timeout_s=1.0, policy=LOCAL,
                    backoff_s=FAST).notify({}).result(timeout=10)  # nothing listens: a connection
    assert "ConnectError" in caplog.text and "s3cret" not in caplog.text  # error, no query


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


# -- retries, backoff, the bounded queue ------------------------------------------------------


def test_a_flaky_webhook_is_retried_until_it_answers(hook: Hook,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The first two attempts get 503: the third delivers; each failure is logged with its
    attempt number, and the sender counts two retries and one delivery."""
    sender = Sender(rng=random.Random(1))
    n = WebhookNotifier(hook.url + "/flaky2/hook", policy=LOCAL, sender=sender, backoff_s=FAST)
    n.notify({"model": "digits", "message": "promoted v2"}).result(timeout=10)
    assert hook.attempts == {"/flaky2/hook": 3}
    assert hook.received == [{"model": "digits", "message": "promoted v2"}] * 3
    assert "HTTP 503 (attempt 1 of 4)" in caplog.text and "(attempt 2 of 4)" in caplog.text
    assert sender.counts() == {"submitted": 1, "delivered": 1, "failed": 0, "dropped": 0,
                               "retries": 2, "pending": 0}


@pytest.mark.parametrize("status", [429, 408, 502])
def test_statuses_that_may_pass_are_retried(hook: Hook, status: int) -> None:
    hook.status = status
    sender = Sender()
    WebhookNotifier(hook.url + "/flaky1", policy=LOCAL, sender=sender, backoff_s=FAST).notify(
        {"message": "x"}).result(timeout=10)
    assert hook.attempts == {"/flaky1": 2} and sender.delivered == 1


def test_attempts_are_bounded_and_a_lasting_failure_gives_up(
        hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    sender = Sender()
    WebhookNotifier(hook.url + "/broken", policy=LOCAL, sender=sender, max_attempts=3,
                    backoff_s=FAST).notify({"message": "x"}).result(timeout=10)
    assert hook.attempts == {"/broken": 3}
    assert sender.failed == 1 and sender.delivered == 0 and sender.retries == 2
    assert "given up after 3 attempts" in caplog.text


def test_a_failure_that_will_not_pass_is_not_retried(hook: Hook) -> None:
    """404 (a deleted hook) or another 4xx: trying again cannot help."""
    sender = Sender()
    WebhookNotifier(hook.url + "/gone", policy=LOCAL, sender=sender, backoff_s=FAST).notify(
        {"message": "x"}).result(timeout=10)
    assert hook.attempts == {"/gone": 1} and sender.failed == 1 and sender.retries == 0


def test_a_connection_error_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    sender = Sender()
    WebhookNotifier("http://127.0.0.1:1/x", timeout_s=1.0, policy=LOCAL, sender=sender,
                    max_attempts=2, backoff_s=FAST).notify({}).result(timeout=10)
    assert caplog.text.count("ConnectError") == 2 and sender.failed == 1


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for k in range(1, 12):
        d = min(30.0, 0.5 * 2 ** (k - 1))
        waits = [backoff(k, 0.5, rng) for _ in range(50)]
        assert all(d / 2 <= w <= d for w in waits)
        assert len(set(waits)) > 1  # jittered, not one fixed value
    assert backoff(3, 0.5, random.Random(3)) == backoff(3, 0.5, random.Random(3))


def test_notify_never_blocks_and_a_full_queue_drops_counted_and_logged(
        hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    """The hook hangs: ``notify`` still returns at once (the hook is released only after it
    did, so a blocking call would never return), and past ``max_pending`` events are
    dropped, counted and logged, each dropped future done at once."""
    hook.gate = threading.Event()
    sender = Sender(workers=1, max_pending=3)
    n = WebhookNotifier(hook.url + "/slow", policy=LOCAL, sender=sender, timeout_s=30,
                        backoff_s=FAST)
    futures = [n.notify({"message": f"e{i}"}) for i in range(5)]
    assert sender.dropped == 2 and sender.pending() == 3
    assert [f.done() for f in futures] == [False, False, False, True, True]
    assert "dropped" in caplog.text and "2 dropped so far" in caplog.text
    hook.gate.set()
    for f in futures:
        f.result(timeout=10)
    assert sorted(e["message"] for e in hook.received) == ["e0", "e1", "e2"]
    assert sender.counts()["delivered"] == 3


def test_a_job_that_raises_does_not_stop_the_sender() -> None:
    sender = Sender(workers=1)

    def broken(k: int) -> Outcome:
        raise RuntimeError("bug")

    sender.submit(broken, "nowhere").result(timeout=10)
    sender.submit(lambda k: Outcome.DONE, "somewhere").result(timeout=10)
    assert sender.failed == 1 and sender.delivered == 1


# -- slack -------------------------------------------------------------------------------------


def test_slack_posts_an_incoming_webhook_message(hook: Hook) -> None:
    spec = NotifierSpec(kind="slack", url_env="SLACK_HOOK")
    n = SlackNotifier.from_spec(spec, {"SLACK_HOOK": hook.url + "/flaky1/services/T0KEN",
                                       HOSTS_ENV: "127.0.0.1"}, sender=Sender())
    n.backoff_s = 0.01
    event = {"t": 1_700_000_000.0, "model": "digits", "rollout": 3, "phase": "rolled_back",
             "epoch": 7, "message": "digits: rolled back (v2 failed errors: 3.1x <!channel>)"}
    n.notify(event).result(timeout=10)
    assert hook.attempts == {"/flaky1/services/T0KEN": 2}  # retried like any webhook
    body = hook.received[-1]
    assert set(body) == {"text", "blocks"}
    assert body["text"] == "digits: rolled back (v2 failed errors: 3.1x &lt;!channel&gt;)"
    section, context = body["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"] == (":rotating_light: *digits* · rolled back\n"
                                       "rolled back (v2 failed errors: 3.1x &lt;!channel&gt;)")
    assert context == {"type": "context", "elements": [{"type": "mrkdwn", "text": (
        "rayrollout · rollout 3 · epoch 7 · 2023-11-14 22:13:20 UTC")}]}


def test_slack_text_is_escaped_and_fits_slacks_limits() -> None:
    huge = "<&>" * 5000
    msg = message({"model": "m", "phase": "paused", "message": huge})
    section = msg["blocks"][0]["text"]["text"]
    assert len(section) <= MAX_TEXT and len(msg["text"]) <= MAX_TEXT
    assert "<" not in section.split("\n", 1)[1] and ">" not in msg["text"]
    assert section.endswith("…") and not re.search(r"&[a-z]*…$", section)  # no cut escape
    assert message({"model": "m", "message": "plain"}) == {
        "text": "m: plain", "blocks": [{"type": "section", "text": {
            "type": "mrkdwn", "text": ":information_source: *m*\nplain"}}]}


def test_slack_specs() -> None:
    assert isinstance(make_notifier(NotifierSpec(kind="slack", url="https://hooks.slack.com/x")),
                      SlackNotifier)
    with pytest.raises(ValidationError, match="kind 'slack' needs exactly one of url and "
                       "url_env"):
        NotifierSpec.model_validate({"kind": "slack"})
    for field, bad in (("max_attempts", 0), ("max_attempts", 11), ("backoff_s", 0)):
        with pytest.raises(ValidationError, match=field):
            NotifierSpec.model_validate({"kind": "slack", "url": "https://h.example.com",
                                         field: bad})


def test_new_notifier_fields_at_their_default_keep_a_specs_digest() -> None:
    """A stored spec's digest says whether it already ran: fields added since must not change
    it while they are at their default (a redeployed config would start its rollout again)."""
    plain = spec_doc(notifiers=[{"kind": "webhook", "url": "https://h.example.com/x"}])
    same = spec_doc(notifiers=[{"kind": "webhook", "url": "https://h.example.com/x",
                                "max_attempts": 4, "backoff_s": 0.5}])
    other = spec_doc(notifiers=[{"kind": "webhook", "url": "https://h.example.com/x",
                                 "max_attempts": 2}])
    d = [RolloutSpec.model_validate(x).digest() for x in (plain, same, other)]
    assert d[0] == d[1] != d[2]
