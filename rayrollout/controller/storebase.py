"""What the two rollout stores share: the schema's rules, the hash chain, canonical JSON, the
lease, paging, retention and ``verify``. ``SqlStore`` holds all of it over a DB-API
connection; a backend (``store.Store``: SQLite, ``pgstore.PostgresStore``: PostgreSQL) supplies
the connection, its schema, how a write transaction begins, how a row is locked for the rest
of it, and how its driver's errors are named.

Guarantees every backend keeps:

* one write = one transaction, committed whole or rolled back whole, and the connection is
  never left inside a failed one;
* writers are serialized on the chain row (the log's head), so two writers cannot fork the
  chain; ``verify`` reads the chain and its head in one snapshot;
* the controller lease: ``acquire`` returns a fencing token larger than any issued before for
  that model; a write given a token that is not the model's current one raises ``Fenced``
  inside its transaction, with nothing written, and holds the lease row until it commits, so a
  newer controller's ``acquire`` waits for it (and then reads what it wrote).

SQL here is written with ``?`` placeholders; a backend may translate them (``_sql``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from rayrollout.errors import (
    ConfigError,
    Fenced,
    InputsPruned,
    StoreCorrupt,
    StoreError,
)

GENESIS = "0" * 64
T = TypeVar("T")


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def chain_hash(prev: str, body: str) -> str:
    return hashlib.sha256((prev + body).encode()).hexdigest()


def redact_url(url: str) -> str:
    """``url`` without its password (``user@host`` kept), for messages, logs and status; a
    ``password=`` query parameter is dropped too."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        user = parts.username
    except ValueError:
        return url.split("://", 1)[0] + "://..."
    netloc = f"{user}@{host}" if user else host
    query = "&".join(q for q in parts.query.split("&") if q and
                     not q.lower().startswith("password="))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


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


