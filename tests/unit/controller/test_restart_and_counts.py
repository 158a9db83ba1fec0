"""What the load and chaos integration tests rely on, without Ray: ``Rollout.wait()`` and
``watch()`` wait out a controller restart, and the store accounts for every request the routers
recorded (rejected ones and events lost off a full buffer included)."""

from __future__ import annotations

import time
from typing import Any

import pytest

import rayrollout.client.api as rr
from rayrollout.controller.port import ControllerHandle
from rayrollout.errors import UnavailableError
from tests.unit.controller.test_controller import MODEL, Cluster, cluster, start

__all__ = ["cluster"]  # the fake cluster fixture of test_controller


class Restarting:
    """A controller handle whose first ``down`` calls fail as a controller being restarted by
    Ray does; each failed call moves the fake cluster on one tick (time passes meanwhile)."""

    def __init__(self, inner: ControllerHandle, cluster: Cluster, down: int) -> None:
        self.inner, self.cluster, self.down = inner, cluster, down
        self.failed = 0

    def call(self, method: str, *args: Any) -> Any:
        if self.failed < self.down:
            self.failed += 1
            self.cluster.tick()
            raise UnavailableError(f"the rollout controller of {MODEL!r} is unavailable: "
                                   "ActorUnavailableError")
        return self.inner.call(method, *args)

    async def acall(self, method: str, *args: Any) -> Any:
        return self.call(method, *args)


def test_wait_and_watch_wait_out_a_controller_restart(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "sleep", lambda s: cluster.tick())
    start(cluster, strategy={"steps": [{"weight": 10, "min_requests": 50},
                                       {"weight": 50, "min_requests": 50}]})
    handle = Restarting(cluster.port.controller(MODEL, create=False), cluster, down=5)
    ro = rr.Rollout(MODEL, handle)
    st = ro.wait({"promoted"}, timeout_s=60)
    assert st["phase"] == "promoted" and handle.failed == 5
    handle.down += 3
    seen = [s["phase"] for s in ro.watch(interval_s=0, timeout_s=60)]
    assert handle.failed == 8 and seen == ["promoted"]
    # a controller that stays away past the deadline is an error, not a phase
    handle.down = 10**9
    with pytest.raises(UnavailableError):
        ro.wait({"never"}, timeout_s=0)


def test_the_store_accounts_for_every_request_the_routers_recorded(cluster: Cluster) -> None:
    ro = start(cluster)
    cluster.run_until({"canary"})
    first = len(cluster.controller.store.ticks(ro.status()["rollout"]))
    routers = cluster.port.routers[MODEL]
    served = rejected = 0
    for _ in range(5):
        cluster.serve(40)  # 40 requests on each replica, a few of them bad input
        for r in routers:
            r.recorder.reject("v1")
            r.recorder.reject("")  # refused before a version was chosen
        served += 40 * len(routers)
        rejected += 2 * len(routers)
        cluster.clock.t += 1.0
        cluster.controller.step()
    ticks = cluster.controller.store.ticks(ro.status()["rollout"])[first:]
    assert sum(sum(t["requests"].values()) for t in ticks) == served
    assert sum(sum(t.get("rejected", {}).values()) for t in ticks) == rejected
    assert sum(len(t["events"]) for t in ticks) == served
    assert not any(t.get("dropped_events") for t in ticks)
    assert ro.replay()["identical"]  # the accounting is not an input of the decisions


def test_events_lost_off_a_full_router_buffer_are_counted(cluster: Cluster) -> None:
    ro = start(cluster)
    cluster.run_until({"canary"})
    for r in cluster.port.routers[MODEL]:
        r.recorder = type(r.recorder)(r.recorder.replica, max_events=10)
    cluster.serve(25)
    cluster.clock.t += 1.0
    cluster.controller.step()
    last = cluster.controller.store.ticks(ro.status()["rollout"])[-1]
    n = len(cluster.port.routers[MODEL])
    assert sum(last["requests"].values()) == 25 * n
    assert len(last["events"]) == 10 * n and last["dropped_events"] == 15 * n


class Broadcast:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def broadcast(self, method: str, *args: Any) -> Broadcast:
        self.asked.append(method)
        return self

    def results(self, timeout_s: float | None = None, return_exceptions: bool = False
                ) -> list[Any]:
        assert return_exceptions  # one dead replica must not cost the others' answers
        return self.answers


def test_a_dead_router_replica_does_not_lose_what_the_others_collected() -> None:
    from rayrollout.serving.port import RayServePort

    port = RayServePort()
    drained = {"replica": "a", "stats": {}, "events": []}
    port._routers[MODEL] = Broadcast([drained, RuntimeError("ActorDiedError")])
    assert port.collect(MODEL) == [drained]
    port._routers[MODEL] = Broadcast([RuntimeError("ActorDiedError")])
    with pytest.raises(UnavailableError, match="did not answer collect"):
        port.collect(MODEL)
