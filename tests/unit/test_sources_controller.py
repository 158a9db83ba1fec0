"""PromQL checks in whole rollouts: ``RolloutController`` over the in-memory ``FakeServePort``
with a ``FakeSource`` standing for Prometheus, on a hand-moved clock. The source answers from
what the fake routers served (each version's cumulative count of failed requests) and from a
custom metric per version the test sets. A healthy candidate is promoted, a regressed one is
rolled back, a Prometheus that is down or a query that fails holds the rollout (ERROR or
INCONCLUSIVE, never a rollback), and replay reproduces every decision without any source."""

from __future__ import annotations

import math
import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import rayrollout.client.api as rr
from rayrollout.controller.controller import RolloutController
from rayrollout.controller.core import replay_rollout
from rayrollout.controller.fake import FakeServePort
from rayrollout.controller.store import Store, open_store
from rayrollout.dataplane.events import Outcome
from rayrollout.errors import ConfigError
from rayrollout.sources import HOSTS_ENV, FakeSource, QueryFailed

MODEL = "m"
URL = "http://prom.test:9090"
METRIC = 'checkout_errors_ratio{version="{{version}}"}'  # a team's own KPI, per version
BAD = 'sum(failed_total{model="{{model}}",version="{{version}}"})'


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Cluster:
    """The fake cluster and a fake Prometheus that scrapes it: ``bad`` counts each version's
    failed requests (cumulative, as a counter), ``metric`` is each version's custom metric."""

    def __init__(self, store: Path, seed: int = 0, inline: bool = True) -> None:
        self.clock = Clock()
        self.port = FakeServePort(self.clock)
        self.store = str(store)
        self.rng = random.Random(seed)
        self.err: dict[str, float] = {}
        self.bad: Counter[str] = Counter()
        self.metric = {"v1": 0.01, "v2": 0.01}
        self.prom = FakeSource(where=URL)
        self.made: list[tuple[str, float]] = []
        for v in ("v1", "v2"):
            self.prom.set(METRIC.replace("{{version}}", v), self._metric(v))
            self.prom.set(BAD.replace("{{model}}", MODEL).replace("{{version}}", v),
                          self._bad(v))
        self.port.store_paths[MODEL] = self.store
        self.port.controllers[MODEL] = RolloutController(
            MODEL, open_store(self.store, MODEL), self.port, self.clock, self.port._notify,
            sources=self._source, inline_reads=inline)

    def _source(self, url: str, timeout_s: float) -> FakeSource:
        self.made.append((url, timeout_s))
        return self.prom

    def _metric(self, v: str) -> Any:
        return lambda at: self.metric[v]

    def _bad(self, v: str) -> Any:
        return lambda at: float(self.bad[v])

    @property
    def controller(self) -> RolloutController:
        return self.port.controllers[MODEL]

    def tick(self, n: int = 60) -> str:
        for router in self.port.routers.get(MODEL, []):
            t = router.table
            names = sorted(t.weights)
            weights = [t.weights[v] for v in names]
            for i in range(n):
                v = self.rng.choices(names, weights)[0]
                bad = self.rng.random() < self.err.get(v, 0.005)
                self.bad[v] += bad
                lat = self.rng.lognormvariate(math.log(10.0), 0.3)
                router.request(self.clock.t + i / n, v, lat, Outcome.ERROR if bad else Outcome.OK)
        self.clock.t += 1.0
        self.controller.step()
        return str(self.controller.status()["phase"])

    def run_until(self, phases: set[str], ticks: int = 300) -> str:
        for _ in range(ticks):
            phase = self.tick()
            if phase in phases:
                return phase
        raise AssertionError(f"still {self.controller.status()['phase']} after {ticks} ticks")

    def checks(self) -> dict[str, dict[str, Any]]:
        return {c["check"]: c for c in self.controller.status()["checks"].get("v2", [])}

    def close(self) -> None:
        self.controller.store.close()


def spec_doc(store: str, **guard: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "stable": {"name": "v1", "runtime": "onnx", "artifact": "models/artifacts/v1.onnx"},
        "candidates": [{"name": "v2", "runtime": "onnx", "artifact": "models/artifacts/v2.onnx"}],
        "strategy": {"steps": [{"weight": 20, "min_duration_s": 10},
                               {"weight": 50, "min_duration_s": 10}]},
        "analysis": {
            "alpha": 0.05,
            "checks": [{"kind": "promql_compare", "name": "failures", "params": {
                "url": URL, "query": BAD, "interval_s": 2, "timeout_s": 1, "settle_s": 3,
                "min_intervals": 3}}],
            "guards": [{"kind": "promql_threshold", "name": "checkout", "params": {
                "url": URL, "query": METRIC, "max_value": 0.05, "interval_s": 1,
                "timeout_s": 1, **guard}}],
        },
        "rollback_window_s": 5,
        "drain_s": 1,
        "router": {"deployment": {"num_replicas": 1}},
        "store_path": store,
    }


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    c = Cluster(tmp_path / "r.db")
    yield c
    c.close()


def start(c: Cluster, **guard: Any) -> rr.Rollout:
    return rr.start(spec_doc(c.store, **guard), store_path=c.store, port=c.port)


def replays_without_prometheus(c: Cluster, rollout: int) -> bool:
    """Replay from a fresh reader of the store: no controller, no source."""
    store = Store(c.store)
    try:
        same, replayed, recorded = replay_rollout(store, rollout)
        return same and len(replayed) == len(recorded) > 0
    finally:
        store.close()


