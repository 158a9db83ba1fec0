"""The store when it fails: busy, full, corrupt, no WAL; tick retention, paging of the log,
and file permissions. Busy stores, rows with invalid contents, retention and paging run on
both backends (``stores``: a real SQLite file, a real PostgreSQL database); a full disk, a
damaged or foreign file, WAL, SQLite's work per page and file permissions are SQLite's own and
run on SQLite only (``db``, ``store_file``)."""

from __future__ import annotations

import logging
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rayrollout.controller.store import RolloutStore, Store, TickRetention
from rayrollout.errors import (
    ConfigError,
    InputsPruned,
    StoreBusy,
    StoreCorrupt,
    StoreError,
    StoreFull,
    UnavailableError,
    http_status,
)
from tests.unit.controller.conftest import Stores

STATE = {"phase": "canary", "n": 0}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "rollouts.db"


@pytest.fixture
def store_file(db: Path) -> Iterator[Store]:
    """A SQLite store (for the tests of what only SQLite does)."""
    s = Store(db, busy_timeout_s=0.05)
    yield s
    s.close()


@pytest.fixture
def store(stores: Stores) -> RolloutStore:
    """A store on either backend that waits at most 0.05 s for another writer."""
    return stores(busy_timeout_s=0.05)


def tick(store: RolloutStore, rid: int, n: int, now: float | None = None, **kw: Any) -> None:
    store.commit(rid, {**STATE, "n": n}, {"j": n}, float(n) if now is None else now,
                 {"now": n}, {"seq": n, "reason": f"tick {n}"}, **kw)


def seen_from_outside(db: Path, rid: int) -> tuple[str, int]:
    """The committed state and number of log entries, as a fresh process would see them."""
    raw = sqlite3.connect(db)
    state = raw.execute("SELECT state FROM rollouts WHERE id = ?", (rid,)).fetchone()[0]
    n = raw.execute("SELECT count(*) FROM log").fetchone()[0]
    raw.close()
    return state, n


# -- busy ----------------------------------------------------------------------------------------


def test_a_busy_store_says_so_and_stays_usable(stores: Stores, store: RolloutStore) -> None:
    rid = store.create("m", "d", {}, STATE)
    tick(store, rid, 1)
    with stores.write_locked(), pytest.raises(StoreBusy, match="busy") as e:
        tick(store, rid, 2)
    assert isinstance(e.value, UnavailableError) and http_status(e.value) == 503
    tick(store, rid, 3)  # usable again, and the failed tick left nothing
    assert [h["seq"] for h in store.history(rid)] == [1, 3]
    assert store.verify()[0]


