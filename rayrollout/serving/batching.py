"""``BatchedPredictor``: dynamic batching of tensor requests for a Serve deployment.

Shared by rayrollout's own ``ModelVersion`` and by users' deployments built on
``rayrollout.TensorModel``. Concurrent ``predict`` calls are grouped by ``@serve.batch`` (size
and wait set per replica) into one call of ``_run_batch`` on the concatenated rows.

Guarantees:

* The rows of each request come back to that request, in order.
* If a grouped call raises, each request of the group is retried alone, so one request's bad
  input never fails its neighbours; the offending request alone gets the error.
* Batches of at most ``inline_rows`` rows run on the replica's event loop (for cheap CPU
  models a thread hop costs more than the model); larger ones on one worker thread, so the
  event loop keeps accepting requests.
* **No wait when idle.** A request that finds no other in this replica runs at once: the
  batch wait (``batch_wait_timeout_s``) is paid only when there is company to wait for.
* **A node-local channel.** ``channel_address`` starts (once) the replica's local channel
  server (``rayrollout.serving.channel``) on its event loop and tells a router on this node how
  to reach it; requests by the channel run ``predict`` exactly as a handle call does. The
  replica closes it when Serve shuts it down.
* ``_predict_many`` runs a group the router already formed (``predict_many``: one handle call
  for several requests, ``rayrollout.ingress.coalesce``) as one batch, with the same
  isolation: a failing request's slot holds an ``ItemFailed``, its neighbours their outputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from ray import serve

from rayrollout.serving.channel import ChannelServer

Arrays = dict[str, np.ndarray]


class ItemFailed(Exception):
    """One request of a group failed: its slot in ``predict_many``'s answer. Carries the
    model's error as text, so the answer pickles whatever the model raised."""

    def __init__(self, message: str) -> None:
        super().__init__(message)

    @classmethod
    def of(cls, e: BaseException) -> ItemFailed:
        return e if isinstance(e, ItemFailed) else cls(f"{type(e).__name__}: {e}")


class BatchedPredictor:
    """Mix into a deployment class; call ``_init_batching`` from ``__init__``."""

    _batch_fn: Callable[[Arrays], Arrays]
    _inline_rows: int
    _pool: ThreadPoolExecutor
    _busy: int = 0  # requests and groups of this replica being served
    _channel: ChannelServer | None = None

    async def predict(self, inputs: Arrays) -> Arrays:
        raise NotImplementedError  # ModelVersion's and TensorModel's

    async def channel_address(self) -> dict[str, object]:
        """Where a router on this node reaches this replica's channel: node id, ``path`` (or
        ``port``), token (given only through Serve's handle), and how many requests the
        channel served and connections it refused."""
        import ray

        if self._channel is None:
            self._channel = ChannelServer(self.predict)
        where = await self._channel.start()
        return {"node_id": ray.get_runtime_context().get_node_id(), **where,
                "token": self._channel.token, "served": self._channel.served,
                "refused": self._channel.refused}

    def __del__(self) -> None:  # Serve calls it when it shuts the replica down
        if self._channel is not None:
            self._channel.close()

    def _init_batching(self, fn: Callable[[Arrays], Arrays], max_batch_size: int,
                       batch_wait_timeout_s: float, inline_rows: int, name: str) -> None:
        self._batch_fn = fn
        self._inline_rows = inline_rows
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{name}")
        batched: Any = self._predict_batched  # serve.batch adds the setters at run time
        batched.set_max_batch_size(max_batch_size)
        batched.set_batch_wait_timeout_s(batch_wait_timeout_s)

    async def _predict(self, inputs: Arrays) -> Arrays:
        self._busy += 1
        try:
            if self._busy == 1:  # idle: nothing to batch with, no wait
                return await self._run(inputs)
            result = await self._predict_batched(inputs)
        finally:
            self._busy -= 1
        if isinstance(result, BaseException):
            raise result
        return result

    async def _predict_many(self, items: list[Arrays]) -> list[Arrays | ItemFailed]:
        """A group of requests as one batch: each its outputs, or ``ItemFailed``."""
        self._busy += 1
        try:
            return [r if not isinstance(r, BaseException) else ItemFailed.of(r)
                    for r in await self._group(items)]
        finally:
            self._busy -= 1

    async def _run(self, inputs: Arrays) -> Arrays:
        rows = len(next(iter(inputs.values())))
        if rows <= self._inline_rows:
            return self._batch_fn(inputs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._batch_fn, inputs)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _predict_batched(self, items: list[Arrays]) -> list[Arrays | BaseException]:
        return await self._group(items)

    async def _group(self, items: list[Arrays]) -> list[Arrays | BaseException]:
        """Run ``items`` as one batch; if it fails, each alone (its error in its slot)."""
        if len(items) == 1:
            try:
                return [await self._run(items[0])]
            except Exception as e:
                return [e]
        names = list(items[0])
        rows = [len(next(iter(it.values()))) for it in items]
        try:
            merged = {n: np.concatenate([it[n] for it in items]) for n in names}
            out = await self._run(merged)
        except Exception:  # isolate the failing request: retry each alone
            results: list[Arrays | BaseException] = []
            for it in items:
                try:
                    results.append(await self._run(it))
                except Exception as e:
                    results.append(e)
            return results
        bounds = np.cumsum([0, *rows])
        return [
            {k: v[bounds[i] : bounds[i + 1]] for k, v in out.items()} for i in range(len(items))
        ]
