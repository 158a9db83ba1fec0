"""Metric sources: ``PromQLSource`` against canned answers of Prometheus' query API (an httpx
mock transport) and a port nothing listens on, the host list, ``FakeSource``, readings as
data, and the ``Poller`` that never waits for a read."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from rayrollout.analysis.judges.promql import ERROR_VERDICTS
from rayrollout.analysis.result import Verdict
from rayrollout.errors import ConfigError
from rayrollout.sources import (
    ERROR_KINDS,
    HOSTS_ENV,
    BadResponse,
    EmptyResult,
    FakeSource,
    MetricSource,
    NotANumber,
    Poller,
    PromQLSource,
    QueryFailed,
    SourceError,
    SourceUnavailable,
    TooManySeries,
    check_url,
    take_reading,
)
from tests.conftest import free_port

URL = "http://prom.test:9090"


def vector(*values: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {**(labels or {}), "i": str(i)}, "value": [1.0, v]}
        for i, v in enumerate(values)]}}


def source(answer: Any, status: int = 200, seen: list[httpx.Request] | None = None
           ) -> PromQLSource:
    """A source whose server answers ``answer`` (a JSON body, raw text or an exception)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, str):
            return httpx.Response(status, text=answer)
        return httpx.Response(status, json=answer)

    return PromQLSource(URL, timeout_s=2.0, transport=httpx.MockTransport(handle))


def test_one_series_is_its_value_and_the_query_time_and_timeout_are_sent() -> None:
    seen: list[httpx.Request] = []
    s = source(vector("0.25"), seen=seen)
    assert isinstance(s, MetricSource) and s.where == URL
    assert s.value('sum(up{job="x"})', at=1234.5) == 0.25
    (req,) = seen
    assert req.url.path == "/api/v1/query"
    assert req.url.params["query"] == 'sum(up{job="x"})'
    assert req.url.params["time"] == "1234.500" and req.url.params["timeout"] == "2s"
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "7"]}}
    assert source(scalar).value("vector(7)") == 7.0