class NoWal(sqlite3.Connection):
    """A connection on which WAL is refused (as on some network file systems)."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.replace(" ", "").lower() == "pragmajournal_mode=wal":
            sql = "PRAGMA journal_mode"
        return super().execute(sql, *args)


class NoWalStore(Store):
    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(str(self.path), timeout=self.busy_timeout_s, isolation_level=None,
                               check_same_thread=False, factory=NoWal)


def test_without_wal_the_store_warns_syncs_fully_and_survives_a_busy_commit(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "rayrollout.store"):
        store = NoWalStore(db, busy_timeout_s=0.05)
    assert store.journal_mode == "delete" and "WAL" in caplog.text
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    rid = store.create("m", "d", {}, STATE)
    tick(store, rid, 1)
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM log").fetchone()  # a reader blocks the COMMIT
    with pytest.raises(StoreBusy):
        tick(store, rid, 2)
    reader.execute("COMMIT")
    reader.close()
    assert seen_from_outside(db, rid) == ('{"n":1,"phase":"canary"}', 1)
    tick(store, rid, 3)  # the connection is not left inside the failed transaction
    assert [h["seq"] for h in store.history(rid)] == [1, 3]
    assert store.get(rid).state["n"] == 3  # type: ignore[union-attr]
    store.close()


# -- full disk -----------------------------------------------------------------------------------


def test_a_full_disk_names_the_real_error_and_keeps_the_last_commit(
        db: Path, store_file: Store) -> None:
    store = store_file
    rid = store.create("m", "d", {}, STATE)
    tick(store, rid, 1)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
    with pytest.raises(StoreFull, match="full") as e:
        store.commit(rid, {**STATE, "n": 2}, {"big": "x" * 200_000}, 2.0, {"now": 2},
                     {"seq": 2})
    assert "rollback" not in str(e.value).lower()  # not hidden behind a failed ROLLBACK
    assert isinstance(e.value, StoreError) and http_status(e.value) == 500
    assert store.get(rid).state["n"] == 1  # type: ignore[union-attr]
    assert seen_from_outside(db, rid) == ('{"n":1,"phase":"canary"}', 1)
    store._db.execute("PRAGMA max_page_count = 1073741823")  # space again
    tick(store, rid, 3)
    assert [h["seq"] for h in store.history(rid)] == [1, 3] and store.verify()[0]


# -- corruption ----------------------------------------------------------------------------------


def test_a_file_that_is_not_a_database_is_a_clear_error(db: Path) -> None:
    db.parent.mkdir()
    db.write_bytes(b"not a database at all " * 400)
    with pytest.raises(StoreCorrupt, match="not a SQLite database") as e:
        Store(db)
    assert str(db) in str(e.value) and "backup" in str(e.value)


def test_a_damaged_database_is_a_clear_error(db: Path, store_file: Store) -> None:
    store = store_file
    rid = store.create("m", "d", {}, STATE)
    for n in range(1, 30):
        tick(store, rid, n)
    store.close()
    with db.open("r+b") as f:  # keep the header, overwrite the pages
        f.seek(100)
        f.write(b"\xff" * 20_000)
    with pytest.raises(StoreCorrupt):
        s = Store(db)
        s.latest("m")
        s.history()


@pytest.mark.parametrize("column", ["state", "spec", "judges"])
def test_a_row_with_invalid_json_is_a_clear_error(
        stores: Stores, store: RolloutStore, column: str) -> None:
    rid = store.create("m", "d", {}, STATE)
    stores.sql(f"UPDATE rollouts SET {column} = '{{oops' WHERE id = ?", (rid,))
    for read in (lambda: store.latest("m"), lambda: store.get(rid)):
        with pytest.raises(StoreCorrupt, match=f"rollout {rid}.*{column}"):
            read()


def test_a_log_entry_or_tick_with_invalid_contents_is_a_clear_error(
        stores: Stores, store: RolloutStore) -> None:
    rid = store.create("m", "d", {}, STATE)
    tick(store, rid, 1)
    tick(store, rid, 2)
    stores.sql("UPDATE log SET body = 'nope' WHERE seq = 2")
    stores.sql("UPDATE ticks SET inputs = ? WHERE id = 1", (b"\x00\xff",))
    with pytest.raises(StoreCorrupt, match="log entry 2"):
        store.history(rid)
    with pytest.raises(StoreCorrupt, match=f"tick .* of rollout {rid}"):
        store.ticks(rid)


# -- retention and paging ------------------------------------------------------------------------


def test_ticks_of_old_rollouts_are_pruned_but_their_log_is_kept(stores: Stores) -> None:
    store = stores(retention=TickRetention(keep_rollouts=2))
    ids = []
    for _ in range(4):
        rid = store.create("m", "d", {}, STATE)
        ids.append(rid)
        for n in range(1, 4):
            tick(store, rid, n)
    other = store.create("other", "d", {}, STATE)  # another model's rollouts do not count
    tick(store, other, 1)
    for old in ids[:2]:
        with pytest.raises(InputsPruned, match=f"rollout {old}.*pruned"):
            store.ticks(old)
        assert len(store.history(old)) == 3  # the decisions themselves stay
    assert [len(store.ticks(r)) for r in ids[2:]] == [3, 3] and len(store.ticks(other)) == 1
    assert store.verify()[0]
    assert stores.sql("SELECT count(*) FROM ticks") == [(7,)]


def test_ticks_older_than_max_age_are_pruned(stores: Stores) -> None:
    store = stores(retention=TickRetention(keep_rollouts=None, max_age_s=10.0))
    rid = store.create("m", "d", {}, STATE)
    for n in range(0, 30, 5):
        tick(store, rid, n)
    with pytest.raises(InputsPruned, match="max_age_s"):
        store.ticks(rid)
    assert len(store.history(rid)) == 6
    assert stores.sql("SELECT now FROM ticks ORDER BY id") == [(15.0,), (20.0,), (25.0,)]


@pytest.mark.parametrize(("env", "field"), [
    ({"RAYROLLOUT_TICKS_KEEP_ROLLOUTS": "two"}, "RAYROLLOUT_TICKS_KEEP_ROLLOUTS"),
    ({"RAYROLLOUT_TICKS_KEEP_ROLLOUTS": "0"}, "RAYROLLOUT_TICKS_KEEP_ROLLOUTS"),
    ({"RAYROLLOUT_TICKS_MAX_AGE_S": "-1"}, "RAYROLLOUT_TICKS_MAX_AGE_S"),
    ({"RAYROLLOUT_TICKS_MAX_AGE_S": "nan"}, "RAYROLLOUT_TICKS_MAX_AGE_S"),
])
def test_retention_from_the_environment(env: dict[str, str], field: str) -> None:
    assert TickRetention.from_env({}) == TickRetention()
    assert TickRetention.from_env({"RAYROLLOUT_TICKS_KEEP_ROLLOUTS": "3",
                                   "RAYROLLOUT_TICKS_MAX_AGE_S": "86400"}) == TickRetention(
        keep_rollouts=3, max_age_s=86400.0)
    with pytest.raises(ConfigError, match=field):
        TickRetention.from_env(env)


def test_history_pages_in_sql(store: RolloutStore) -> None:
    rid = store.create("m", "d", {}, STATE)
    for n in range(1, 11):
        tick(store, rid, n)
    assert [h["seq"] for h in store.history(rid, limit=3)] == [8, 9, 10]
    page = store.history(rid, limit=3, before=8)
    assert [h["seq"] for h in page] == [5, 6, 7]
    assert [h["seq"] for h in store.history(rid, before=3)] == [1, 2]
    assert store.history(rid, limit=3, before=1) == []


def vm_steps(store: Store, read: Any) -> int:
    """How much work SQLite does for ``read`` (virtual-machine steps, in thousands)."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    store._db.set_progress_handler(count, 1000)
    read()
    store._db.set_progress_handler(None, 0)
    return steps


