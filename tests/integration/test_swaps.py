"""Routing-table swaps under concurrent load: no request fails, none is served by a version
that was not in the table it was routed with."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from rayrollout.dataplane.aggregates import Collected
from rayrollout.dataplane.routing import RoutingTable

pytestmark = pytest.mark.integration

VERSIONS = [
    ("v1", "v1.onnx", "onnx"),
    ("v2", "v2.onnx", "onnx"),
    ("v3", "v2-regressed.onnx", "onnx"),
]
# Successive weight sets; each leaves out at least one version entirely.
PLAN = [
    {"v1": 100},
    {"v1": 50, "v2": 50},
    {"v2": 100},
    {"v2": 10, "v3": 90},
    {"v3": 100},
    {"v1": 30, "v3": 70},
]


def test_weight_swaps_under_concurrent_load(deploy, heldout) -> None:
    X, _ = heldout
    d = deploy(VERSIONS, weights={"v1": 100}, max_batch_rows=8)
    tables = {0: RoutingTable.from_percent(d.model, 0, {"v1": 100})}
    swaps = 40
    stop = threading.Event()
    results: list[tuple[int, str, int]] = []

    async def client_loop(i: int) -> None:
        async with d.async_client() as c:
            k = 0
            while not stop.is_set():
                row = X[(i * 97 + k) % len(X)][None, :]
                r = await c.post(f"/v1/models/{d.model}/predict", json={"instances": row.tolist()})
                results.append(
                    (
                        r.status_code,
                        r.headers.get("x-model-version", ""),
                        int(r.headers.get("x-routing-epoch", "-1")),
                    )
                )
                k += 1

    async def load() -> None:
        await asyncio.gather(*(client_loop(i) for i in range(32)))

    t = threading.Thread(target=lambda: asyncio.run(load()))
    t.start()
    try:
        for epoch in range(1, swaps + 1):
            table = RoutingTable.from_percent(d.model, epoch, PLAN[epoch % len(PLAN)])
            tables[epoch] = table
            assert set(d.push(table.to_dict())) == {epoch}
            # An older table pushed late is ignored: epochs never go back.
            assert set(d.push(tables[epoch - 1].to_dict())) == {epoch}
            stop.wait(0.15)
    finally:
        stop.set()
        t.join(120)
    assert not t.is_alive()
    assert len(results) > 200, len(results)
    failed = [r for r in results if r[0] != 200]
    assert not failed, failed[:5]
    wrong = [(v, e) for _, v, e in results if tables[e].weights.get(v, 0) <= 0]
    assert not wrong, wrong[:5]
    seen_epochs = {e for _, _, e in results}
    assert len(seen_epochs) > swaps // 2  # the load really spanned the swaps
    # The events the router kept agree with what the clients saw.
    events = [e for c in d.collect() for e in Collected.from_dict(c).events]
    assert len(events) == len(results)
    assert all(tables[e.epoch].weights.get(e.version, 0) > 0 for e in events)
    assert all(np.isclose(e.weight, tables[e.epoch].weights[e.version]) for e in events)
