"""The controller lease and its fencing token, and writers sharing one store, on both backends
(``stores``: SQLite, PostgreSQL): a stale controller's write raises ``Fenced`` and writes
nothing; the newest one proceeds; tokens only grow, across reopening too; two connections
writing at once keep one intact chain."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from rayrollout.controller.store import GENESIS, RolloutStore, chain_hash
from rayrollout.errors import Conflict, Fenced, StoreBusy, StoreError, http_status
from tests.unit.controller.conftest import Stores

STATE = {"phase": "canary", "n": 0}


def tick(store: RolloutStore, rid: int, n: int, token: int | None = None) -> None:
    store.commit(rid, {**STATE, "n": n}, {"j": n}, float(n), {"now": n},
                 {"seq": n, "reason": f"tick {n}"}, token=token)


def snapshot(store: RolloutStore, rid: int) -> tuple[Any, ...]:
    return store.get(rid), store.history(), store.ticks(rid), store.head(), store.rollouts("m")


def test_tokens_grow_per_model_and_across_reopening(stores: Stores) -> None:
    a = stores()
    assert [a.acquire("m", "first"), a.acquire("m", "second"), a.acquire("other", "x")] == [
        1, 2, 1]
    a.close()
    b = stores()  # a controller restarted anywhere opens the store afresh
    t = b.acquire("m", "third")
    assert t == 3 and b.holds("m", 3) and not b.holds("m", 2) and not b.holds("nobody", 1)
    assert b.holds("other", 1)


def test_a_stale_token_writes_nothing_and_the_newest_proceeds(stores: Stores) -> None:
    old = stores()
    t1 = old.acquire("m", "old controller")
    rid = old.create("m", "d", {}, STATE, token=t1)
    tick(old, rid, 1, token=t1)
    old.mark_applied(rid, 1, token=t1)
    new = stores()  # Ray started a newer incarnation; the old one still runs
    t2 = new.acquire("m", "new controller")
    assert t2 > t1
    before = snapshot(new, rid)
    for write in (lambda: tick(old, rid, 2, token=t1),
                  lambda: old.mark_applied(rid, 2, token=t1),
                  lambda: old.create("m", "d2", {}, STATE, token=t1)):
        with pytest.raises(Fenced, match=f"not token {t1}: token {t2} \\(new controller\\)") as e:
            write()
        assert "nothing written" in str(e.value)
        assert isinstance(e.value, Conflict) and http_status(e.value) == 409
    assert snapshot(new, rid) == before and snapshot(old, rid) == before
    tick(new, rid, 2, token=t2)  # the newest controller goes on
    new.mark_applied(rid, 2, token=t2)
    row = new.get(rid)
    assert row is not None and row.state["n"] == 2 and row.applied_seq == 2
    assert [h["seq"] for h in new.history(rid)] == [1, 2] and new.verify()[0]


def test_writes_without_a_token_are_not_fenced(stores: Stores) -> None:
    """What callers that do not pass a token yet (and replay, and tools) rely on."""
    store = stores()
    store.acquire("m", "someone")
    rid = store.create("m", "d", {}, STATE)
    tick(store, rid, 1)
    store.mark_applied(rid, 1)
    assert store.get(rid).applied_seq == 1


def test_a_token_without_a_lease_or_for_an_unknown_rollout_is_refused(stores: Stores) -> None:
    store = stores()
    with pytest.raises(Fenced, match="no controller holds it"):
        store.create("m", "d", {}, STATE, token=1)
    assert store.rollouts("m") == []
    t = store.acquire("m", "me")
    with pytest.raises(StoreError, match="rollout 99 is not in the store"):
        tick(store, 99, 1, token=t)
    assert store.history() == []


def test_the_lease_cannot_change_hands_in_the_middle_of_a_fenced_write(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newer controller's ``acquire`` waits for the write in flight (and so reads what it
    wrote); once it has the lease, the old controller's next write is fenced."""
    old = stores()
    t1 = old.acquire("m", "old")
    rid = old.create("m", "d", {}, STATE, token=t1)
    newer = stores(busy_timeout_s=0.1)  # the newer controller waits at most 0.1 s for a lock
    inside, release = threading.Event(), threading.Event()
    real = old._prune_old  # runs inside the commit's transaction, after the fence

    def paused(db: Any, now: float) -> None:
        inside.set()
        assert release.wait(30)
        real(db, now)

    monkeypatch.setattr(old, "_prune_old", paused)
    writer = threading.Thread(target=tick, args=(old, rid, 1, t1))
    writer.start()
    try:
        assert inside.wait(30)
        with pytest.raises(StoreBusy):
            newer.acquire("m", "new")
    finally:
        release.set()
        writer.join(30)
    monkeypatch.setattr(old, "_prune_old", real)
    t2 = newer.acquire("m", "new")
    assert newer.get(rid).state["n"] == 1
    with pytest.raises(Fenced):
        tick(old, rid, 2, token=t1)
    tick(newer, rid, 2, token=t2)
    assert [h["seq"] for h in newer.history(rid)] == [1, 2] and newer.verify()[0]


def test_two_writers_at_once_keep_one_intact_chain(stores: Stores) -> None:
    """Two connections (two controllers of two models sharing the store) append at the same
    time: every entry is chained onto the one before it, none is lost."""
    n = 25
    errors: list[BaseException] = []

    def write(model: str) -> None:
        try:
            store = stores(busy_timeout_s=30)
            rid = store.create(model, "d", {}, STATE)
            for i in range(1, n + 1):
                tick(store, rid, i)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(m,)) for m in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    store = stores()
    ok, msg = store.verify()
    assert ok and msg.startswith(f"{2 * n} entries"), msg
    prev = GENESIS
    for body, p, h in stores.sql("SELECT body, prev, hash FROM log ORDER BY seq"):
        assert p == prev and h == chain_hash(prev, body)
        prev = h
    assert store.head() == (prev, 2 * n)
    for model in ("a", "b"):
        (rid,) = store.rollouts(model)
        assert [h["seq"] for h in store.history(rid)] == list(range(1, n + 1))
