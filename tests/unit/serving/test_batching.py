"""Dynamic batching of a version's requests: no wait when idle, groups as one batch, and a
failing request fails only itself."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from rayrollout.serving.batching import Arrays, BatchedPredictor, ItemFailed


@pytest.fixture(autouse=True)
def outside_a_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve.batch`` reads its replica's config for a warning (there is no replica here) and
    keeps one queue per decorated method, bound to the event loop it was made on (one per
    replica process in Serve; each test here runs its own loop): a fresh one per test."""
    from ray.serve import batching

    monkeypatch.setattr(batching._BatchQueue,
                        "_warn_if_max_batch_size_exceeds_max_ongoing_requests", lambda self: None)
    batched: Any = BatchedPredictor._predict_batched
    lazy = batched.set_max_batch_size.__self__
    assert isinstance(lazy, batching._LazyBatchQueueWrapper)
    monkeypatch.setattr(lazy, "_queue", None)


class Doubler(BatchedPredictor):
    """Doubles its input; a row holding a negative number fails the batch it is in."""

    def __init__(self, wait_s: float, inline_rows: int = 64) -> None:
        self.batches: list[int] = []  # rows of each batch the model ran
        self._init_batching(self.run, 32, wait_s, inline_rows, "doubler")

    def run(self, inputs: Arrays) -> Arrays:
        x = inputs["x"]
        self.batches.append(len(x))
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": x * 2}


def arr(*v: float) -> Arrays:
    return {"x": np.array(v, dtype=np.float32)}


def test_an_idle_replica_runs_a_request_at_once() -> None:
    async def go() -> None:
        m = Doubler(wait_s=60.0)  # a batch wait would time the test out
        for i in range(3):
            out = await asyncio.wait_for(m._predict(arr(i)), 10)
            assert out["y"].tolist() == [2 * i]
        assert m.batches == [1, 1, 1]
        assert m._busy == 0
    asyncio.run(go())


def test_requests_that_find_the_replica_busy_are_batched() -> None:
    async def go() -> None:
        m = Doubler(wait_s=0.05, inline_rows=0)  # every batch on the worker thread
        outs = await asyncio.gather(*(m._predict(arr(i, i + 0.5)) for i in range(5)))
        assert [o["y"].tolist() for o in outs] == [[2 * i, 2 * i + 1] for i in range(5)]
        assert m.batches[0] == 2  # the first found the replica idle and went alone
        assert sum(m.batches) == 10 and len(m.batches) < 5  # the rest were batched
    asyncio.run(go())


def test_a_group_runs_as_one_batch_and_a_bad_request_fails_alone() -> None:
    async def go() -> None:
        m = Doubler(wait_s=60.0)
        out = await m._predict_many([arr(1), arr(2, 3), arr(4)])
        assert [o["y"].tolist() for o in out if isinstance(o, dict)] == [[2], [4, 6], [8]]
        assert m.batches == [4]
        m.batches.clear()
        got = await m._predict_many([arr(1), arr(-1), arr(5)])
        assert isinstance(got[1], ItemFailed) and "negative input" in str(got[1])
        assert [g["y"].tolist() for g in (got[0], got[2]) if isinstance(g, dict)] == [[2], [10]]
        assert m.batches == [3, 1, 1, 1]  # the group, then each alone
        assert m._busy == 0
    asyncio.run(go())


def test_a_batched_request_that_fails_fails_only_itself() -> None:
    async def go() -> None:
        m = Doubler(wait_s=0.05, inline_rows=0)
        got = await asyncio.gather(m._predict(arr(1)), m._predict(arr(-1)), m._predict(arr(3)),
                                   return_exceptions=True)
        assert isinstance(got[1], ValueError)
        assert [g["y"].tolist() for g in (got[0], got[2]) if isinstance(g, dict)] == [[2], [6]]
    asyncio.run(go())