class SqlStore:
    """The rollout store over one connection and one lock (thread-safe). Subclasses set
    ``where``, ``retention`` and ``_db`` and implement the hooks below."""

    where: str  # what messages call the store: a path, or a URL without its password
    retention: TickRetention
    _db: Any
    _lock: threading.RLock

    BEGIN_WRITE = "BEGIN"  # begins a write transaction
    BEGIN_READ = "BEGIN"  # begins a read-only snapshot
    FOR_UPDATE = ""  # appended to a SELECT: lock the row for the rest of the transaction
    FOR_SHARE = ""  # the same, shared: writers of the row wait, readers do not
    _at_commit = False  # a write failed during its COMMIT (it may have been committed)

    # -- backend hooks -----------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql

    def _driver_error(self, e: BaseException) -> bool:
        """Whether ``e`` is an error of the backend's driver (translated by ``_error``)."""
        raise NotImplementedError

    def _error(self, e: BaseException, what: str) -> StoreError:
        """Our error for a driver error, saying what was not done and what to do."""
        raise NotImplementedError

    def _abandon(self, e: BaseException) -> bool:
        """Leave a failed transaction. True when the connection was lost and made again (a
        read may then be tried once more; a write is not: the caller decides)."""
        raise NotImplementedError

    def _insert_id(self, db: Any, sql: str, args: tuple[Any, ...]) -> int:
        """Run an INSERT into a table with an ``id`` key and return the new row's id."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- transactions --------------------------------------------------------------------------

    def _q(self, db: Any, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        return db.execute(self._sql(sql), tuple(args))

    @contextmanager
    def _tx(self, what: str) -> Iterator[Any]:
        """One transaction: committed whole, or rolled back whole and the error raised."""
        with self._lock:
            self._at_commit = False
            try:
                self._q(self._db, self.BEGIN_WRITE)
                yield self._db
                self._at_commit = True
                self._q(self._db, "COMMIT")
                self._at_commit = False
            except BaseException as e:
                self._abandon(e)
                if self._driver_error(e):
                    raise self._error(e, what) from e
                raise

    def _read(self, what: str, fn: Callable[[Any], T], snapshot: bool = False) -> T:
        """``fn(db)``, in one read-only snapshot if ``snapshot``; tried once more on a new
        connection if the connection was lost (a read changes nothing)."""
        with self._lock:
            self._at_commit = False
            for again in (True, False):
                try:
                    if snapshot:
                        self._q(self._db, self.BEGIN_READ)
                    out = fn(self._db)
                    if snapshot:
                        self._q(self._db, "COMMIT")
                    return out
                except BaseException as e:
                    if self._abandon(e) and again:
                        continue
                    if self._driver_error(e):
                        raise self._error(e, what) from e
                    raise
        raise AssertionError("unreachable")

    # -- the controller lease ------------------------------------------------------------------

    def acquire(self, model: str, owner: str) -> int:
        """Take ``model``'s controller lease for ``owner`` (a name for messages) and return its
        fencing token: larger than every token issued before for ``model``, in this store,
        whoever held them. The newest caller always wins; a lease never expires."""
        with self._tx("taking the controller lease") as db:
            self._q(db, "INSERT INTO leases (model, token, owner, acquired) VALUES (?, 1, ?, ?)"
                    " ON CONFLICT (model) DO UPDATE SET token = leases.token + 1,"
                    " owner = excluded.owner, acquired = excluded.acquired",
                    (model, owner[:200], time.time()))
            return int(self._q(db, "SELECT token FROM leases WHERE model = ?",
                               (model,)).fetchone()[0])

    def holds(self, model: str, token: int) -> bool:
        """Whether ``token`` is ``model``'s current fencing token."""
        row = self._read("reading the controller lease", lambda db: self._q(
            db, "SELECT token FROM leases WHERE model = ?", (model,)).fetchone())
        return row is not None and int(row[0]) == token

    def _fence(self, db: Any, token: int | None, what: str, model: str | None = None,
               rollout: int | None = None) -> None:
        """Raise ``Fenced`` unless ``token`` (None: no check) is the model's current one; the
        lease row stays locked until the transaction ends, so no newer lease is taken before
        this write is committed and visible."""
        if token is None:
            return
        if model is None:
            row = self._q(db, "SELECT model FROM rollouts WHERE id = ?", (rollout,)).fetchone()
            if row is None:
                raise StoreError(f"rollout {rollout} is not in the store {self.where}; "
                                 f"{what}: not done")
            model = str(row[0])
        lease = self._q(db, "SELECT token, owner FROM leases WHERE model = ?" + self.FOR_SHARE,
                        (model,)).fetchone()
        if lease is None or int(lease[0]) != token:
            held = ("no controller holds it" if lease is None else
                    f"token {lease[0]} ({lease[1]}) holds it now")
            raise Fenced(f"the controller lease of {model!r} in the store {self.where} is not "
                         f"token {token}: {held}. This controller was replaced by a newer one; "
                         f"{what}: not done, nothing written")

    # -- rollouts ------------------------------------------------------------------------------

    def create(self, model: str, digest: str, spec: dict[str, Any], state: dict[str, Any],
               token: int | None = None) -> int:
        now = time.time()
        with self._tx("creating a rollout") as db:
            self._fence(db, token, "creating a rollout", model=model)
            rid = self._insert_id(
                db, "INSERT INTO rollouts (model, digest, spec, state, initial, judges, created,"
                " updated) VALUES (?, ?, ?, ?, ?, '{}', ?, ?)",
                (model, digest, canonical(spec), canonical(state), canonical(state), now, now))
            self._prune_rollouts(db, model)
            return rid

    def latest(self, model: str) -> RolloutRow | None:
        return self._row("WHERE model = ? ORDER BY id DESC LIMIT 1", model)

    def get(self, rollout: int) -> RolloutRow | None:
        return self._row("WHERE id = ?", rollout)

    def _row(self, where: str, arg: Any) -> RolloutRow | None:
        row = self._read("reading a rollout", lambda db: self._q(
            db, "SELECT id, model, digest, applied_seq, spec, state, judges, initial"
            " FROM rollouts " + where, (arg,)).fetchone())
        if row is None:
            return None
        i, model, digest, applied = row[:4]
        doc = {}
        for name, text in zip(("spec", "state", "judges", "initial"), row[4:], strict=True):
            try:
                doc[name] = json.loads(text)
            except (TypeError, ValueError) as e:
                raise StoreCorrupt(f"rollout {i} in the store {self.where}: column {name} is "
                                   f"not valid JSON ({e}); restore a backup") from None
        return RolloutRow(int(i), model, digest, doc["spec"], doc["state"], doc["judges"],
                          int(applied), doc["initial"])

    def rollouts(self, model: str) -> list[int]:
        rows = self._read("listing rollouts", lambda db: self._q(
            db, "SELECT id FROM rollouts WHERE model = ? ORDER BY id", (model,)).fetchall())
        return [int(r[0]) for r in rows]

    def commit(self, rollout: int, state: dict[str, Any], judges: dict[str, Any], now: float,
               inputs: dict[str, Any] | None = None, decision: dict[str, Any] | None = None,
               token: int | None = None) -> None:
        """Persist one tick: inputs (for replay), new state and judges, and the log entry."""
        with self._tx("committing a tick") as db:
            self._fence(db, token, "committing a tick", rollout=rollout)
            if inputs is not None:
                blob = zlib.compress(canonical(inputs).encode(), 6)
                self._q(db, "INSERT INTO ticks (rollout, now, inputs) VALUES (?, ?, ?)",
                        (rollout, now, blob))
            self._q(db, "UPDATE rollouts SET state = ?, judges = ?, updated = ? WHERE id = ?",
                    (canonical(state), canonical(judges), time.time(), rollout))
            if decision is not None:
                self._append(db, rollout, now, decision)
            self._prune_old(db, now)

    def mark_applied(self, rollout: int, seq: int, token: int | None = None) -> None:
        """Record that the actions of decision ``seq`` have been carried out."""
        with self._tx("marking a decision applied") as db:
            self._fence(db, token, "marking a decision applied", rollout=rollout)
            self._q(db, "UPDATE rollouts SET applied_seq = ? WHERE id = ?", (seq, rollout))

    # -- retention -----------------------------------------------------------------------------

    def _prune(self, db: Any, rollout: int, why: str) -> None:
        self._q(db, "INSERT INTO pruned (rollout, why) VALUES (?, ?) ON CONFLICT (rollout)"
                " DO NOTHING", (rollout, why))

    def _prune_rollouts(self, db: Any, model: str) -> None:
        """Drop the ticks of every rollout of ``model`` but the newest ``keep_rollouts``."""
        k = self.retention.keep_rollouts
        if k is None:
            return
        old = self._q(db, "SELECT o.id FROM rollouts o WHERE o.model = ? AND o.id <= (SELECT id"
                      " FROM rollouts WHERE model = ? ORDER BY id DESC LIMIT 1 OFFSET ?) AND"
                      " EXISTS (SELECT 1 FROM ticks WHERE rollout = o.id)",
                      (model, model, k)).fetchall()
        why = f"keep_rollouts={k}: the ticks of the newest {k} rollouts of {model!r} are kept"
        for (rid,) in old:
            self._prune(db, rid, why)
            self._q(db, "DELETE FROM ticks WHERE rollout = ?", (rid,))

    def _prune_old(self, db: Any, now: float) -> None:
        """Drop ticks older than ``max_age_s`` (on the clock the ticks were recorded with)."""
        age = self.retention.max_age_s
        if age is None:
            return
        cutoff = now - age
        hit = self._q(db, "SELECT DISTINCT rollout FROM ticks WHERE now < ?",
                      (cutoff,)).fetchall()
        if not hit:
            return
        why = f"max_age_s={age:g}: older ticks are dropped"
        for (rid,) in hit:
            self._prune(db, rid, why)
        self._q(db, "DELETE FROM ticks WHERE now < ?", (cutoff,))

    # -- log -----------------------------------------------------------------------------------

    def _append(self, db: Any, rollout: int, ts: float, body: dict[str, Any]) -> None:
        """Chain one entry onto the head, which stays locked until the transaction ends."""
        prev = str(self._q(db, "SELECT head FROM chain WHERE id = 1" + self.FOR_UPDATE
                           ).fetchone()[0])
        text = canonical(body)
        h = chain_hash(prev, text)
        self._q(db, "INSERT INTO log (rollout, ts, body, prev, hash) VALUES (?, ?, ?, ?, ?)",
                (rollout, ts, text, prev, h))
        self._q(db, "UPDATE chain SET head = ?, entries = entries + 1 WHERE id = 1", (h,))

    def history(self, rollout: int | None = None, limit: int | None = None,
                before: int | None = None) -> list[dict[str, Any]]:
        """Log entries, oldest first: of one rollout (None: all), only those with ``log_seq``
        below ``before``, and of those the newest ``limit`` (None: all). Paged in SQL."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit={limit} must be >= 0")
        conds = (("rollout = ?", rollout), ("seq < ?", before))
        args: list[Any] = [v for _, v in conds if v is not None]
        q = "SELECT seq, rollout, ts, body, hash FROM log WHERE " + " AND ".join(
            [c for c, v in conds if v is not None] + ["TRUE"])
        q += " ORDER BY seq" if limit is None else " ORDER BY seq DESC LIMIT ?"
        args += [] if limit is None else [limit]
        rows = self._read("reading the decision log", lambda db: self._q(db, q, args).fetchall())
        if limit is not None:
            rows.reverse()
        return [self._entry(*row) for row in rows]

    def _entry(self, seq: int, rollout: int, ts: float, body: str, h: str) -> dict[str, Any]:
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            raise StoreCorrupt(f"log entry {seq} in the store {self.where} is not valid JSON "
                               f"({e}); 'rayrollout verify' checks the chain") from None
        return {"log_seq": int(seq), "rollout": int(rollout), "ts": ts, "hash": h, **doc}

    def head(self) -> tuple[str, int]:
        """The hash of the newest entry and the number of entries (publish it to anchor)."""
        h, n = self._read("reading the log's head", lambda db: self._q(
            db, "SELECT head, entries FROM chain WHERE id = 1").fetchone())
        return str(h), int(n)

    def verify(self) -> tuple[bool, str]:
        """Check the whole chain and that it ends at the recorded head; name the first break.
        The head and the entries are read in one snapshot (a concurrent writer is not a
        break)."""
        def read(db: Any) -> tuple[Any, list[Any]]:
            top = self._q(db, "SELECT head, entries FROM chain WHERE id = 1").fetchone()
            return top, self._q(db, "SELECT seq, body, prev, hash FROM log ORDER BY seq"
                                ).fetchall()

        (head, entries), rows = self._read("verifying the log", read, snapshot=True)
        prev = GENESIS
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
        def read(db: Any) -> tuple[Any, list[Any]]:
            pruned = self._q(db, "SELECT why FROM pruned WHERE rollout = ?",
                             (rollout,)).fetchone()
            if pruned is not None:
                return pruned, []
            return None, self._q(db, "SELECT id, inputs FROM ticks WHERE rollout = ? ORDER BY"
                                 " id", (rollout,)).fetchall()

        pruned, rows = self._read("reading tick inputs", read, snapshot=True)
        if pruned is not None:
            raise InputsPruned(f"the recorded inputs of rollout {rollout} were pruned ("
                               f"{pruned[0]}); its log is kept, but it cannot be replayed")
        out = []
        for tid, blob in rows:
            try:
                out.append(json.loads(zlib.decompress(blob)))
            except (zlib.error, TypeError, ValueError) as e:
                raise StoreCorrupt(f"tick {tid} of rollout {rollout} in the store {self.where}:"
                                   f" its inputs cannot be read ({e})") from None
        return out
