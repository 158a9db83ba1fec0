"""Only one controller of a model acts, even while Ray briefly runs two: two controllers on one
real store (SQLite and PostgreSQL), the newer holding the lease. The older one pushes no table,
deploys nothing, writes no log entry and drains no router once it is fenced, even when the lease
is taken in the middle of its tick; its status says so, its verbs raise ``Fenced`` (409) and its
loop ends. Also the controller actor's placement and the node-local store warning (no Ray)."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterator
from typing import Any, cast

import pytest

from rayrollout.client.api import ensure_serving
from rayrollout.controller.controller import RolloutController, run_loop
from rayrollout.controller.store import RolloutStore
from rayrollout.errors import Fenced, http_status
from rayrollout.names import version_app_name
from rayrollout.serving import actor
from rayrollout.spec import RolloutSpec
from tests.unit.controller.conftest import Stores
from tests.unit.controller.test_controller import MODEL, Cluster, spec_doc


def spec() -> dict[str, Any]:
    doc = spec_doc("unused.db")
    del doc["store_path"]  # the controllers below are given their store
    return doc


class Two:
    """A fake cluster and a controller ``a`` over the test's store (or ``store``), with a
    rollout started."""

    def __init__(self, stores: Stores, store: Any = None) -> None:
        self.stores = stores
        self.cluster = Cluster(stores.target)
        self.port = self.cluster.port
        self.a = self.controller("node-a/pid 1", store)
        self.port.controllers[MODEL] = self.a  # cluster.tick() steps the one registered
        ensure_serving(RolloutSpec.model_validate(spec()), port=self.port)
        self.a.start(spec())

    def controller(self, owner: str, store: Any = None) -> RolloutController:
        return RolloutController(MODEL, store or self.stores(), self.port, self.cluster.clock,
                                 self.port._notify, owner=owner)

    def log(self) -> list[dict[str, Any]]:
        return self.stores().history()


@pytest.fixture
def two(stores: Stores) -> Iterator[Two]:
    t = Two(stores)
    yield t
    stores.close()


def test_a_newer_controller_fences_the_older_one(two: Two) -> None:
    assert two.cluster.run_until({"canary"}) == "canary"
    a = two.a
    assert a.status()["controller"] == {"owner": "node-a/pid 1", "token": a.token}
    b = two.controller("node-b/pid 2")  # Ray started another incarnation: it takes the lease
    assert b.token > a.token and b.status()["phase"] == "canary"
    entries, tables = len(two.log()), two.cluster.tables()

    two.cluster.serve(30)  # requests on both router replicas
    assert a.step() is None
    st = a.status()
    assert st["fenced"] is not None and "newer controller" in st["fenced"]["reason"]
    assert st["allowed_verbs"] == []
    assert len(two.log()) == entries and two.cluster.tables() == tables
    for verb in (lambda: a.command("abort"), lambda: a.start(spec()),
                 lambda: a.command("pause", request="r1")):
        with pytest.raises(Fenced) as e:
            verb()
        assert http_status(e.value) == 409
    assert len(two.log()) == entries and b.status()["phase"] == "canary"

    # its loop ends by itself
    loop = threading.Thread(target=run_loop, args=(a, threading.Event()), daemon=True)
    loop.start()
    loop.join(5.0)
    assert not loop.is_alive()

    # the events the fenced one did not collect are the newer one's: none is lost
    rollout = b.status()["rollout"]
    before = len(two.stores().ticks(rollout))
    two.port.controllers[MODEL] = b
    two.cluster.clock.t += 1.0
    b.step()
    ticks = two.stores().ticks(rollout)
    assert len(ticks) == before + 1 and len(ticks[-1]["events"]) == 60
    assert two.cluster.run_until({"awaiting_approval"}) == "awaiting_approval"
    assert b.command("approve")["phase"] == "promoted"
    ok, msg = two.stores().verify()
    assert ok, msg


class Usurped:
    """A store whose next ``method`` call is preceded by a rival taking the lease: the race
    between a tick's lease check and its write."""

    def __init__(self, inner: RolloutStore, rival: RolloutStore, method: str) -> None:
        self.inner, self.rival, self.method = inner, rival, method
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)
        if name != self.method:
            return fn

        def raced(*args: Any, **kw: Any) -> Any:
            if self.armed:
                self.armed = False
                self.rival.acquire(MODEL, "node-b/pid 2")
            return fn(*args, **kw)
        return raced


@pytest.mark.parametrize("at", ["deploy", "routes"])
def test_a_controller_fenced_in_the_middle_of_a_tick_acts_on_nothing(
    stores: Stores, at: str
) -> None:
    raced = Usurped(stores(), stores(), "commit")
    two = Two(stores, raced)
    if at == "routes":
        assert two.cluster.tick() == "deploying"  # the next decision pushes a shadow table
    entries, tables, apps = len(two.log()), two.cluster.tables(), set(two.port.apps)
    raced.armed = True
    two.cluster.clock.t += 1.0
    assert two.a.step() is None
    assert two.a.fenced is not None and "node-b/pid 2" in two.a.fenced["reason"]
    assert len(two.log()) == entries  # nothing written
    assert two.cluster.tables() == tables  # nothing pushed
    assert set(two.port.apps) == apps  # nothing deployed
    assert version_app_name(MODEL, "v2") in apps or at == "deploy"
    stores.close()


