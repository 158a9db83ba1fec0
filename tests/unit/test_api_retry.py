"""The Python API rides through controller restarts: every call waits out an unavailable
controller for a bounded time (``retry_s``, on an injected clock here) and then raises; a verb
retried after its answer was lost (even across a controller restart) is applied once, because
the controller answers a verb id it already applied with the status. Over the in-memory port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rayrollout.client.api as rr
from rayrollout.controller.fake import FakeServePort
from rayrollout.controller.port import ControllerHandle
from rayrollout.errors import IllegalTransition, NotCarriedOut, UnavailableError, http_status
from tests.unit.controller.test_controller import MODEL, Cluster, start


class Time:
    """A monotonic clock that only ``sleep`` moves."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


class Flaky:
    """A controller handle that is unavailable for its next ``down`` calls (Ray restarting the
    actor); with ``lose`` set, the next call is carried out but its answer is lost."""

    def __init__(self, inner: ControllerHandle, down: int = 0) -> None:
        self.inner, self.down = inner, down
        self.lose = False
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def call(self, method: str, *args: Any) -> Any:
        self.calls.append((method, args))
        if self.down > 0:
            self.down -= 1
            raise UnavailableError("the rollout controller is unavailable: ActorDiedError")
        result = self.inner.call(method, *args)
        if self.lose:
            self.lose = False
            raise UnavailableError("the rollout controller is unavailable: the reply was lost")
        return result

    async def acall(self, method: str, *args: Any) -> Any:
        return self.call(method, *args)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield Cluster(tmp_path / "rollouts.db")


def rollout(cluster: Cluster, down: int = 0, retry_s: float = rr.RETRY_S
            ) -> tuple[rr.Rollout, Flaky, Time]:
    start(cluster)
    cluster.run_until({"canary"})
    clock = Time()
    handle = Flaky(cluster.port.controller(MODEL, create=False), down)
    return (rr.Rollout(MODEL, handle, retry_s, sleep=clock.sleep, monotonic=clock.monotonic),
            handle, clock)


def test_reads_wait_out_a_restart_and_give_up_after_the_bound(cluster: Cluster) -> None:
    ro, handle, clock = rollout(cluster, down=4)
    assert ro.status()["phase"] == "canary"
    assert len(handle.calls) == 5 and clock.slept == [0.1, 0.2, 0.4, 0.8]
    for call in (ro.history, ro.verify, ro.replay, ro.status):
        handle.down = 2
        call()
    handle.down = 10**6
    clock.slept.clear()
    with pytest.raises(UnavailableError):
        ro.status()
    assert sum(clock.slept) == pytest.approx(rr.RETRY_S)  # and no longer
    assert max(clock.slept) == 2.0  # backing off, capped


def test_the_bound_is_configurable(cluster: Cluster) -> None:
    ro, handle, clock = rollout(cluster, down=10**6, retry_s=5.0)
    with pytest.raises(UnavailableError):
        ro.history()
    assert sum(clock.slept) == pytest.approx(5.0)
    ro.retry_s = 0.0
    handle.calls.clear()
    with pytest.raises(UnavailableError):
        ro.verify()
    assert len(handle.calls) == 1
    assert rr.connect(MODEL, port=cluster.port, retry_s=7.5).retry_s == 7.5
    with pytest.raises(ValueError, match="retry_s"):
        rr.Rollout(MODEL, handle, -1.0)


def test_wait_and_watch_raise_once_the_controller_stays_away_past_the_bound(
    cluster: Cluster
) -> None:
    ro, handle, clock = rollout(cluster, retry_s=3.0)
    handle.down = 10**6
    with pytest.raises(UnavailableError):
        ro.wait({"promoted"}, timeout_s=600)
    assert clock.t == pytest.approx(3.0)  # the bound, not the wait's timeout
    clock.t = 0.0
    with pytest.raises(UnavailableError):
        next(iter(ro.watch(timeout_s=1.0)))
    assert clock.t == pytest.approx(1.0)  # the watch's own deadline came first
    handle.down = 3
    assert next(iter(ro.watch()))["phase"] == "canary"