def test_a_healthy_candidate_is_promoted_and_replays_without_prometheus(
        cluster: Cluster) -> None:
    ro = start(cluster)
    assert cluster.run_until({"canary"}) == "canary"
    checks = cluster.checks()
    assert checks["checkout"]["verdict"] in ("PASS", "INCONCLUSIVE")
    assert cluster.run_until({"promoted"}) == "promoted"
    log = ro.history()
    passed = [e for e in log if e["phase_to"] == "promoted" or e.get("step", -1) == 1]
    ev = {r["check"]: r for r in passed[-1]["evidence"]["v2"]}
    assert ev["checkout"]["verdict"] == "PASS" and ev["failures"]["verdict"] == "PASS"
    assert ev["failures"]["counts"]["intervals"] >= 3
    assert "candidate value 0.01 vs range [-inf, 0.05]" in ev["checkout"]["reason"]
    assert {u for u, _ in cluster.made} == {URL}
    asked = {q for q, _ in cluster.prom.asked}
    assert 'checkout_errors_ratio{version="v2"}' in asked
    assert 'sum(failed_total{model="m",version="v1"})' in asked
    # the readings are tick inputs in the store
    store = Store(cluster.store)
    ticks = store.ticks(ro.status()["rollout"])
    store.close()
    readings = [t["readings"] for t in ticks if "readings" in t]
    assert readings and set(readings[-1]["v2"]) <= {"checkout", "failures"}
    assert ro.replay()["identical"]
    assert replays_without_prometheus(cluster, ro.status()["rollout"])


def test_a_regressed_custom_metric_rolls_the_candidate_back(cluster: Cluster) -> None:
    ro = start(cluster)
    assert cluster.run_until({"canary"}) == "canary"
    cluster.metric["v2"] = 0.2  # the candidate breaks checkout
    assert cluster.run_until({"rolled_back"}) == "rolled_back"
    last = ro.history()[-1]
    assert "checkout" in last["reason"]
    ev = {r["check"]: r for r in last["evidence"]["v2"]}
    assert ev["checkout"]["verdict"] == "FAIL" and ev["checkout"]["value"] == 0.2
    assert "out of range" in ev["checkout"]["reason"]
    assert replays_without_prometheus(cluster, ro.status()["rollout"])


def test_more_failures_in_the_counters_roll_the_candidate_back(cluster: Cluster) -> None:
    ro = start(cluster)
    cluster.err = {"v1": 0.01, "v2": 0.15}
    assert cluster.run_until({"rolled_back"}) == "rolled_back"
    last = ro.history()[-1]
    ev = {r["check"]: r for r in last["evidence"]["v2"]}
    assert ev["failures"]["verdict"] == "FAIL" and "failures" in last["reason"]
    assert ev["failures"]["log_e"] >= math.log(ev["failures"]["threshold"]) - 1e-9
    assert replays_without_prometheus(cluster, ro.status()["rollout"])


def test_prometheus_down_holds_the_rollout_with_error_and_never_rolls_back(
        cluster: Cluster) -> None:
    ro = start(cluster)
    assert cluster.run_until({"canary"}) == "canary"
    cluster.prom.down = True
    cluster.metric["v2"] = 0.9  # what Prometheus would say if it could: it cannot
    for _ in range(40):
        assert cluster.tick() == "canary"
    checks = cluster.checks()
    for name in ("checkout", "failures"):
        assert checks[name]["verdict"] == "ERROR"
        assert "Prometheus unavailable [unavailable]" in checks[name]["reason"]
        assert "prom.test" in checks[name]["reason"]
    assert ro.status()["step"] == 0  # held where it was
    cluster.prom.down = False
    cluster.metric["v2"] = 0.01
    assert cluster.run_until({"promoted", "rolled_back"}) == "promoted"
    assert replays_without_prometheus(cluster, ro.status()["rollout"])


def test_a_query_error_is_error_and_an_empty_result_inconclusive(cluster: Cluster) -> None:
    start(cluster)
    assert cluster.run_until({"canary"}) == "canary"
    q = 'checkout_errors_ratio{version="v2"}'
    cluster.prom.set(q, QueryFailed("Prometheus refused the query (bad_data): parse error"))
    cluster.tick()
    r = cluster.checks()["checkout"]
    assert r["verdict"] == "ERROR" and "query error [query_error]" in r["reason"]
    assert "parse error" in r["reason"]
    del cluster.prom.answers[q]
    cluster.tick()
    r = cluster.checks()["checkout"]
    assert r["verdict"] == "INCONCLUSIVE" and "empty result" in r["reason"]
    for _ in range(20):
        assert cluster.tick() == "canary"


def test_reads_never_hold_the_tick(tmp_path: Path) -> None:
    """With the poller's threads (the default), a source that hangs does not hold a step: the
    tick goes on and the check waits for its reading."""
    c = Cluster(tmp_path / "r.db", inline=False)
    release = threading.Event()
    hung = threading.Event()

    def hang(at: float | None) -> float:
        hung.set()
        release.wait(60)
        return 0.01

    try:
        start(c)
        assert c.run_until({"canary"}) == "canary"
        c.prom.set('checkout_errors_ratio{version="v2"}', hang)
        for _ in range(3):
            t = threading.Thread(target=c.tick)
            t.start()
            t.join(30)
            assert not t.is_alive(), "a tick waited for a hung source"
        assert hung.is_set()
    finally:
        release.set()
        c.controller._poller.close()
        c.close()


def test_a_host_the_operator_did_not_allow_is_refused_at_start(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOSTS_ENV, "prometheus.internal")
    with pytest.raises(ConfigError, match=r"analysis.checks\[0\].params.url: .*'prom.test'"):
        start(cluster)
