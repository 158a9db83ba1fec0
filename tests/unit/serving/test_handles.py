"""``ServeVersions``' calls to a version: one alone, a group as one ``predict_many``, one by one
for an ingress without it, small payloads over the gRPC handle transport."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from rayrollout.serving.handles import SMALL_PAYLOAD_BYTES, Arrays, ServeVersions


class FakeMethod:
    """``handle.<name>`` of a fake version: records (name, small, args) of every call."""

    def __init__(self, calls: list[tuple[str, bool, Any]], name: str, small: bool,
                 has_many: bool) -> None:
        self.calls, self.name, self.small, self.has_many = calls, name, small, has_many

    def remote(self, arg: Any) -> asyncio.Future[Any]:
        self.calls.append((self.name, self.small, arg))
        fut = asyncio.get_running_loop().create_future()
        if self.name == "predict_many" and not self.has_many:
            fut.set_exception(RuntimeError("Tried to call a method 'predict_many' that does "
                                           "not exist. Available methods: ['predict']."))
        elif self.name == "predict_many":
            fut.set_result([{"y": x["x"] * 2} for x in arg])
        else:
            fut.set_result({"y": arg["x"] * 2})
        return fut


def versions(has_many: bool = True) -> tuple[ServeVersions, list[tuple[str, bool, Any]]]:
    sv = ServeVersions("m")
    sv.channels = None  # the handle path alone (the channel: test_channel.py)
    calls: list[tuple[str, bool, Any]] = []

    async def method(version: str, name: str, small: bool = False) -> Any:
        return FakeMethod(calls, name, small, has_many)

    sv._method = method  # type: ignore[method-assign]
    return sv, calls


def arr(v: float, n: int = 1) -> Arrays:
    return {"x": np.full(n, v, dtype=np.float32)}


@pytest.mark.parametrize("has_many", [True, False])
def test_a_group_is_one_call_or_one_by_one(has_many: bool) -> None:
    async def go() -> None:
        sv, calls = versions(has_many)
        got = await sv._send("v1", [arr(1), arr(2), arr(3)])
        assert [g["y"].tolist() for g in got if isinstance(g, dict)] == [[2], [4], [6]]
        names = [n for n, _, _ in calls]
        assert names == (["predict_many"] if has_many else ["predict_many"] + ["predict"] * 3)
        await sv._send("v1", [arr(1), arr(2)])  # a version without it is not asked again
        assert [n for n, _, _ in calls][len(names):] == (
            ["predict_many"] if has_many else ["predict", "predict"])
    asyncio.run(go())


def test_one_call_alone_and_the_transport_by_size() -> None:
    async def go() -> None:
        sv, calls = versions()
        assert (await sv.predict("v1", arr(3)))["y"].tolist() == [6]
        big = arr(1, SMALL_PAYLOAD_BYTES // 4 + 1)
        await sv.predict("v1", big)
        assert [(n, small) for n, small, _ in calls] == [("predict", True), ("predict", False)]
    asyncio.run(go())


def test_a_version_whose_answer_grpc_cannot_carry_goes_by_actor_calls() -> None:
    async def go() -> None:
        sv, calls = versions()
        real = sv._method

        async def method(version: str, name: str, small: bool = False) -> Any:
            m: Any = await real(version, name, small)
            if small:  # gRPC refuses the answer (a small request, a large output)
                def refused(arg: Any) -> asyncio.Future[Any]:
                    calls.append((name, small, arg))
                    fut = asyncio.get_running_loop().create_future()
                    fut.set_exception(RuntimeError("StatusCode.RESOURCE_EXHAUSTED: Received "
                                                   "message larger than max"))
                    return fut
                m.remote = refused
            return m

        sv._method = method  # type: ignore[method-assign]
        assert (await sv.predict("v1", arr(3)))["y"].tolist() == [6]
        assert (await sv.predict("v1", arr(4)))["y"].tolist() == [8]
        assert [(n, small) for n, small, _ in calls] == [
            ("predict", True), ("predict", False), ("predict", False)]
    asyncio.run(go())


@pytest.mark.parametrize("lost", [1, 2])
def test_a_call_to_a_replica_that_went_away_is_sent_once_more(lost: int) -> None:
    """The first ``lost`` calls meet an unavailable replica: one is retried, two fail."""
    from ray.exceptions import ActorUnavailableError

    async def go() -> None:
        sv, calls = versions()
        left = [lost]

        async def call(version: str, items: list[Arrays], small: bool) -> list[Any]:
            calls.append(("call", small, items))
            if left[0] > 0:
                left[0] -= 1
                raise ActorUnavailableError(error_message="node lost", actor_id=None)
            return [{"y": x["x"] * 2} for x in items]

        sv._call = call  # type: ignore[method-assign]
        if lost == 1:
            got = await sv._send("v1", [arr(1), arr(2)])
            assert [g["y"].tolist() for g in got if isinstance(g, dict)] == [[2], [4]]
        else:
            with pytest.raises(ActorUnavailableError):
                await sv._send("v1", [arr(1), arr(2)])
        assert len(calls) == 2

    asyncio.run(go())


def test_a_small_call_alone_goes_by_the_channel_and_anything_else_by_handle() -> None:
    """A single small call is offered to the node-local channel first: its answer, or its
    model error, is the call's; ``None`` (the channel cannot carry it) sends it by handle.
    Groups and large calls are never offered to it."""
    from rayrollout.serving.channel import ChannelModelError

    class Channel:
        def __init__(self) -> None:
            self.offered: list[Arrays] = []
            self.answer: Any = None

        async def call(self, version: str, inputs: Arrays) -> Arrays | None:
            self.offered.append(inputs)
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    async def go() -> None:
        sv, calls = versions()
        ch = Channel()
        sv.channels = ch  # type: ignore[assignment]
        ch.answer = {"y": np.array([42.0])}
        assert (await sv._send("v1", [arr(1)]))[0]["y"].tolist() == [42.0]  # type: ignore[index]
        ch.answer = ChannelModelError("ValueError: bad row")
        (err,) = await sv._send("v1", [arr(1)])
        assert isinstance(err, ChannelModelError)
        assert calls == []
        ch.answer = None  # the channel cannot carry it: by handle
        assert (await sv._send("v1", [arr(3)]))[0]["y"].tolist() == [6]  # type: ignore[index]
        await sv._send("v1", [arr(1), arr(2)])
        await sv._send("v1", [arr(1, SMALL_PAYLOAD_BYTES // 4 + 1)])
        assert len(ch.offered) == 3
        assert [n for n, _, _ in calls] == ["predict", "predict_many", "predict"]

    asyncio.run(go())
