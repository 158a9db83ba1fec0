"""The durable store: rollouts, their state, judge states, tick inputs and the decision log.

Embedded SQLite (WAL), one file. ``commit()`` writes the new state, the judges' state, the
tick's inputs and the log entry in one transaction, *before* the controller acts on the
decision, so a restarted controller resumes at the same step and epoch and loses no entry.

The decision log is append-only and hash-chained: each entry stores the SHA-256 of the previous
entry's hash and its own canonical JSON; ``verify()`` finds the first entry that was altered,
removed or reordered.

A SQLite failure is named (``StoreBusy``, ``StoreFull``, ``StoreCorrupt``) and a failed
transaction is never left open, so nothing uncommitted is read back or acted on. Tick inputs
are pruned by a ``TickRetention`` (log entries never are). Folder 0700, files 0600.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rayrollout import errors
from rayrollout._compat import sqlite_errorcode
from rayrollout.errors import ConfigError, InputsPruned, StoreBusy, StoreCorrupt, StoreError

log = logging.getLogger("rayrollout.store")

GENESIS = "0" * 64
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
"""


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def chain_hash(prev: str, body: str) -> str:
    return hashlib.sha256((prev + body).encode()).hexdigest()


@dataclass(frozen=True)
class RolloutRow:
    id: int
    model: str
    digest: str
    spec: dict[str, Any]
    state: dict[str, Any]
    judges: dict[str, Any]
    applied_seq: int
    initial: dict[str, Any]


