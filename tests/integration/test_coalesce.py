"""Requests that travel together fail alone, on a real Ray Serve: 32 clients at once send to
one version whose model fails any batch that holds a poison row. The router sends concurrent
requests to a busy version as one call and the version runs them as one batch, so poison rows
share batches with good ones; every poisoned request must still fail alone (a 500
``model_error`` counted against the version) and every good one get its own right answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from examples.sklearn_runtime import classify, load_classifier
from tests.conftest import ARTIFACTS
from tests.integration.poison_runtime import POISON

pytestmark = pytest.mark.integration

CLIENTS = 32
REQUESTS = 640


def test_a_poisoned_request_in_a_shared_batch_fails_only_itself(
        deploy, heldout, tmp_path: Path) -> None:
    X, _ = heldout
    batches = tmp_path / "batches.log"
    d = deploy([("v1", "sklearn-digits.joblib", "python", {
        "runtime_class": "tests.integration.poison_runtime:PoisonRuntime",
        "runtime_args": {"threads": 1, "log_path": str(batches)}})], weights={"v1": 100})
    rows = np.stack([X[i % len(X)] for i in range(REQUESTS)])
    poisoned = np.arange(REQUESTS) % 5 == 2
    rows[poisoned, 0] = POISON
    expected = classify(load_classifier(ARTIFACTS / "sklearn-digits.joblib"), rows)["label"]
    answers: dict[int, httpx.Response] = {}

    async def client(k: int, c: httpx.AsyncClient) -> None:
        for i in range(k, REQUESTS, CLIENTS):
            answers[i] = await c.post(f"/v1/models/{d.model}/predict",
                                      json={"instances": rows[i:i + 1].tolist()})

    async def load() -> None:
        async with d.async_client(limits=httpx.Limits(max_connections=CLIENTS)) as c:
            await c.post(f"/v1/models/{d.model}/predict", json={"instances": X[:1].tolist()})
            await asyncio.gather(*(client(k, c) for k in range(CLIENTS)))

    asyncio.run(load())
    for i, r in sorted(answers.items()):
        if poisoned[i]:
            assert r.status_code == 500 and r.json()["code"] == "model_error", (i, r.text)
        else:
            assert r.status_code == 200, (i, r.text)
            assert r.json()["predictions"][0] == int(expected[i]), (i, r.text)
    # Poison rows did share batches with good ones (else this test proves nothing), and the
    # counts are per request: one error for each poisoned request, one OK for each other.
    seen = [tuple(map(int, line.split())) for line in batches.read_text().split("\n") if line]
    assert any(n > p > 0 for n, p in seen), f"no shared batch with a poison row: {seen[:40]}"
    stats = d.wait_stats(lambda s: s["v1"].requests >= REQUESTS + 1)["v1"]
    assert (stats.errors, stats.ok) == (int(poisoned.sum()), REQUESTS + 1 - int(poisoned.sum()))
