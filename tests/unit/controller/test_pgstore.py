"""What only ``PostgresStore`` does, on the session's real PostgreSQL server: the password
never shows up (errors, ``where``, ``repr``, logs), a lost connection is made again (a read
goes on, a write says it was not done), an unreachable server is a 503, and several models
share one database."""

from __future__ import annotations

import logging

import pytest

from rayrollout.controller.pgstore import PostgresStore
from rayrollout.errors import StoreUnavailable, UnavailableError, http_status
from tests import pg
from tests.unit.controller.conftest import Stores

STATE = {"phase": "canary", "n": 0}


@pytest.fixture
def owned_db(postgres_url: str) -> str:
    """A database owned by the role that logs in with a password; its URL without one."""
    url = pg.new_database(postgres_url, owner=pg.PASSWORD_ROLE)
    return url.replace("postgres@", f"{pg.PASSWORD_ROLE}@", 1)


def with_password(url: str, password: str) -> str:
    return url.replace(f"{pg.PASSWORD_ROLE}@", f"{pg.PASSWORD_ROLE}:{password}@", 1)


def tick(store: PostgresStore, rid: int, n: int) -> None:
    store.commit(rid, {**STATE, "n": n}, {}, float(n), {"now": n}, {"seq": n})


def test_a_wrong_password_is_a_clear_error_that_does_not_show_it(
    owned_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wr0ng-" + pg.PASSWORD[::-1]
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreUnavailable) as e:
        PostgresStore(with_password(owned_db, wrong))
    text = str(e.value)
    assert "password authentication failed" in text and "opening the store: not done" in text
    assert f"{pg.PASSWORD_ROLE}@127.0.0.1" in text  # it says which database and user
    assert wrong not in text and wrong not in repr(e.value) and wrong not in caplog.text
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no driver text
    assert http_status(e.value) == 503


def test_the_right_password_from_the_url_or_pgpassword_is_never_shown(
    owned_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostgresStore(with_password(owned_db, pg.PASSWORD))
    rid = store.create("m", "d", {}, STATE)
    tick(store, rid, 1)
    assert pg.PASSWORD not in store.where + repr(store)
    assert store.where == owned_db
    # an error after that (the connection lost, and no way back) does not show it either
    admin = owned_db.replace(f"{pg.PASSWORD_ROLE}@", "postgres@", 1)
    pg.sql(admin, f"ALTER ROLE {pg.PASSWORD_ROLE} NOLOGIN",
           f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
           f"WHERE usename = '{pg.PASSWORD_ROLE}'")
    try:
        with pytest.raises(StoreUnavailable, match="could not reconnect") as e:
            tick(store, rid, 2)
        assert pg.PASSWORD not in str(e.value)
    finally:
        pg.sql(admin, f"ALTER ROLE {pg.PASSWORD_ROLE} LOGIN")
    store.close()
    monkeypatch.setenv("PGPASSWORD", pg.PASSWORD)  # the URL a spec may carry has none
    again = PostgresStore(owned_db)
    assert [h["seq"] for h in again.history(rid)] == [1] and again.verify()[0]
    again.close()


def test_a_lost_connection_is_made_again(pg_stores: Stores) -> None:
    stores = pg_stores
    store = stores()
    rid = store.create("m", "d", {}, STATE)
    tick(store, rid, 1)

    def kill() -> None:
        stores.sql("SELECT pg_terminate_backend(?)", (store._db.info.backend_pid,))

    kill()  # a read is tried again on a new connection: the caller sees nothing
    assert [h["seq"] for h in store.history(rid)] == [1]
    kill()  # a write is not: it says what was not done, and the store works again after it
    with pytest.raises(StoreUnavailable, match="was lost .*committing a tick: not done "
                                               r"\(reconnected\); try again") as e:
        tick(store, rid, 2)
    assert isinstance(e.value, UnavailableError)
    assert [h["seq"] for h in store.history(rid)] == [1]
    tick(store, rid, 3)
    assert [h["seq"] for h in store.history(rid)] == [1, 3] and store.verify()[0]


def test_an_unreachable_server_is_unavailable() -> None:
    port = pg.free_port()  # nothing listens there
    url = f"postgresql://{pg.PASSWORD_ROLE}:{pg.PASSWORD}@127.0.0.1:{port}/db"
    with pytest.raises(StoreUnavailable, match=f"cannot connect to the rollout store "
                                               f"postgresql://{pg.PASSWORD_ROLE}@127.0.0.1:{port}/db"
                       ) as e:
        PostgresStore(url, connect_timeout_s=2)
    assert pg.PASSWORD not in str(e.value)


def test_models_share_one_database_and_its_schema_is_set_up_once(pg_stores: Stores) -> None:
    stores = pg_stores
    a, b = stores(), stores()  # a second controller opens the same database: no error
    ra, rb = a.create("a", "d", {}, STATE), b.create("b", "d", {}, STATE)
    tick(a, ra, 1)
    tick(b, rb, 1)
    assert a.latest("a").id == ra and b.latest("b").id == rb
    assert b.rollouts("a") == [ra] and a.rollouts("b") == [rb]
    assert a.verify() == b.verify() and a.verify()[1].startswith("2 entries")
    tables = {r[0] for r in stores.sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"rollouts", "log", "chain", "ticks", "pruned", "leases"}
