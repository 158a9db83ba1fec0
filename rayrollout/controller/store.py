"""The durable store: rollouts, their state, judge states, tick inputs, the decision log and
the controller lease. ``RolloutStore`` is the interface; ``Store`` (here) is embedded SQLite,
the default, for one machine; ``PostgresStore`` (``rayrollout.controller.pgstore``) is
PostgreSQL, for clusters, where the controller may be restarted on any node. ``open_store``
picks one from a target (a path or a URL); ``describe_store`` says where a target keeps the
state without opening it.

``commit()`` writes the new state, the judges' state, the tick's inputs and the log entry in one
transaction, *before* the controller acts on the decision, so a restarted controller resumes at
the same step and epoch and loses no entry.

The decision log is append-only and hash-chained: each entry stores the SHA-256 of the previous
entry's hash and its own canonical JSON; ``verify()`` finds the first entry that was altered,
removed or reordered. A store holds one chain, whatever the number of models in it.

Only one controller of a model may write: ``acquire`` hands out a fencing token that grows
with every call, and ``create``, ``commit`` and ``mark_applied`` given a token that is no
longer the model's current one raise ``Fenced`` with nothing written (``storebase``).

A store failure is named (``StoreBusy``, ``StoreFull``, ``StoreCorrupt``, ``StoreError``) and a
failed transaction is never left open, so nothing uncommitted is read back or acted on. Tick
inputs are pruned by a ``TickRetention`` (log entries never are). SQLite: WAL, one file, folder
0700, files 0600.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from rayrollout import errors
from rayrollout._compat import sqlite_errorcode
from rayrollout.controller.storebase import (
    GENESIS,
    RolloutRow,
    SqlStore,
    TickRetention,
    canonical,
    chain_hash,
    redact_url,
)
from rayrollout.errors import ConfigError, StoreBusy, StoreCorrupt, StoreError, StoreUnavailable
from rayrollout.names import default_store_path

__all__ = ["GENESIS", "STORE_URL_ENV", "RolloutRow", "RolloutStore", "Store", "StoreUnavailable",
           "TickRetention", "canonical", "chain_hash", "describe_store", "open_store",
           "store_kind"]

log = logging.getLogger("rayrollout.store")

STORE_URL_ENV = "RAYROLLOUT_STORE_URL"  # the store when a spec names none (may hold a password)
_BUSY, _LOCKED, _CORRUPT, _FULL, _NOTADB = 5, 6, 11, 13, 26  # SQLite's primary result codes

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, digest TEXT NOT NULL,
    spec TEXT NOT NULL, state TEXT NOT NULL, initial TEXT NOT NULL, judges TEXT NOT NULL,
    applied_seq INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS rollouts_model ON rollouts(model, id);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, rollout INTEGER NOT NULL, ts REAL NOT NULL,
    body TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS log_rollout ON log(rollout, seq);
CREATE TABLE IF NOT EXISTS chain (
    id INTEGER PRIMARY KEY CHECK (id = 1), head TEXT NOT NULL, entries INTEGER NOT NULL);
INSERT OR IGNORE INTO chain (id, head, entries) VALUES (1, '{GENESIS}', 0);
CREATE TABLE IF NOT EXISTS ticks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, rollout INTEGER NOT NULL, now REAL NOT NULL,
    inputs BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS ticks_rollout ON ticks(rollout, id);
CREATE INDEX IF NOT EXISTS ticks_now ON ticks(now);
-- rollouts whose ticks the retention removed (they can no longer be replayed), and why
CREATE TABLE IF NOT EXISTS pruned (rollout INTEGER PRIMARY KEY, why TEXT NOT NULL);
-- each model's controller lease: the current fencing token, who holds it, since when
CREATE TABLE IF NOT EXISTS leases (
    model TEXT PRIMARY KEY, token INTEGER NOT NULL, owner TEXT NOT NULL, acquired REAL NOT NULL);
"""


class RolloutStore(Protocol):
    """What the controller, replay and the CLI use of a store (``Store``, ``PostgresStore``).
    Every write is one transaction; a failed one raises a ``StoreError`` with nothing written."""

    @property
    def where(self) -> str:
        """The store in messages: a path, or a URL without its password."""

    def close(self) -> None: ...

    def acquire(self, model: str, owner: str) -> int: ...

    def holds(self, model: str, token: int) -> bool: ...

    def create(self, model: str, digest: str, spec: dict[str, Any], state: dict[str, Any],
               token: int | None = None) -> int: ...

    def latest(self, model: str) -> RolloutRow | None: ...

    def get(self, rollout: int) -> RolloutRow | None: ...

    def rollouts(self, model: str) -> list[int]: ...

    def commit(self, rollout: int, state: dict[str, Any], judges: dict[str, Any], now: float,
               inputs: dict[str, Any] | None = None, decision: dict[str, Any] | None = None,
               token: int | None = None) -> None: ...

    def mark_applied(self, rollout: int, seq: int, token: int | None = None) -> None: ...

    def history(self, rollout: int | None = None, limit: int | None = None,
                before: int | None = None) -> list[dict[str, Any]]: ...

    def head(self) -> tuple[str, int]: ...

    def verify(self) -> tuple[bool, str]: ...

    def ticks(self, rollout: int) -> list[dict[str, Any]]: ...


_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def store_kind(target: str) -> str:
    """``"postgresql"`` or ``"sqlite"`` for a store target; ``ConfigError`` for another URL."""
    m = _URL.match(target)
    scheme = m.group(1).lower() if m else "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme == "sqlite":
        return "sqlite"
    raise ConfigError(f"store {redact_url(target)!r}: a store is a file path, sqlite:///path, "
                      f"or a postgresql:// URL (not {scheme}://)")


