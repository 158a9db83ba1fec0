"""``rayrollout._compat``: what the package uses from Python 3.11 behaves the same on 3.10
(``requires-python >= 3.10``). These tests run on either version."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from rayrollout._compat import ASYNC_TIMEOUT, StrEnum, cancelling, sqlite_errorcode
from rayrollout.controller.phases import Phase
from rayrollout.dataplane.feedback import LabelResult
from rayrollout.ingress.auth import Scope


class Colour(StrEnum):
    RED = "red"
    DARK_BLUE = "dark-blue"


@pytest.mark.parametrize("member", [Colour.DARK_BLUE, Phase.ROLLED_BACK, Scope.FEEDBACK,
                                    LabelResult.DUPLICATE])
def test_a_str_enum_member_is_its_value_as_a_string(member: StrEnum) -> None:
    value = member.value
    assert isinstance(member, str) and member == value
    assert str(member) == value and f"{member}" == value and f"{member:>20}" == f"{value:>20}"
    assert json.dumps({member: member}) == json.dumps({value: value})
    assert type(member)(value) is member


def test_the_timeout_of_asyncio_wait_for_is_caught() -> None:
    async def late() -> None:
        with pytest.raises(ASYNC_TIMEOUT):
            await asyncio.wait_for(asyncio.sleep(60), 0.01)

    asyncio.run(late())
    with pytest.raises(ASYNC_TIMEOUT):
        concurrent.futures.Future().result(timeout=0.01)


def test_cancelling_is_known_from_python_3_11_and_false_before() -> None:
    seen: list[bool] = []

    async def victim() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append(cancelling(asyncio.current_task()))
            raise

    async def main() -> None:
        task = asyncio.create_task(victim())
        await asyncio.sleep(0)
        seen.append(cancelling(asyncio.current_task()))  # nobody cancels main
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == [False, sys.version_info >= (3, 11)]
    assert cancelling(None) is False


def test_sqlite_error_codes_for_busy_and_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    one = sqlite3.connect(db, isolation_level=None)
    one.execute("CREATE TABLE t (x)")
    one.execute("BEGIN IMMEDIATE")
    two = sqlite3.connect(db, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as busy:
        two.execute("BEGIN IMMEDIATE")
    assert sqlite_errorcode(busy.value) & 0xFF == 5  # SQLITE_BUSY
    one.close()
    two.close()

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database, not at all" * 100)
    with pytest.raises(sqlite3.DatabaseError) as notadb:
        sqlite3.connect(junk).execute("SELECT * FROM sqlite_master").fetchall()
    assert sqlite_errorcode(notadb.value) & 0xFF == 26  # SQLITE_NOTADB
    assert sqlite_errorcode(sqlite3.ProgrammingError("not from SQLite")) == 0