@pytest.mark.parametrize(("answer", "status", "error", "says"), [
    (vector(), 200, EmptyResult, "no series answered"),
    (vector("1", "2", "3", "4", labels={"version": "v2"}), 200, TooManySeries,
     "4 series answered"),
    (vector("NaN"), 200, NotANumber, "is NaN"),
    (vector("+Inf"), 200, NotANumber, "is +Inf"),
    ({"status": "error", "errorType": "bad_data", "error": "parse error at char 4"}, 400,
     QueryFailed, "refused the query (bad_data): parse error at char 4"),
    ({"status": "error", "errorType": "execution", "error": "1:1: expected type"}, 422,
     QueryFailed, "refused the query (execution)"),
    ({"status": "error", "errorType": "timeout", "error": "query timed out"}, 503,
     SourceUnavailable, "answered HTTP 503: query timed out"),
    ("<html>login</html>", 200, BadResponse, "no JSON body"),
    ({"status": "error", "error": "unauthorized"}, 401, BadResponse, "HTTP 401"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, 200, QueryFailed,
     "range vector"),
    ({"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}, 200,
     BadResponse, "a string result"),
    (vector("twelve"), 200, BadResponse, "not a number"),
])
def test_every_failure_is_a_source_error_of_its_kind(answer: Any, status: int,
                                                     error: type[SourceError], says: str) -> None:
    with pytest.raises(error) as e:
        source(answer, status).value("q")
    assert says in str(e.value) and e.value.kind in ERROR_KINDS
    assert type(e.value).kind == e.value.kind


def test_many_series_names_some_of_them_and_says_how_to_fix_it() -> None:
    with pytest.raises(TooManySeries) as e:
        source(vector("1", "2", "3", "4", labels={"version": "v2"})).value("q")
    msg = str(e.value)
    assert "'version': 'v2'" in msg and ", ..." in msg and "sum(...)" in msg


def test_a_long_server_message_is_quoted_short() -> None:
    body = {"status": "error", "errorType": "bad_data", "error": "x" * 5000}
    with pytest.raises(QueryFailed) as e:
        source(body, 400).value("q")
    assert len(str(e.value)) < 400 and str(e.value).endswith("...")


def test_a_timeout_and_a_refused_connection_are_unavailable() -> None:
    with pytest.raises(SourceUnavailable, match="did not answer within 2 s"):
        source(httpx.ReadTimeout("slow")).value("q")
    down = PromQLSource(f"http://127.0.0.1:{free_port()}", timeout_s=2.0)
    with pytest.raises(SourceUnavailable, match="cannot be reached: ConnectError") as e:
        down.value("q")
    assert e.value.kind == "unavailable" and "127.0.0.1" in str(e.value)
    down.close()


def test_hosts_are_the_operators_choice() -> None:
    check_url(URL, {})  # unset: any host
    check_url(URL, {HOSTS_ENV: "other, prom.test"})
    check_url(URL, {HOSTS_ENV: "*.test"})
    check_url(URL, {HOSTS_ENV: "*"})
    with pytest.raises(ConfigError, match=f"'prom.test' is not in {HOSTS_ENV}"):
        check_url(URL, {HOSTS_ENV: "prometheus.internal"})
    with pytest.raises(ConfigError, match="user or password"):
        check_url("http://me:secret@prom.test", {})
    with pytest.raises(ConfigError, match="http:// or https://"):
        check_url("file:///etc/passwd", {})
    with pytest.raises(ConfigError, match="timeout_s"):
        PromQLSource(URL, timeout_s=0)


def test_every_error_kind_holds_or_errors_a_check_and_never_fails_it() -> None:
    assert set(ERROR_KINDS) <= set(ERROR_VERDICTS)
    assert all(v in (Verdict.ERROR, Verdict.INCONCLUSIVE) for v in ERROR_VERDICTS.values())
    with pytest.raises(ValueError, match="unknown source error kind"):
        SourceError("x", kind="oops")


def test_fake_source_answers_what_was_set() -> None:
    f = FakeSource({"a": 1.5, "b": QueryFailed("bad"), "c": lambda at: (at or 0) * 2})
    assert f.value("a") == 1.5 and f.value("c", 4.0) == 8.0
    with pytest.raises(QueryFailed):
        f.value("b")
    with pytest.raises(EmptyResult):
        f.value("nothing")
    f.down = True
    with pytest.raises(SourceUnavailable):
        f.value("a")
    assert [q for q, _ in f.asked] == ["a", "c", "b", "nothing", "a"]


def test_a_reading_is_json_data_with_the_first_failure_named() -> None:
    f = FakeSource({"qc": 3.0, "qs": 1.0})
    r = take_reading(f, {"candidate": "qc", "stable": "qs"}, 10.0)
    assert r == {"t": 10.0, "values": {"candidate": 3.0, "stable": 1.0}}
    r = take_reading(f, {"candidate": "qc", "stable": "missing"}, 11.0)
    assert r["error"] == "empty" and r["role"] == "stable" and "missing" in r["detail"]
    assert json.loads(json.dumps(r)) == r

    class Broken:
        where = "broken"

        def value(self, query: str, at: float | None = None) -> float:
            raise RuntimeError("bug")

    r = take_reading(Broken(), {"candidate": "q"}, 12.0)
    assert r["error"] == "bad_response" and "RuntimeError: bug" in r["detail"]


def test_poller_reads_each_key_once_per_interval_one_at_a_time() -> None:
    p = Poller(inline=True)
    calls: list[float] = []

    def read(t: float) -> Any:
        def go() -> dict[str, Any]:
            calls.append(t)
            return {"t": t, "values": {"candidate": t}}

        return go

    assert p.poll("k", 0.0, 5.0, read(0.0))
    assert not p.poll("k", 4.9, 5.0, read(4.9))  # not due yet
    assert p.poll("j", 4.9, 5.0, read(4.9))  # another key has its own interval
    assert p.poll("k", 5.0, 5.0, read(5.0))
    assert [k for k, _ in p.harvest()] == ["k", "j", "k"] and calls == [0.0, 4.9, 5.0]
    assert p.harvest() == []
    p.poll("k", 10.0, 5.0, read(10.0))
    p.keep({"j"})  # k's rollout is over: its finished reading is dropped, its interval too
    assert p.harvest() == []
    assert p.poll("k", 10.5, 5.0, read(10.5))


def test_poller_never_waits_for_a_slow_read() -> None:
    p = Poller(workers=2)
    release, started = threading.Event(), threading.Event()

    def slow() -> dict[str, Any]:
        started.set()
        release.wait(30)
        return {"t": 0.0, "values": {"candidate": 1.0}}

    try:
        assert p.poll("k", 0.0, 1.0, slow)
        assert started.wait(30)
        assert p.harvest() == []  # still running: nothing, and no wait
        assert not p.poll("k", 100.0, 1.0, slow)  # due, but its read has not finished
        release.set()
        for _ in range(3000):
            got = p.harvest()
            if got:
                break
            threading.Event().wait(0.01)
        assert got == [("k", {"t": 0.0, "values": {"candidate": 1.0}})]
        assert p.poll("k", 100.0, 1.0, lambda: {"t": 100.0, "values": {"candidate": 2.0}})
    finally:
        release.set()
        p.close()