def test_a_fenced_controller_does_not_repush_to_a_restarted_router(two: Two) -> None:
    two.cluster.run_until({"canary"})
    b = two.controller("node-b/pid 2")
    two.port.restart_router(MODEL, 0)  # comes back with its config's table (epoch 0)
    two.cluster.serve(10)
    two.cluster.clock.t += 1.0
    two.a.step()
    assert two.cluster.tables()[0][0] == 0  # the stale controller pushed nothing
    b.step()
    assert two.cluster.tables()[0][0] == b.status()["epoch"]


def test_a_fenced_controller_whose_decision_was_committed_still_marks_nothing(
    stores: Stores
) -> None:
    """The lease lost between a decision's commit and its ``mark_applied``: the actions were
    the lease holder's own decision (committed in time), but the stale controller stops there,
    and the newer one re-applies the decision (idempotent) when it resumes."""
    raced = Usurped(stores(), stores(), "mark_applied")
    two = Two(stores, raced)
    raced.armed = True
    assert two.cluster.tick() == "deploying"
    assert two.a.fenced is not None
    row = stores().latest(MODEL)
    assert row is not None and row.applied_seq < row.state["seq"]
    b = two.controller("node-c/pid 3")  # resumes: re-applies decision 1, marks it applied
    row = stores().latest(MODEL)
    assert row is not None and row.applied_seq == row.state["seq"] == b.status()["decisions"]
    stores.close()


# -- placement of the controller actor (no Ray) -------------------------------------------------


def test_a_node_local_store_pins_the_controller_to_the_head_node(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAYROLLOUT_STORE_URL", raising=False)
    pinned = {"resources": {"node:__internal_head__": 0.001}}
    assert actor.placement(None, "m") == pinned  # the default store: a file on its node
    assert actor.placement("/data/m.db", "m") == pinned
    assert actor.placement("sqlite:///data/m.db", "m") == pinned
    assert actor.placement("postgresql://rr@db:5432/rollouts", "m") == {}
    monkeypatch.setenv("RAYROLLOUT_STORE_URL", "postgresql://rr:secret@db/rollouts")
    assert actor.placement(None, "m") == {}


def test_the_store_section_warns_of_a_node_local_store_on_a_cluster() -> None:
    one = actor.store_section("/data/m.db", "m", nodes=1)
    assert one == {"kind": "sqlite", "node_local": True, "where": "/data/m.db", "warning": None}
    three = actor.store_section("/data/m.db", "m", nodes=3)
    assert three["warning"] is not None
    assert "3 nodes" in three["warning"] and "PostgreSQL" in three["warning"]
    pg = actor.store_section("postgresql://rr:secret@db/rollouts", "m", nodes=3)
    assert pg["warning"] is None and pg["node_local"] is False
    assert "secret" not in str(pg)


class FakeRay(types.ModuleType):
    """What ``create_controller_actor`` asks of Ray, recorded."""

    def __init__(self, nodes: int) -> None:
        super().__init__("ray")
        self.n = nodes
        self.options: dict[str, Any] = {}

    def nodes(self) -> list[dict[str, Any]]:
        return [{"Alive": True}] * self.n + [{"Alive": False}]

    def remote(self, cls: Any) -> Any:
        outer = self

        class Remote:
            def options(self, **kw: Any) -> Any:
                outer.options = kw
                return types.SimpleNamespace(remote=lambda *a: ("actor", a))
        return Remote()


def test_creating_the_actor_pins_it_and_warns_on_the_callers_side(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeRay(nodes=3)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with caplog.at_level("WARNING", logger="rayrollout.serving"):
        actor.create_controller_actor("m", "/data/m.db", lambda: cast(Any, None))
    assert fake.options["resources"] == {"node:__internal_head__": 0.001}
    assert fake.options["max_restarts"] == -1 and fake.options["lifetime"] == "detached"
    assert any("3 nodes" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="rayrollout.serving"):
        actor.create_controller_actor("m", "postgresql://rr@db/rollouts", lambda: cast(Any, None))
    assert "resources" not in fake.options and not caplog.records
    fake.n = 1
    with caplog.at_level("WARNING", logger="rayrollout.serving"):
        actor.create_controller_actor("m", "/data/m.db", lambda: cast(Any, None))
    assert fake.options["resources"] and not caplog.records  # one node: nothing to warn of


def test_the_controller_status_shows_its_store(two: Two) -> None:
    st = two.a.status()
    assert st["store"]["where"] and st["fenced"] is None
    info = {"kind": "sqlite", "where": "/x.db", "node_local": True, "warning": "careful"}
    c = RolloutController(MODEL, two.stores(), two.port, two.cluster.clock, two.port._notify,
                          owner="o", store_info=info)
    assert c.status()["store"] == info
