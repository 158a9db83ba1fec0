"""Routers ahead of the store (an old copy of the store, a lost commit): the controller says so
in its log and moves its epoch above the routers' instead of pushing tables they would ignore;
the entry replays and the chain stays intact. Pure ``decide`` first, then a controller
restarted on an older copy of its SQLite store over the in-memory port."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import rayrollout.client.api as rr
from rayrollout.controller.decide import decide
from rayrollout.controller.state import Command, Observation
from rayrollout.controller.store import Store
from tests.unit.controller.helpers import Sim, make_spec
from tests.unit.controller.test_controller import MODEL, Cluster, start


def test_routers_ahead_move_the_epoch_above_theirs_and_push_the_table() -> None:
    sim = Sim(make_spec())
    sim.to_canary()
    s = sim.state
    new, actions, d = decide(s, sim.spec, Observation(now=sim.now + 1, router_epoch=s.epoch + 4))
    assert new.epoch == s.epoch + 5 and new.weights == s.weights and new.phase == s.phase
    assert [a.kind for a in actions] == ["routes", "notify"]
    assert actions[0].epoch == s.epoch + 5 and actions[0].weights == s.weights
    assert d is not None and d.epoch == new.epoch
    assert (f"reconciled: routers at epoch {s.epoch + 4}, store at epoch {s.epoch}"
            in d.reason)
    # a verb in the same tick still applies, on top of the reconciled epoch
    new, actions, d = decide(s, sim.spec, Observation(
        now=sim.now + 1, router_epoch=s.epoch + 4, command=Command("abort")))
    assert new.phase == "rolled_back" and new.epoch == s.epoch + 6
    assert [a.epoch for a in actions if a.kind == "routes"] == [s.epoch + 5, s.epoch + 6]


def test_routers_at_or_behind_the_store_change_nothing() -> None:
    sim = Sim(make_spec())
    sim.to_canary()
    s = sim.state
    for epoch in (None, s.epoch, s.epoch - 1):
        new, actions, d = decide(s, sim.spec, Observation(now=sim.now, router_epoch=epoch))
        assert (new, actions, d) == (s, [], None)


def copy_store(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite store (its WAL included), as a backup would be."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.close()


def test_a_controller_resumed_on_an_older_store_reconciles_with_the_routers(
    tmp_path: Path
) -> None:
    cluster = Cluster(tmp_path / "live.db")
    ro = start(cluster)
    cluster.run_until({"shadow"})
    old = tmp_path / "old.db"
    copy_store(tmp_path / "live.db", old)  # the store as it was in shadow
    stale = ro.status()
    cluster.run_until({"canary"})
    routers = max(e for e, _, _ in cluster.tables())
    assert routers > stale["epoch"]

    # Ray restarts the controller on another node, whose copy of the store is the old one
    cluster.port.store_paths[MODEL] = str(old)
    c = cluster.port.restart_controller(MODEL)
    ro = rr.connect(MODEL, port=cluster.port)
    assert c.core is not None and c.core.state.epoch == stale["epoch"]
    assert max(e for e, _, _ in cluster.tables()) == routers  # nothing pushed to be ignored

    cluster.tick()
    entry = ro.history()[-1]
    assert (f"reconciled: routers at epoch {routers}, store at epoch {stale['epoch']}"
            in entry["reason"])
    st = ro.status()
    assert st["epoch"] >= routers + 1 and st["phase"] == "shadow"
    # every replica now serves the store's table, at an epoch above what they had
    assert cluster.tables() == [(st["epoch"], st["weights"], st["shadow"])] * 2
    assert any("reconciled" in n["message"] for n in c.notifications)

    assert ro.verify()["ok"]
    assert ro.replay()["identical"]
    inputs = Store(old).ticks(st["rollout"])
    assert sum(1 for t in inputs if t.get("router_epoch") == routers) == 1
    # and the rollout goes on from there
    assert cluster.run_until({"canary"}) == "canary"
    assert cluster.tables()[0][0] == ro.status()["epoch"]
