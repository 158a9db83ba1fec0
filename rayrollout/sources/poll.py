"""Taking readings off the controller's thread: ``take_reading`` and ``Poller``.

A reading is plain JSON (the store records it with the tick that used it, and replay feeds it
back): ``{"t": when, "values": {role: number}}`` when every query of the check answered, or
``{"t": when, "error": kind, "role": role, "detail": message}`` for the first that did not
(``kind`` from ``rayrollout.sources.base.ERROR_KINDS``). Roles are ``candidate`` and, for
checks that read both, ``stable``.

``Poller`` runs each check's reads on a small thread pool: ``poll`` starts a read when the
check's interval has passed and none of its reads is still running; ``harvest`` hands over the
readings that finished, in the order they were started. Neither call waits for a read, so a
slow or hung server never holds a tick (a read ends by its source's own timeout). With
``inline=True`` a read runs inside ``poll`` itself (deterministic tests).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from rayrollout.sources.base import MetricSource, SourceError

_DETAIL = 300  # characters of an error message kept in a reading


def take_reading(source: MetricSource, queries: Mapping[str, str], at: float) -> dict[str, Any]:
    """Ask ``source`` each of ``queries`` (role -> PromQL) evaluated at ``at``. Never raises:
    an error that is not a ``SourceError`` (a bug in a source) is a ``bad_response``."""
    values: dict[str, float] = {}
    for role, query in queries.items():
        try:
            values[role] = float(source.value(query, at))
        except SourceError as e:
            return {"t": at, "error": e.kind, "role": role, "detail": str(e)[:_DETAIL]}
        except Exception as e:  # a reading is data, whatever broke
            return {"t": at, "error": "bad_response", "role": role,
                    "detail": f"{type(e).__name__}: {e}"[:_DETAIL]}
    return {"t": at, "values": values}


class Poller:
    """Reads keyed by ``key`` (a rollout's candidate and check), at most one running per key."""

    def __init__(self, workers: int = 4, inline: bool = False) -> None:
        self.inline = inline
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._last: dict[Hashable, float] = {}  # key -> when its last read started
        self._running: dict[Hashable, Future[dict[str, Any]]] = {}
        self._done: list[tuple[Hashable, dict[str, Any]]] = []

    def poll(self, key: Hashable, now: float, interval_s: float,
             read: Callable[[], dict[str, Any]]) -> bool:
        """Start ``read`` for ``key`` if ``interval_s`` has passed since its last start and no
        read of it is running; True if it started one."""
        if key in self._running:
            return False
        last = self._last.get(key)
        if last is not None and now - last < interval_s:
            return False
        self._last[key] = now
        if self.inline:
            self._done.append((key, read()))
            return True
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._workers,
                                            thread_name_prefix="rayrollout-source")
        self._running[key] = self._pool.submit(read)
        return True

    def harvest(self) -> list[tuple[Hashable, dict[str, Any]]]:
        """The readings finished since the last harvest, in the order their reads started."""
        for key, fut in list(self._running.items()):
            if fut.done():
                del self._running[key]
                self._done.append((key, fut.result()))
        out, self._done = self._done, []
        return out

    def keep(self, keys: set[Hashable]) -> None:
        """Forget every key not in ``keys`` (a finished rollout's, a withdrawn candidate's):
        their running reads finish unseen."""
        for d in (self._last, self._running):
            for key in [k for k in d if k not in keys]:
                del d[key]
        self._done = [(k, r) for k, r in self._done if k in keys]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
