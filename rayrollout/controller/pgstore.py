"""``PostgresStore``: the rollout store in PostgreSQL, for clusters (psycopg 3).

The same schema, rules and guarantees as the SQLite ``Store`` (``storebase``): a tick is
committed whole or not at all; the chain row is locked (``SELECT ... FOR UPDATE``) by every
write that appends to the log, so writers queue on it and two of them can never fork the chain;
a fenced write holds the model's lease row (``FOR SHARE``) until it commits, so a newer
controller's ``acquire`` waits for it. Several models (and their controllers) may share one
database: rows are keyed by model and rollout, and the database holds one chain.

One connection (autocommit, explicit transactions) behind the store's lock: the controller is
one process. A lock held past ``busy_timeout_s`` is ``StoreBusy``. A lost connection is made
again once: a read is then tried again, a write is not (it raises ``StoreUnavailable`` naming
what was not done; if the connection broke during COMMIT it says the write may have landed).

The URL's password (in the URL, a ``password=`` parameter, or from libpq's ``PGPASSWORD`` /
``~/.pgpass``) never appears in an error, a log line or ``where``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from rayrollout.controller.storebase import GENESIS, SqlStore, TickRetention
from rayrollout.errors import StoreBusy, StoreCorrupt, StoreError, StoreFull, StoreUnavailable

log = logging.getLogger("rayrollout.store")

SCHEMA = (  # (name, how to create it): only what is missing is created
    ("rollouts", """CREATE TABLE rollouts (
        id BIGSERIAL PRIMARY KEY, model TEXT NOT NULL, digest TEXT NOT NULL,
        spec TEXT NOT NULL, state TEXT NOT NULL, initial TEXT NOT NULL, judges TEXT NOT NULL,
        applied_seq BIGINT NOT NULL DEFAULT 0, created DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL)"""),
    ("rollouts_model", "CREATE INDEX rollouts_model ON rollouts(model, id)"),
    ("log", """CREATE TABLE log (
        seq BIGSERIAL PRIMARY KEY, rollout BIGINT NOT NULL, ts DOUBLE PRECISION NOT NULL,
        body TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)"""),
    ("log_rollout", "CREATE INDEX log_rollout ON log(rollout, seq)"),
    ("chain", f"""CREATE TABLE chain (
        id INTEGER PRIMARY KEY CHECK (id = 1), head TEXT NOT NULL, entries BIGINT NOT NULL);
        INSERT INTO chain (id, head, entries) VALUES (1, '{GENESIS}', 0)"""),
    ("ticks", """CREATE TABLE ticks (
        id BIGSERIAL PRIMARY KEY, rollout BIGINT NOT NULL, now DOUBLE PRECISION NOT NULL,
        inputs BYTEA NOT NULL)"""),
    ("ticks_rollout", "CREATE INDEX ticks_rollout ON ticks(rollout, id)"),
    ("ticks_now", "CREATE INDEX ticks_now ON ticks(now)"),
    ("pruned", "CREATE TABLE pruned (rollout BIGINT PRIMARY KEY, why TEXT NOT NULL)"),
    ("leases", """CREATE TABLE leases (
        model TEXT PRIMARY KEY, token BIGINT NOT NULL, owner TEXT NOT NULL,
        acquired DOUBLE PRECISION NOT NULL)"""),
)
SCHEMA_LOCK = 0x7261_7972_6F6C  # pg_advisory_xact_lock key: one schema set-up at a time

_BUSY = {"55P03", "40001", "40P01", "57014"}  # lock timeout, serialization, deadlock, cancel
_CORRUPT = {"XX001", "XX002"}  # data corrupted, index corrupted


class PostgresStore(SqlStore):
    """The store in the PostgreSQL database at ``url`` (``postgresql://user@host:port/db``;
    libpq's parameters and environment apply). ``busy_timeout_s``: how long a write waits for
    a row another writer holds; ``connect_timeout_s``: for each connection attempt."""

    BEGIN_WRITE = "BEGIN"  # READ COMMITTED; the rows that order writers are locked explicitly
    BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    FOR_UPDATE = " FOR UPDATE"
    FOR_SHARE = " FOR SHARE"

    def __init__(self, url: str, retention: TickRetention | None = None,
                 busy_timeout_s: float = 5.0, connect_timeout_s: float = 10.0) -> None:
        self.retention = retention if retention is not None else TickRetention.from_env()
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._secrets = _secrets(url)
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as e:
            raise StoreError(f"the rollout store URL is not valid ({self._scrub(str(e))})"
                             ) from None
        self.where = _where(params)
        params.setdefault("connect_timeout", str(max(1, round(connect_timeout_s))))
        params.setdefault("application_name", "rayrollout-store")
        self._params = params
        self._lost: str | None = None  # why the last connection was lost ("" if re-made)
        self._db = self._connect("opening the store")
        try:
            self._setup()
        except psycopg.Error as e:
            self._db.close()
            raise self._error(e, "setting up the store's tables") from None

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    def _scrub(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def _connect(self, what: str) -> psycopg.Connection[Any]:
        try:
            db = psycopg.connect(make_conninfo("", **self._params), autocommit=True)
            ms = max(1, round(self.busy_timeout_s * 1000))
            db.execute(f"SET lock_timeout = {ms}")
            return db
        except psycopg.Error as e:  # from None: the driver's error is not shown as it was
            raise StoreUnavailable(f"cannot connect to the rollout store {self.where} "
                                   f"({self._scrub(str(e)).strip()}); {what}: not done"
                                   ) from None

    def _setup(self) -> None:
        """Create what is missing of the schema, one opener at a time. Nothing is run when
        it is all there: DDL, even ``IF NOT EXISTS``, locks whole tables, and would make a
        controller opening the store deadlock with another one writing to it."""
        with self._lock:
            db = self._db
            names = [name for name, _ in SCHEMA]
            have = {r[0] for r in db.execute(
                "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND "
                "pg_table_is_visible(oid)", (names,)).fetchall()}
            if have == set(names):
                return
            db.execute("BEGIN")
            try:
                db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                have = {r[0] for r in db.execute(
                    "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND "
                    "pg_table_is_visible(oid)", (names,)).fetchall()}
                for name, statements in SCHEMA:
                    if name not in have:
                        for statement in statements.split(";"):
                            db.execute(statement)
                db.execute("COMMIT")
            except BaseException:
                if db.info.transaction_status != TransactionStatus.IDLE and not db.broken:
                    db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- the hooks of SqlStore -----------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _insert_id(self, db: Any, sql: str, args: tuple[Any, ...]) -> int:
        return int(self._q(db, sql + " RETURNING id", args).fetchone()[0])

    def _driver_error(self, e: BaseException) -> bool:
        return isinstance(e, psycopg.Error)

    def _abandon(self, e: BaseException) -> bool:
        self._lost = None
        db = self._db
        if not (db.closed or db.broken):
            if db.info.transaction_status == TransactionStatus.IDLE:
                return False
            try:
                db.execute("ROLLBACK")
                return False
            except psycopg.Error as r:
                log.warning("ROLLBACK failed on the rollout store %s (%s); reconnecting",
                            self.where, self._scrub(str(r)))
        db.close()  # closing rolls back whatever was not committed
        try:
            self._db = self._connect("reconnecting")
        except StoreUnavailable as again:
            self._lost = f"could not reconnect: {again}"
            return False
        self._lost = ""
        return True

    def _error(self, e: BaseException, what: str) -> StoreError:
        """Our error for a psycopg error: what was not done, and what to do."""
        msg = self._scrub(str(e)).strip() or type(e).__name__
        state = getattr(e, "sqlstate", None) or ""
        if self._lost is not None:  # the connection was lost (and made again, or not)
            again = self._lost or "reconnected"
            if self._at_commit:
                return StoreUnavailable(
                    f"the connection to the rollout store {self.where} was lost during COMMIT "
                    f"({msg}); {what}: may or may not have been done ({again}): read the store "
                    "before trying again")
            return StoreUnavailable(f"the connection to the rollout store {self.where} was lost"
                                    f" ({msg}); {what}: not done ({again}); try again")
        if state in _BUSY:
            return StoreBusy(f"the rollout store {self.where} is busy: another writer held a row"
                             f" for over {self.busy_timeout_s:g} s ({msg}); {what}: not done, "
                             "try again")
        if state.startswith("53"):
            return StoreFull(f"the rollout store {self.where} is out of space or memory ({msg});"
                             f" {what}: not done; the last commit is intact")
        if state in _CORRUPT:
            return StoreCorrupt(f"the rollout store {self.where} is damaged ({msg}); {what}: not"
                                " done. Restore a backup")
        if state.startswith(("08", "57P")):
            return StoreUnavailable(f"the rollout store {self.where} is unavailable ({msg}); "
                                    f"{what}: not done; try again")
        return StoreError(f"the rollout store {self.where} failed ({msg}); {what}: not done")


def _where(params: dict[str, Any]) -> str:
    """The database as messages show it: no password, whatever the URL held."""
    user = params.get("user")
    host = params.get("host") or "localhost"
    port = params.get("port")
    netloc = (f"{user}@" if user else "") + host + (f":{port}" if port else "")
    return f"postgresql://{netloc}/{params.get('dbname') or ''}"


def _secrets(url: str) -> list[str]:
    """Every spelling of the password ``url`` carries, longest first (to scrub them)."""
    found: set[str] = set()
    try:
        raw = urlsplit(url).password
    except ValueError:
        raw = None
    if raw:
        found |= {raw, unquote(raw), quote(unquote(raw), safe="")}
    try:
        pw = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        pw = None
    if pw:
        found |= {str(pw), quote(str(pw), safe="")}
    return sorted((s for s in found if s), key=len, reverse=True)