def test_a_page_of_history_costs_the_same_however_long_the_log(store_file: Store) -> None:
    store = store_file
    rid = store.create("m", "d", {}, STATE)
    for n in range(1, 21):
        tick(store, rid, n)
    short = vm_steps(store, lambda: store.history(rid, limit=5))
    for n in range(21, 2001):
        tick(store, rid, n)
    assert vm_steps(store, lambda: store.history(rid, limit=5)) <= short + 1
    assert vm_steps(store, lambda: store.history(None, limit=5)) <= short + 1


# -- permissions ---------------------------------------------------------------------------------


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_the_store_folder_is_private_and_its_files_owner_only(db: Path, store_file: Store
                                                              ) -> None:
    store = store_file
    rid = store.create("m", "d", {}, STATE)
    tick(store, rid, 1)
    assert mode(db.parent) == 0o700
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    assert all(f.exists() for f in files)
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_an_existing_store_file_is_made_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    raw = sqlite3.connect(db)
    raw.execute("CREATE TABLE x (y)")
    raw.close()
    db.chmod(0o644)
    Store(db).close()
    assert mode(db) == 0o600 and mode(tmp_path) == mode(tmp_path)  # an existing folder is kept


def test_an_in_memory_store_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.chdir(tmp_path)
    s = Store(":memory:")
    rid = s.create("m", "d", {}, STATE)
    tick(s, rid, 1)
    assert s.get(rid) is not None and list(tmp_path.iterdir()) == []
    s.close()
