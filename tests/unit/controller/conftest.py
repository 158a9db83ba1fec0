"""The rollout store under test, on both backends: ``stores`` (parametrized: ``sqlite``, a file
in the test's folder; ``postgres``, a fresh database on the session's real server) opens stores
on this test's target and reaches around them to tamper; ``store`` is one such store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rayrollout.controller.pgstore import PostgresStore
from rayrollout.controller.store import RolloutStore, Store
from tests import pg

BACKENDS = ["sqlite", "postgres"]
TABLES = ("rollouts", "log", "ticks", "pruned", "leases")  # and the chain row


@dataclass
class Stores:
    """This test's store on one backend. ``stores()`` opens a store on it (a new connection,
    as a fresh process would); ``target`` is what a spec or ``open_store`` is given."""

    kind: str
    target: str
    opened: list[RolloutStore] = field(default_factory=list)

    def __call__(self, **kw: Any) -> Any:
        s = (Store(self.target, **kw) if self.kind == "sqlite" else
             PostgresStore(self.target, **kw))
        self.opened.append(s)
        return s

    def sql(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """``query`` (``?`` placeholders) from outside the store, committed; its rows."""
        if self.kind == "sqlite":
            raw = sqlite3.connect(self.target)
            try:
                with raw:
                    return raw.execute(query, args).fetchall()
            finally:
                raw.close()
        import psycopg

        with psycopg.connect(self.target, autocommit=True) as conn:
            cur = conn.execute(query.replace("?", "%s"), args)
            return cur.fetchall() if cur.description else []

    @contextmanager
    def write_locked(self) -> Iterator[None]:
        """Another process holds the store's write lock (SQLite) or its chain and lease rows
        (PostgreSQL) until the block ends."""
        if self.kind == "sqlite":
            other = sqlite3.connect(self.target, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                other.execute("ROLLBACK")
                other.close()
            return
        import psycopg

        with psycopg.connect(self.target, autocommit=True) as conn:
            conn.execute("BEGIN")
            conn.execute("SELECT * FROM chain FOR UPDATE")
            conn.execute("SELECT * FROM leases FOR UPDATE")
            try:
                yield
            finally:
                conn.execute("ROLLBACK")

    def load(self, recording: Path) -> None:
        """Copy a closed SQLite store's rows into this (empty) store, ids and all."""
        if self.kind == "sqlite":
            Path(self.target).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            src, dst = sqlite3.connect(recording), sqlite3.connect(self.target)
            src.backup(dst)
            src.close()
            dst.close()
            return
        import psycopg

        src = sqlite3.connect(recording)
        with psycopg.connect(self.target) as conn, conn.cursor() as cur:  # one transaction
            for table in TABLES:
                rows = src.execute(f"SELECT * FROM {table}")
                cols = [d[0] for d in rows.description]
                cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                                f"({', '.join(['%s'] * len(cols))})", rows.fetchall())
            cur.execute("UPDATE chain SET head = %s, entries = %s",
                        src.execute("SELECT head, entries FROM chain").fetchone())
            for table, key in (("rollouts", "id"), ("log", "seq"), ("ticks", "id")):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{key}'), "
                            f"(SELECT coalesce(max({key}), 0) + 1 FROM {table}), false)")
        src.close()

    def close(self) -> None:
        for s in self.opened:
            s.close()


@pytest.fixture(scope="session")
def pg_template(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(server URL, template database): a database with the store's tables, to copy."""
    url: str = request.getfixturevalue("postgres_url")
    target = pg.new_database(url)
    PostgresStore(target).close()
    return url, target.rsplit("/", 1)[1]


def _postgres(request: pytest.FixtureRequest) -> Stores:
    url, template = request.getfixturevalue("pg_template")
    return Stores("postgres", pg.new_database(url, template=template))


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    s = (Stores("sqlite", str(tmp_path / "store" / "rollouts.db")) if request.param == "sqlite"
         else _postgres(request))
    yield s
    s.close()


@pytest.fixture
def pg_stores(request: pytest.FixtureRequest) -> Iterator[Stores]:
    """``stores`` on PostgreSQL only (a fresh database)."""
    s = _postgres(request)
    yield s
    s.close()


@pytest.fixture
def store(stores: Stores) -> Any:
    return stores()