def test_a_verb_whose_answer_was_lost_is_applied_once(cluster: Cluster) -> None:
    ro, handle, _ = rollout(cluster)
    st = ro.status()
    assert st["step"] == 0
    handle.lose = True  # applied, then the controller restarts before answering
    st = ro.promote()  # applied twice, it would go past step 2 to a promotion
    assert st["phase"] == "canary" and st["step"] == 1
    (m1, a1), (m2, a2) = handle.calls[-2:]
    assert m1 == m2 == "command" and a1 == a2 and len(a1[-1]) == 32  # the same call id
    assert sum(e["actor"] == "python-api" for e in ro.history()) == 1
    entry = ro.history()[-1]
    assert entry["request"] == a1[-1]  # recorded with its decision
    assert ro.replay()["identical"] and ro.verify()["ok"]
    assert ro.pause()["phase"] == "paused"  # a new call is a new verb


def test_a_verb_retried_on_a_restarted_controller_is_applied_once(cluster: Cluster) -> None:
    _, handle, _ = rollout(cluster)

    class Restart(Flaky):
        def call(self, method: str, *args: Any) -> Any:
            self.calls.append((method, args))
            if len(self.calls) == 1:  # applied, then the process dies before answering
                self.inner.call(method, *args)
                cluster.port.restart_controller(MODEL)  # a new object over the same store
                raise UnavailableError("the rollout controller is unavailable")
            return cluster.port.controller(MODEL, create=False).call(method, *args)

    flaky = Restart(handle.inner)
    again = rr.Rollout(MODEL, flaky, sleep=lambda s: None)
    st = again.promote()
    assert len(flaky.calls) == 2 and st["phase"] == "canary" and st["step"] == 1
    assert sum(e["actor"] == "python-api" for e in again.history()) == 1


def test_a_refused_verb_is_not_retried(cluster: Cluster) -> None:
    ro, handle, _ = rollout(cluster)
    with pytest.raises(IllegalTransition):
        ro.undo()
    assert [m for m, _ in handle.calls] == ["command"]


def test_a_verb_without_an_id_still_works_as_the_admin_api_sends_it(cluster: Cluster) -> None:
    start(cluster)
    cluster.run_until({"canary"})
    h = cluster.port.controller(MODEL, create=False)
    assert h.call("command", "pause", "ops", False, None, "admin")["phase"] == "paused"
    assert h.call("command", "resume", "ops", False, None, "")["phase"] == "canary"
    assert "request" not in cluster.controller.history()[-1]


def test_start_retries_and_starts_once(tmp_path: Path) -> None:
    port = FakeServePort(Cluster(tmp_path / "r.db").clock)
    real = port.controller

    def flaky_controller(model: str, store_path: str | None = None, create: bool = True
                         ) -> ControllerHandle:
        h = Flaky(real(model, store_path, create))
        h.lose = True  # the start is applied, its answer lost: the retry is a no-op
        return h

    port.controller = flaky_controller  # type: ignore[method-assign]
    from tests.unit.controller.test_controller import spec_doc

    ro = rr.start(spec_doc(tmp_path / "r.db"), port=port)
    assert ro.status()["phase"] == "pending"
    assert len(port.controllers[MODEL].store.rollouts(MODEL)) == 1


def test_a_verb_stored_but_not_carried_out_is_not_retried(cluster: Cluster) -> None:
    ro, handle, clock = rollout(cluster)
    cluster.port.reachable = False  # the routers cannot be reached: the push fails
    with pytest.raises(NotCarriedOut, match="abort was decided and stored") as e:
        ro.abort()
    assert http_status(e.value) == 503 and e.value.code == "not_carried_out"
    assert [m for m, _ in handle.calls] == ["command"] and clock.slept == []
    cluster.port.reachable = True
    assert ro.status()["phase"] == "rolled_back"  # it stands
    cluster.tick()  # and reaches the routers on the next tick
    assert {w["v1"] for _, w, _ in cluster.tables()} == {100.0}