@dataclass(frozen=True)
class TickRetention:
    """Which tick inputs (what replay needs) the store keeps; log entries are always kept.
    The newest ``keep_rollouts`` rollouts' of each model, none older than ``max_age_s`` on the
    controller's clock (None: no such limit). A pruned rollout can no longer be replayed."""

    keep_rollouts: int | None = 10
    max_age_s: float | None = None

    def __post_init__(self) -> None:
        k, age = self.keep_rollouts, self.max_age_s
        if k is not None and (type(k) is not int or k < 1):
            raise ConfigError(f"keep_rollouts={k!r} must be a whole number >= 1 (or None)")
        if age is not None and not (type(age) in (int, float) and math.isfinite(age) and age > 0):
            raise ConfigError(f"max_age_s={age!r} must be a number of seconds > 0 (or None)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TickRetention:
        """From ``RAYROLLOUT_TICKS_{KEEP_ROLLOUTS,MAX_AGE_S}`` (unset: default; none: no limit)."""
        env = os.environ if environ is None else environ
        out: dict[str, Any] = {}
        for var, field, kind in (("RAYROLLOUT_TICKS_KEEP_ROLLOUTS", "keep_rollouts", int),
                                 ("RAYROLLOUT_TICKS_MAX_AGE_S", "max_age_s", float)):
            text = env.get(var, "").strip()
            if not text:
                continue
            try:
                out[field] = None if text.lower() == "none" else kind(text)
                cls(**{field: out[field]})
            except (ValueError, ConfigError):
                what = "a whole number >= 1" if kind is int else "a number of seconds > 0"
                raise ConfigError(f"{var}={text[:40]!r}: must be {what}, or 'none'") from None
        return cls(**out)


class Store:
    """Thread-safe (one connection, one lock); every write is one transaction. A write waits
    ``busy_timeout_s`` for another process's lock; ``retention`` defaults to the environment's."""

    def __init__(self, path: str | Path, retention: TickRetention | None = None,
                 busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.retention = retention if retention is not None else TickRetention.from_env()
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        if str(path) != ":memory:":  # an in-memory store has no files
            _private_folder(self.path.parent)
            _owner_only(self.path)
        self._db = self._connect()
        try:
            self.journal_mode = self._setup()
        except sqlite3.Error as e:
            self._db.close()
            raise self._error(e, "opening the store") from e
        for suffix in ("-wal", "-shm"):
            _owner_only(self.path.with_name(self.path.name + suffix), create=False)

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

    def _error(self, e: sqlite3.Error, what: str) -> StoreError:
        """Our error for a SQLite error, saying what was not done and what to do."""
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

    @contextmanager
    def _read(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as e:
                raise self._error(e, what) from e

    @contextmanager
    def _tx(self, what: str) -> Iterator[sqlite3.Connection]:
        """One transaction: committed whole, or rolled back whole and the error raised."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as e:
                self._abandon()
                if isinstance(e, sqlite3.Error):
                    raise self._error(e, what) from e
                raise

    def _abandon(self) -> None:
        """Leave a failed transaction, which SQLite may have rolled back already (a full disk)."""
        if not self._db.in_transaction:
            return
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:  # a fresh connection is the only clean state left
            log.exception("ROLLBACK failed on the rollout store %s; reconnecting", self.path)
            self._db.close()  # closing rolls back whatever was not committed
            self._db = self._connect()

    # -- rollouts --------------------------------------------------------------------------------

    def create(self, model: str, digest: str, spec: dict[str, Any], state: dict[str, Any]) -> int:
        now = time.time()
        with self._tx("creating a rollout") as db:
            cur = db.execute(
                "INSERT INTO rollouts (model, digest, spec, state, initial, judges, created,"
                " updated) VALUES (?, ?, ?, ?, ?, '{}', ?, ?)",
                (model, digest, canonical(spec), canonical(state), canonical(state), now, now),
            )
            self._prune_rollouts(db, model)
            return int(cur.lastrowid or 0)

    def latest(self, model: str) -> RolloutRow | None:
        return self._row("WHERE model = ? ORDER BY id DESC LIMIT 1", model)

    def get(self, rollout: int) -> RolloutRow | None:
        return self._row("WHERE id = ?", rollout)

    def _row(self, where: str, arg: Any) -> RolloutRow | None:
        with self._read("reading a rollout") as db:
            row = db.execute("SELECT id, model, digest, applied_seq, spec, state, judges, initial"
                             " FROM rollouts " + where, (arg,)).fetchone()
        if row is None:
            return None
        i, model, digest, applied = row[:4]
        doc = {}
        for name, text in zip(("spec", "state", "judges", "initial"), row[4:], strict=True):
            try:
                doc[name] = json.loads(text)
            except (TypeError, ValueError) as e:
                raise StoreCorrupt(f"rollout {i} in the store {self.path}: column {name} is not "
                                   f"valid JSON ({e}); restore a backup") from None
        return RolloutRow(int(i), model, digest, doc["spec"], doc["state"], doc["judges"],
                          int(applied), doc["initial"])

    def rollouts(self, model: str) -> list[int]:
        with self._read("listing rollouts") as db:
            rows = db.execute("SELECT id FROM rollouts WHERE model = ? ORDER BY id",
                              (model,)).fetchall()
        return [int(r[0]) for r in rows]

    def commit(self, rollout: int, state: dict[str, Any], judges: dict[str, Any], now: float,
               inputs: dict[str, Any] | None = None,
               decision: dict[str, Any] | None = None) -> None:
        """Persist one tick: inputs (for replay), new state and judges, and the log entry."""
        with self._tx("committing a tick") as db:
            if inputs is not None:
                blob = zlib.compress(canonical(inputs).encode(), 6)
                db.execute("INSERT INTO ticks (rollout, now, inputs) VALUES (?, ?, ?)",
                           (rollout, now, blob))
            db.execute("UPDATE rollouts SET state = ?, judges = ?, updated = ? WHERE id = ?",
                       (canonical(state), canonical(judges), time.time(), rollout))
            if decision is not None:
                self._append(db, rollout, now, decision)
            self._prune_old(db, now)

    def mark_applied(self, rollout: int, seq: int) -> None:
        """Record that the actions of decision ``seq`` have been carried out."""
        with self._tx("marking a decision applied") as db:
            db.execute("UPDATE rollouts SET applied_seq = ? WHERE id = ?", (seq, rollout))

    def _prune_rollouts(self, db: sqlite3.Connection, model: str) -> None:
        """Drop the ticks of every rollout of ``model`` but the newest ``keep_rollouts``."""
        k = self.retention.keep_rollouts
        if k is None:
            return
        old = db.execute("SELECT id FROM (SELECT id FROM rollouts WHERE model = ? ORDER BY id"
                         " DESC LIMIT -1 OFFSET ?) AS o WHERE EXISTS (SELECT 1 FROM ticks WHERE"
                         " rollout = o.id)", (model, k)).fetchall()
        why = f"keep_rollouts={k}: the ticks of the newest {k} rollouts of {model!r} are kept"
        for (rid,) in old:
            db.execute("INSERT OR IGNORE INTO pruned (rollout, why) VALUES (?, ?)", (rid, why))
            db.execute("DELETE FROM ticks WHERE rollout = ?", (rid,))

    def _prune_old(self, db: sqlite3.Connection, now: float) -> None:
        """Drop ticks older than ``max_age_s`` (on the clock the ticks were recorded with)."""
        age = self.retention.max_age_s
        if age is None:
            return
        cutoff = now - age
        hit = db.execute("SELECT DISTINCT rollout FROM ticks WHERE now < ?", (cutoff,)).fetchall()
        if not hit:
            return
        why = f"max_age_s={age:g}: older ticks are dropped"
        db.executemany("INSERT OR IGNORE INTO pruned (rollout, why) VALUES (?, ?)",
                       [(rid, why) for (rid,) in hit])
        db.execute("DELETE FROM ticks WHERE now < ?", (cutoff,))

    # -- log -------------------------------------------------------------------------------------

    def _append(self, db: sqlite3.Connection, rollout: int, ts: float, body: dict[str, Any]
                ) -> None:
        last = db.execute("SELECT hash FROM log ORDER BY seq DESC LIMIT 1").fetchone()
        prev = last[0] if last else GENESIS
        text = canonical(body)
        h = chain_hash(prev, text)
        db.execute("INSERT INTO log (rollout, ts, body, prev, hash) VALUES (?, ?, ?, ?, ?)",
                   (rollout, ts, text, prev, h))
        db.execute("UPDATE chain SET head = ?, entries = entries + 1 WHERE id = 1", (h,))

    def history(self, rollout: int | None = None, limit: int | None = None,
                before: int | None = None) -> list[dict[str, Any]]:
        """Log entries, oldest first: of one rollout (None: all), only those with ``log_seq``
        below ``before``, and of those the newest ``limit`` (None: all). Paged in SQL."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit={limit} must be >= 0")
        conds = (("rollout = ?", rollout), ("seq < ?", before))
        args: list[Any] = [v for _, v in conds if v is not None]
        q = "SELECT seq, rollout, ts, body, hash FROM log WHERE " + " AND ".join(
            [c for c, v in conds if v is not None] + ["1"])
        q += " ORDER BY seq" if limit is None else " ORDER BY seq DESC LIMIT ?"
        args += [] if limit is None else [limit]
        with self._read("reading the decision log") as db:
            rows = db.execute(q, args).fetchall()
        if limit is not None:
            rows.reverse()
        return [self._entry(*row) for row in rows]

    def _entry(self, seq: int, rollout: int, ts: float, body: str, h: str) -> dict[str, Any]:
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            raise StoreCorrupt(f"log entry {seq} in the store {self.path} is not valid JSON "
                               f"({e}); 'rayrollout verify' checks the chain") from None
        return {"log_seq": seq, "rollout": rollout, "ts": ts, "hash": h, **doc}

    def head(self) -> tuple[str, int]:
        """The hash of the newest entry and the number of entries (publish it to anchor)."""
        with self._read("reading the log's head") as db:
            h, n = db.execute("SELECT head, entries FROM chain WHERE id = 1").fetchone()
        return str(h), int(n)

    def verify(self) -> tuple[bool, str]:
        """Check the whole chain and that it ends at the recorded head; name the first break."""
        prev = GENESIS
        head, entries = self.head()
        with self._read("verifying the log") as db:
            rows = db.execute("SELECT seq, body, prev, hash FROM log ORDER BY seq").fetchall()
        for seq, body, stored_prev, h in rows:
            if stored_prev != prev:
                return False, f"entry {seq}: previous-hash link broken (an entry was removed?)"
            if chain_hash(prev, body) != h:
                return False, f"entry {seq}: contents do not match its hash (altered)"
            prev = h
        if prev != head or len(rows) != entries:
            return False, (f"the chain ends after {len(rows)} entries at {prev[:12]}, but "
                           f"{entries} entries ending at {head[:12]} were written (truncated?)")
        return True, f"{len(rows)} entries, chain intact (head {head[:12]})"

    def ticks(self, rollout: int) -> list[dict[str, Any]]:
        """The recorded inputs of each tick of ``rollout`` (``InputsPruned``: some are gone)."""
        with self._read("reading tick inputs") as db:
            pruned = db.execute("SELECT why FROM pruned WHERE rollout = ?", (rollout,)).fetchone()
            if pruned is not None:
                raise InputsPruned(f"the recorded inputs of rollout {rollout} were pruned ("
                                   f"{pruned[0]}); its log is kept, but it cannot be replayed")
            rows = db.execute("SELECT id, inputs FROM ticks WHERE rollout = ? ORDER BY id",
                              (rollout,)).fetchall()
        out = []
        for tid, blob in rows:
            try:
                out.append(json.loads(zlib.decompress(blob)))
            except (zlib.error, TypeError, ValueError) as e:
                raise StoreCorrupt(f"tick {tid} of rollout {rollout} in the store {self.path}: "
                                   f"its inputs cannot be read ({e})") from None
        return out


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
