"""A call to a version under its deadline (``inference._timed``), both ways it is run: inline
under ``asyncio.timeout`` (Python 3.11+) and in a task of its own (3.10, run here too). The
outcome of every ending, and that the request's own cancellation is never swallowed."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from rayrollout.dataplane.events import Outcome
from rayrollout.errors import ModelError, ModelTimeout
from rayrollout.ingress import inference
from rayrollout.ingress.inference import VersionWithdrawn, _timed


@pytest.fixture(autouse=True, params=[
    pytest.param("inline", marks=pytest.mark.skipif(sys.version_info < (3, 11),
                                                    reason="asyncio.timeout is 3.11+")),
    "task"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(inference, "INLINE_DEADLINE", request.param == "inline")
    yield str(request.param)


async def answer(value: Any, after: float = 0.0) -> Any:
    await asyncio.sleep(after)
    return value


async def fail() -> None:
    raise RuntimeError("/secret/path/model.onnx exploded")


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def withdrawn_after(after: float | None, call: Any, timeout: float) -> Any:
    """``_timed`` of ``call``, its version withdrawn ``after`` seconds in (``None``: before
    the call starts)."""
    async def go() -> Any:
        loop = asyncio.get_running_loop()
        gone = loop.create_future()
        if after is None:
            gone.set_result(None)
        else:
            loop.call_later(after, gone.set_result, None)
        return await _timed("v1", call, timeout, gone)

    return run(go())


def test_an_answer_in_time_is_ok() -> None:
    result, err, outcome, ms = run(_timed("v1", answer(42), 5.0))
    assert (result, err, outcome) == (42, None, Outcome.OK) and ms >= 0


def test_no_answer_in_time_is_a_timeout() -> None:
    result, err, outcome, _ = run(_timed("v1", answer(1, after=30), 0.05))
    assert result is None and isinstance(err, ModelTimeout) and outcome is Outcome.TIMEOUT


def test_a_failure_is_a_model_error_without_its_details() -> None:
    _, err, outcome, _ = run(_timed("v1", fail(), 5.0))
    assert isinstance(err, ModelError) and outcome is Outcome.ERROR
    assert "secret" not in str(err) and "error id" in str(err)


def test_a_withdrawal_cuts_the_wait_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "WITHDRAWN_GRACE_S", 0.1)
    result, err, outcome, _ = withdrawn_after(0.02, answer(1, after=30), 60.0)  # not 60 s
    assert result is None and isinstance(err, VersionWithdrawn) and outcome is Outcome.ERROR


def test_an_answer_within_the_grace_of_a_withdrawal_stands(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "WITHDRAWN_GRACE_S", 5.0)
    result, err, outcome, _ = withdrawn_after(None, answer(7, after=0.05), 60.0)
    assert (result, err, outcome) == (7, None, Outcome.OK)


def test_a_withdrawal_after_the_grace_is_spent_cuts_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "WITHDRAWN_GRACE_S", 0.0)
    _, err, _, _ = withdrawn_after(None, answer(1, after=30), 60.0)
    assert isinstance(err, VersionWithdrawn)


def test_the_requests_own_cancellation_goes_through_and_stops_the_call() -> None:
    async def go() -> None:
        stopped = asyncio.Event()

        async def endless() -> None:
            try:
                await asyncio.sleep(60)
            finally:
                stopped.set()

        t = asyncio.ensure_future(_timed("v1", endless(), 60.0,
                                         asyncio.get_running_loop().create_future()))
        await asyncio.sleep(0.02)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        await asyncio.wait_for(stopped.wait(), 5)

    run(go())


def test_an_answer_in_the_same_turn_as_a_withdrawal_stands_and_nothing_fails_later(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The withdrawal's callback runs a turn after it resolved: by then the call is over, and
    the finished deadline must be left alone (no error in the loop's handler)."""
    monkeypatch.setattr(inference, "WITHDRAWN_GRACE_S", 0.0)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, ctx: errors.append(ctx))
        gone = loop.create_future()

        async def answer_and_withdraw() -> int:
            await asyncio.sleep(0)
            gone.set_result(None)  # in the same turn as the answer
            return 5

        result = await _timed("v1", answer_and_withdraw(), 60.0, gone)
        for _ in range(5):
            await asyncio.sleep(0)
        assert result[:3] == (5, None, Outcome.OK) and errors == []

    run(go())


def test_a_timeout_before_a_withdrawal_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "WITHDRAWN_GRACE_S", 10.0)
    _, err, outcome, _ = withdrawn_after(0.3, answer(1, after=30), 0.05)
    assert isinstance(err, ModelTimeout) and outcome is Outcome.TIMEOUT
