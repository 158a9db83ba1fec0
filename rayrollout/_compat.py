"""What rayrollout uses from Python 3.11, for Python 3.10 too (``requires-python >= 3.10``).

* ``StrEnum``: ``enum.StrEnum`` on 3.11+; on 3.10 a ``str`` enum with the same behaviour:
  members are strings equal to their values, and ``str()`` and ``format()`` give the value.
* ``Self``: ``typing.Self`` on 3.11+, ``typing_extensions.Self`` on 3.10.
* ``ASYNC_TIMEOUT``: what ``asyncio.wait_for`` raises when time runs out, to catch as
  ``except ASYNC_TIMEOUT``. From 3.11 it is the builtin ``TimeoutError``; on 3.10 it is
  ``asyncio.TimeoutError``, a different class that ``except TimeoutError`` does not catch.
  The same holds for ``concurrent.futures.TimeoutError`` (``Future.result(timeout=...)``),
  which this tuple catches too.
* ``cancelling(task)``: whether ``task`` is being cancelled (``Task.cancelling()``, 3.11+).
  A 3.10 task cannot tell; there it is False, so callers must not rely on it alone (see its
  docstring).
* ``sqlite_errorcode(e)``: the SQLite result code of a ``sqlite3.Error``
  (``e.sqlite_errorcode``, 3.11+); on 3.10, read from SQLite's message for the codes that
  callers tell apart (busy, locked, corrupt, full, not a database).

This module imports nothing of rayrollout's and no third-party package but
``typing_extensions`` (on 3.10 only), so every layer may import it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import sys
from typing import Any

if sys.version_info >= (3, 11):
    from enum import StrEnum
    from typing import Self
else:
    from enum import Enum

    from typing_extensions import Self

    class StrEnum(str, Enum):
        """``enum.StrEnum`` of Python 3.11: ``str(member)`` and ``f"{member}"`` are its value."""

        def __str__(self) -> str:
            return str.__str__(self)

        def __format__(self, format_spec: str) -> str:
            return str.__format__(self, format_spec)


# One class three times from 3.11 on; three classes on 3.10.
ASYNC_TIMEOUT: tuple[type[Exception], ...] = (
    TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)


def cancelling(task: asyncio.Task[Any] | None) -> bool:
    """Whether ``task`` has a cancellation pending (``Task.cancelling() > 0``, Python 3.11+).

    Python 3.10 keeps no such count: there this is always False. To tell "my own task is being
    cancelled" from "an inner task I awaited was cancelled" on both versions, check the inner
    task first: if it was not cancelled (``not inner.cancelled()``), the ``CancelledError`` is
    this task's own; only when both were cancelled does 3.10 lose the distinction."""
    if sys.version_info >= (3, 11):
        return task is not None and task.cancelling() > 0
    return False


# SQLite's messages for the primary result codes it names (sqlite3_errstr); SQLITE_CORRUPT has
# variants ("malformed database schema ..."), so "malformed" stands for it.
_SQLITE_MESSAGES = (
    ("database is locked", 5),  # SQLITE_BUSY
    ("database table is locked", 6),  # SQLITE_LOCKED
    ("malformed", 11),  # SQLITE_CORRUPT
    ("database or disk is full", 13),  # SQLITE_FULL
    ("file is not a database", 26),  # SQLITE_NOTADB
)


def sqlite_errorcode(e: sqlite3.Error) -> int:
    """The SQLite result code of ``e`` (possibly extended: ``& 0xFF`` gives the primary code),
    or 0 when there is none (an error of the ``sqlite3`` module itself).

    Python 3.11+ carries it as ``e.sqlite_errorcode``. Python 3.10 does not: there the primary
    code is read from SQLite's message for busy, locked, corrupt, full and not-a-database, and
    any other error is 0."""
    if sys.version_info >= (3, 11):
        return int(getattr(e, "sqlite_errorcode", 0) or 0)
    message = str(e)
    return next((code for text, code in _SQLITE_MESSAGES if text in message), 0)


__all__ = ["ASYNC_TIMEOUT", "Self", "StrEnum", "cancelling", "sqlite_errorcode"]
