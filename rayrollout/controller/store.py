"""The durable store: rollouts, their state, judge states, tick inputs and the decision log.

Embedded SQLite (WAL), one file. ``commit()`` writes the new state, the judges' state, the
tick's inputs and the log entry in one transaction, *before* the controller acts on the
decision, so a restarted controller resumes at the same step and epoch and loses no entry.

The decision log is append-only and hash-chained: each entry stores the SHA-256 of the previous
entry's hash and its own canonical JSON; ``verify()`` finds the first entry that was altered,
removed or reordered.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    digest TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    initial TEXT NOT NULL,
    judges TEXT NOT NULL,
    applied_seq INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rollouts_model ON rollouts(model, id);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout INTEGER NOT NULL,
    ts REAL NOT NULL,
    body TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_rollout ON log(rollout, seq);
CREATE TABLE IF NOT EXISTS chain (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    head TEXT NOT NULL,
    entries INTEGER NOT NULL
);
INSERT OR IGNORE INTO chain (id, head, entries) VALUES (1, '{GENESIS}', 0);
CREATE TABLE IF NOT EXISTS ticks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout INTEGER NOT NULL,
    now REAL NOT NULL,
    inputs BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ticks_rollout ON ticks(rollout, id);
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


class Store:
    """Thread-safe (one connection, one lock); every write is one transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- rollouts --------------------------------------------------------------------------------

    def create(self, model: str, digest: str, spec: dict[str, Any], state: dict[str, Any]) -> int:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO rollouts (model, digest, spec, state, initial, judges, created,"
                " updated) VALUES (?, ?, ?, ?, ?, '{}', ?, ?)",
                (model, digest, canonical(spec), canonical(state), canonical(state), now, now),
            )
            return int(cur.lastrowid or 0)

    def latest(self, model: str) -> RolloutRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, model, digest, spec, state, judges, applied_seq, initial FROM rollouts"
                " WHERE model = ? ORDER BY id DESC LIMIT 1",
                (model,),
            ).fetchone()
        return _row(row)

    def get(self, rollout: int) -> RolloutRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, model, digest, spec, state, judges, applied_seq, initial FROM rollouts"
                " WHERE id = ?",
                (rollout,),
            ).fetchone()
        return _row(row)

    def rollouts(self, model: str) -> list[int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM rollouts WHERE model = ? ORDER BY id", (model,)
            ).fetchall()
        return [int(r[0]) for r in rows]

    def commit(
        self,
        rollout: int,
        state: dict[str, Any],
        judges: dict[str, Any],
        now: float,
        inputs: dict[str, Any] | None = None,
        decision: dict[str, Any] | None = None,
    ) -> None:
        """Persist one tick: inputs (for replay), new state and judges, and the log entry."""
        with self._tx() as db:
            if inputs is not None:
                blob = zlib.compress(canonical(inputs).encode(), 6)
                db.execute(
                    "INSERT INTO ticks (rollout, now, inputs) VALUES (?, ?, ?)",
                    (rollout, now, blob),
                )
            db.execute(
                "UPDATE rollouts SET state = ?, judges = ?, updated = ? WHERE id = ?",
                (canonical(state), canonical(judges), time.time(), rollout),
            )
            if decision is not None:
                self._append(db, rollout, now, decision)

    def mark_applied(self, rollout: int, seq: int) -> None:
        """Record that the actions of decision ``seq`` have been carried out."""
        with self._tx() as db:
            db.execute("UPDATE rollouts SET applied_seq = ? WHERE id = ?", (seq, rollout))

    # -- log -------------------------------------------------------------------------------------

    def _append(
        self, db: sqlite3.Connection, rollout: int, ts: float, body: dict[str, Any]
    ) -> None:
        last = db.execute("SELECT hash FROM log ORDER BY seq DESC LIMIT 1").fetchone()
        prev = last[0] if last else GENESIS
        text = canonical(body)
        h = chain_hash(prev, text)
        db.execute(
            "INSERT INTO log (rollout, ts, body, prev, hash) VALUES (?, ?, ?, ?, ?)",
            (rollout, ts, text, prev, h),
        )
        db.execute("UPDATE chain SET head = ?, entries = entries + 1 WHERE id = 1", (h,))

    def history(
        self, rollout: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        q = "SELECT seq, rollout, ts, body, hash FROM log"
        args: list[Any] = []
        if rollout is not None:
            q += " WHERE rollout = ?"
            args.append(rollout)
        q += " ORDER BY seq"
        with self._lock:
            rows = self._db.execute(q, args).fetchall()
        if limit is not None:
            rows = rows[-limit:]
        return [
            {"log_seq": s, "rollout": r, "ts": ts, "hash": h, **json.loads(body)}
            for s, r, ts, body, h in rows
        ]

    def head(self) -> tuple[str, int]:
        """The hash of the newest entry and the number of entries (publish it to anchor)."""
        with self._lock:
            h, n = self._db.execute("SELECT head, entries FROM chain WHERE id = 1").fetchone()
        return str(h), int(n)

    def verify(self) -> tuple[bool, str]:
        """Check the whole chain and that it ends at the recorded head; name the first break."""
        prev = GENESIS
        head, entries = self.head()
        with self._lock:
            rows = self._db.execute("SELECT seq, body, prev, hash FROM log ORDER BY seq").fetchall()
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
        with self._lock:
            rows = self._db.execute(
                "SELECT inputs FROM ticks WHERE rollout = ? ORDER BY id", (rollout,)
            ).fetchall()
        return [json.loads(zlib.decompress(r[0])) for r in rows]


def _row(row: tuple[Any, ...] | None) -> RolloutRow | None:
    if row is None:
        return None
    i, model, digest, spec, state, judges, applied, initial = row
    return RolloutRow(int(i), model, digest, json.loads(spec), json.loads(state),
                      json.loads(judges), int(applied), json.loads(initial))