def _sqlite_path(target: str) -> str:
    path = target[len("sqlite://"):] if target.lower().startswith("sqlite://") else target
    if not path:
        raise ConfigError(f"store {target!r}: names no file (sqlite:///absolute/path.db)")
    return path if path == ":memory:" else os.path.expanduser(path)


def _resolve(target: str | None, model: str | None) -> str:
    if target is not None:
        return target
    env = os.environ.get(STORE_URL_ENV, "").strip()
    if env:
        return env
    return default_store_path(model if model is not None else "<model>")


def open_store(target: str | None, model: str) -> RolloutStore:
    """The store at ``target``: ``postgresql://``/``postgres://`` -> ``PostgresStore``;
    ``sqlite:///path`` or a plain path -> ``Store``. None: ``$RAYROLLOUT_STORE_URL`` if set,
    else ``model``'s default SQLite file on this node. Opened where this runs."""
    target = _resolve(target, model)
    if store_kind(target) == "postgresql":
        from rayrollout.controller.pgstore import PostgresStore

        return PostgresStore(target)
    return Store(_sqlite_path(target))


def describe_store(target: str | None, model: str | None = None) -> dict[str, Any]:
    """Where ``target`` keeps the state, without opening it: ``kind`` (sqlite, postgresql),
    ``node_local`` (a file on the disk of the node that opens it: lost with that node unless
    the disk is a volume that follows the controller) and ``where`` (never with a password)."""
    target = _resolve(target, model)
    kind = store_kind(target)
    if kind == "postgresql":
        return {"kind": kind, "node_local": False, "where": redact_url(target)}
    return {"kind": kind, "node_local": True, "where": _sqlite_path(target)}


class Store(SqlStore):
    """SQLite. Thread-safe (one connection, one lock); every write is one transaction. A write
    waits ``busy_timeout_s`` for another process's lock; ``retention`` defaults to the
    environment's."""

    BEGIN_WRITE = "BEGIN IMMEDIATE"  # takes the write lock first: writers are serialized

    def __init__(self, path: str | Path, retention: TickRetention | None = None,
                 busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.retention = retention if retention is not None else TickRetention.from_env()
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        if str(path) != ":memory:":  # an in-memory store has no files
            _private_folder(self.path.parent)
            _owner_only(self.path)
        self._db = self._connect()
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                self.journal_mode = self._setup()
                break
            except sqlite3.Error as e:
                # Switching to WAL is answered BUSY at once (no busy handler) while another
                # connection opens the same new file: the set-up is idempotent, so wait for it.
                busy = sqlite_errorcode(e) & 0xFF in (_BUSY, _LOCKED)
                if busy and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                self._db.close()
                raise self._error(e, "opening the store") from e
        for suffix in ("-wal", "-shm"):
            _owner_only(self.path.with_name(self.path.name + suffix), create=False)

    def __repr__(self) -> str:
        return f"Store({self.where!r})"

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(str(self.path), timeout=self.busy_timeout_s, isolation_level=None,
                               check_same_thread=False)

    def _setup(self) -> str:
        """WAL if granted; else say so and sync fully (NORMAL is unsafe with a journal)."""
        db = self._db
        mode = str(db.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        if mode == "wal":
            db.execute("PRAGMA synchronous=NORMAL")
        else:
            log.warning("the rollout store %s cannot use WAL (journal mode %r): synchronous=FULL,"
                        " and readers and writers will wait on each other", self.path, mode)
            db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        return mode

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _driver_error(self, e: BaseException) -> bool:
        return isinstance(e, sqlite3.Error)

    def _error(self, e: BaseException, what: str) -> StoreError:
        """Our error for a SQLite error, saying what was not done and what to do."""
        assert isinstance(e, sqlite3.Error)
        code = sqlite_errorcode(e) & 0xFF
        if code in (_BUSY, _LOCKED):
            return StoreBusy(f"the rollout store is busy: another process held its lock for "
                             f"over {self.busy_timeout_s:g} s; {what}: not done, try again")
        if code == _FULL:
            return errors.StoreFull(f"the rollout store {self.path} is full ({e}); {what}: not "
                                    "done; free disk space (the last commit is intact)")
        if code in (_CORRUPT, _NOTADB):
            kind = "not a SQLite database" if code == _NOTADB else "damaged"
            return StoreCorrupt(f"the rollout store {self.path} is {kind} ({e}); {what}: not done."
                                " Move it aside: restore a backup, or use a new store_path")
        return StoreError(f"the rollout store {self.path} failed ({e}); {what}: not done")

    def _insert_id(self, db: Any, sql: str, args: tuple[Any, ...]) -> int:
        return int(self._q(db, sql, args).lastrowid or 0)

    def _abandon(self, e: BaseException) -> bool:
        """Leave a failed transaction, which SQLite may have rolled back already (a full disk)."""
        if not self._db.in_transaction:
            return False
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:  # a fresh connection is the only clean state left
            log.exception("ROLLBACK failed on the rollout store %s; reconnecting", self.path)
            self._db.close()  # closing rolls back whatever was not committed
            self._db = self._connect()
        return False


def _private_folder(folder: Path) -> None:
    """Create ``folder`` and any missing parent as 0700; an existing folder is left as it is."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)  # mkdir's mode is subject to the umask


def _owner_only(path: Path, create: bool = True) -> None:
    """Make ``path`` 0600 (creating it empty, as SQLite would, if ``create``)."""
    if create:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    try:
        if path.stat().st_mode & 0o777 != 0o600:
            os.chmod(path, 0o600)
    except FileNotFoundError:
        return
    except OSError as e:  # not ours to change: say so, and go on
        log.warning("cannot make %s owner-only (0600): %s", path, e)
