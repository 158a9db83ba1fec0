"""The Prometheus exporters' bookkeeping with stand-in metric objects: the router's
(``MetricsExporter``) and the controller's (``ControllerMetrics``, over a real
``RolloutController`` on the in-memory ``FakeServePort``). No Ray is imported or started
(``ray.util.metrics`` is only reached when real metrics are made)."""

from __future__ import annotations

import math
import random
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rayrollout.client.api as rr
from rayrollout.controller.fake import FakeServePort
from rayrollout.controller.store import open_store
from rayrollout.dataplane import metrics as spec
from rayrollout.dataplane.aggregates import Recorder
from rayrollout.dataplane.events import Outcome, RequestEvent
from rayrollout.dataplane.routing import RoutingTable
from rayrollout.errors import StoreError
from rayrollout.serving.controller_metrics import (
    PHASES,
    ROLES,
    ControllerMetrics,
    MeteredController,
    TimedStore,
    decision_kind,
)
from rayrollout.serving.exporter import MetricsExporter, refresh_interval_s


class Metric:
    """Records what the exporter did to one metric: the last value set per label set, and the
    sum of increments per label set."""

    def __init__(self, m: spec.MetricSpec) -> None:
        self.spec = m
        self.values: dict[tuple[tuple[str, str], ...], float] = {}

    def _key(self, tags: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(tags.items()))

    def set(self, value: float, tags: dict[str, str]) -> None:
        self.values[self._key(tags)] = value

    def inc(self, value: float, tags: dict[str, str]) -> None:
        k = self._key(tags)
        self.values[k] = self.values.get(k, 0.0) + value

    def observe(self, value: float, tags: dict[str, str]) -> None:
        self.inc(1, tags)


def table(epoch: int, **weights: float) -> RoutingTable:
    return RoutingTable.from_dict({"model": "m", "epoch": epoch, "weights": weights})


class Exported:
    def __init__(self, recorder: Recorder | None = None) -> None:
        self.table = table(1, v1=0.5, v2=0.5)
        self.recorder = recorder or Recorder("r1")
        self.exporter = MetricsExporter("m", self.recorder, lambda: self.table, make=Metric)

    def value(self, m: spec.MetricSpec, **tags: str) -> float | None:
        metric = self.exporter._m[m.name]
        assert isinstance(metric, Metric)
        return metric.values.get(tuple(sorted(tags.items())))


def test_a_rolled_back_candidate_weight_drops_to_zero() -> None:
    e = Exported()
    e.exporter.flush()
    assert e.value(spec.WEIGHT, model="m", version="v2") == 50.0
    e.table = table(2, v1=1.0)  # v2 rolled back: it left the table
    e.exporter.flush()
    assert e.value(spec.WEIGHT, model="m", version="v2") == 0.0
    assert e.value(spec.WEIGHT, model="m", version="v1") == 100.0
    assert e.value(spec.EPOCH, model="m") == 2


def ev(t: float) -> RequestEvent:
    return RequestEvent(t, "v1", 0.5, 10.0, 0, 3.0, "", True, 1)


def test_events_dropped_is_exported_as_a_counter() -> None:
    e = Exported(Recorder("r1", max_events=3))
    for t in range(5):
        e.recorder.record(ev(t))
    e.exporter.flush()
    assert e.value(spec.EVENTS_DROPPED, model="m") == 2
    e.recorder.collect(1)
    for t in range(5, 12):
        e.recorder.record(ev(t))
    e.exporter.flush()
    e.exporter.flush()  # nothing new: nothing added
    assert e.value(spec.EVENTS_DROPPED, model="m") == 2 + 4


def test_gauges_are_refreshed_twice_per_ray_report_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray's agent drops a gauge not set within two report intervals (floored at 1 s)."""
    monkeypatch.delitem(sys.modules, "ray", raising=False)  # another test may have imported it
    assert refresh_interval_s() == 2.0  # no Ray in this process: the default
    for report_ms, want in ((1000, 0.5), (200, 0.5), (3000, 1.5), (10_000, 2.0)):
        config = types.SimpleNamespace(metrics_report_interval_ms=lambda ms=report_ms: ms)
        monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(_config=config))
        assert refresh_interval_s() == want


# -- the controller's metrics -------------------------------------------------------------------

MODEL = "m"


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


class Controlled:
    """A real controller (timed ticks, timed SQLite store) on the fake cluster, its metrics
    exported to stand-in objects, and seeded traffic with per-version error rates."""

    def __init__(self, tmp: Path) -> None:
        self.clock = Clock()
        self.port = FakeServePort(self.clock)
        self.store_calls: list[tuple[str, float]] = []
        self.ticks: list[float] = []
        store = TimedStore(open_store(str(tmp / "store.db"), MODEL),
                           lambda op, s: self.store_calls.append((op, s)))
        c = MeteredController(MODEL, store, self.port, self.clock, self.port._notify)
        c.on_tick = self.ticks.append
        self.controller = self.port.controllers[MODEL] = c
        self.metrics = ControllerMetrics(MODEL, c.status, lambda n: c.history(n),
                                         interval_s=1.0, make=Metric)
        self.rng = random.Random(0)
        self.err: dict[str, float] = {}

    def start(self, steps: list[dict[str, Any]]) -> rr.Rollout:
        doc = {
            "model": MODEL,
            "stable": {"name": "v1", "runtime": "onnx", "artifact": "models/artifacts/v1.onnx"},
            "candidates": [{"name": "v2", "runtime": "onnx",
                            "artifact": "models/artifacts/v2.onnx"}],
            "strategy": {"steps": steps},
            "analysis": {"checks": [{"kind": "errors",
                                     "params": {"min_candidate_requests": 50}}],
                         "guards": [{"kind": "threshold_errors",
                                     "params": {"max_error_rate": 0.9}}]},
            "router": {"deployment": {"num_replicas": 2}},
        }
        return rr.start(doc, port=self.port)

    def tick(self, n: int = 60) -> str:
        for router in self.port.routers.get(MODEL, []):
            names = sorted(router.table.weights)
            weights = [router.table.weights[v] for v in names]
            for i in range(n):
                v = self.rng.choices(names, weights)[0]
                bad = self.rng.random() < self.err.get(v, 0.005)
                router.request(self.clock.t + i / n, v, 10.0,
                               Outcome.ERROR if bad else Outcome.OK)
        self.clock.t += 1.0
        self.controller.step()
        self.metrics.flush()
        return str(self.controller.status()["phase"])

    def value(self, m: spec.MetricSpec, **tags: str) -> float | None:
        metric = self.metrics._m[m.name]
        assert isinstance(metric, Metric)
        return metric.values.get(tuple(sorted(tags.items())))

    def phases(self) -> dict[str, float | None]:
        return {p: self.value(spec.CONTROLLER_PHASE, model=MODEL, phase=p) for p in PHASES}


@pytest.fixture
def controlled(tmp_path: Path) -> Iterator[Controlled]:
    c = Controlled(tmp_path)
    yield c
    c.controller.store.close()


def test_controller_state_is_exported_through_a_rollback(controlled: Controlled) -> None:
    c = controlled
    c.metrics.flush()  # no rollout yet: phase none, nothing else
    assert c.phases() == {p: 1.0 if p == "none" else 0.0 for p in PHASES}
    assert c.value(spec.CONTROLLER_STEP, model=MODEL) is None
    ro = c.start([{"weight": 20, "min_requests": 10**6}])
    while c.tick() != "canary":
        pass
    st = ro.status()
    assert c.phases() == {p: 1.0 if p == "canary" else 0.0 for p in PHASES}
    assert c.value(spec.CONTROLLER_STEP, model=MODEL) == 0
    assert c.value(spec.CONTROLLER_EPOCH, model=MODEL) == st["epoch"]
    assert c.value(spec.CONTROLLER_WEIGHT, model=MODEL, version="v2") == 20.0
    assert c.value(spec.CONTROLLER_WEIGHT, model=MODEL, version="v1") == 80.0
    roles = {(v, r): c.value(spec.CONTROLLER_ROLE, model=MODEL, version=v, role=r)
             for v in ("v1", "v2") for r in ROLES}
    assert roles == {("v1", "stable"): 1.0, ("v1", "candidate"): 0.0,
                     ("v1", "previous_stable"): 0.0, ("v2", "stable"): 0.0,
                     ("v2", "candidate"): 1.0, ("v2", "previous_stable"): 0.0}

    c.err = {"v2": 0.5}  # half of the candidate's requests fail
    for _ in range(200):
        if c.tick() == "rolled_back":
            break
    st = ro.status()
    assert st["phase"] == "rolled_back"
    assert c.phases() == {p: 1.0 if p == "rolled_back" else 0.0 for p in PHASES}
    assert c.value(spec.CONTROLLER_WEIGHT, model=MODEL, version="v2") == 0.0  # left: 0
    assert c.value(spec.CONTROLLER_WEIGHT, model=MODEL, version="v1") == 100.0
    assert c.value(spec.CONTROLLER_EPOCH, model=MODEL) == st["epoch"]
    # The failing check's evidence crossed its threshold, in the units the status shows.
    errors = next(r for r in st["checks"]["v2"] if r["check"] == "errors")
    evidence = c.value(spec.CHECK_EVIDENCE, model=MODEL, version="v2", check="errors")
    threshold = c.value(spec.CHECK_THRESHOLD, model=MODEL, check="errors")
    assert evidence == errors["log10_e"] and threshold == errors["log10_threshold"]
    assert evidence is not None and threshold is not None and evidence >= threshold > 0
    assert c.value(spec.CHECK_VERDICT, model=MODEL, version="v2", check="errors") == 3.0
    # A guard has a verdict but no e-value: no evidence series.
    assert c.value(spec.CHECK_VERDICT, model=MODEL, version="v2",
                   check="threshold_errors") is not None
    assert c.value(spec.CHECK_EVIDENCE, model=MODEL, version="v2",
                   check="threshold_errors") is None
    # Every decision after the first flush is counted once, by kind.
    kinds = {k[0][1]: n for k, n in c.metrics._m[spec.DECISIONS.name].values.items()}
    assert kinds == {"deploying": 1, "canary": 1, "rolled_back": 1}
    assert sum(kinds.values()) == st["decisions"]
    c.metrics.flush()
    assert {k[0][1]: n for k, n in c.metrics._m[spec.DECISIONS.name].values.items()} == kinds
    # The ticks were timed, and so were the store's calls (a commit per decision at least).
    assert len(c.ticks) == c.controller.ticks and all(t >= 0 for t in c.ticks)
    ops = [op for op, _ in c.store_calls]
    assert {"acquire", "holds", "create", "commit"} <= set(ops)
    assert ops.count("commit") >= st["decisions"]


def test_decisions_before_the_exporter_started_are_not_counted(controlled: Controlled) -> None:
    c = controlled
    c.start([{"weight": 20}])
    c.controller.step()  # a decision (deploying) the exporter never saw
    c.metrics.flush()
    assert c.metrics._m[spec.DECISIONS.name].values == {}
    c.tick()  # -> canary
    assert c.value(spec.DECISIONS, model=MODEL, kind="canary") == 1


def test_a_fenced_controller_exports_no_gauge() -> None:
    metrics = ControllerMetrics(MODEL, lambda: {"phase": "canary", "fenced": {"token": 1}},
                                lambda n: [], interval_s=1.0, make=Metric)
    metrics.flush()
    assert all(not m.values for m in metrics._m.values())


def test_a_version_that_leaves_the_rollout_reads_0_once_then_ages_out() -> None:
    status: dict[str, Any] = {"phase": "canary", "rollout": 1, "decisions": 0, "step": 0,
                              "epoch": 3, "stable": "v1", "weights": {"v1": 90.0, "v2": 10.0},
                              "candidates": [{"name": "v2"}, {"name": "v3"}]}
    metrics = ControllerMetrics(MODEL, lambda: status, lambda n: [], interval_s=1.0,
                                make=Metric)
    gauge = metrics._m[spec.CONTROLLER_WEIGHT.name]
    metrics.flush()
    assert gauge.values[(("model", MODEL), ("version", "v3"))] == 0.0  # a candidate, no weight
    status = {**status, "rollout": 2, "stable": "v4", "weights": {"v4": 100.0},
              "candidates": []}
    metrics.flush()
    assert gauge.values[(("model", MODEL), ("version", "v2"))] == 0.0
    role = metrics._m[spec.CONTROLLER_ROLE.name]
    assert role.values[(("model", MODEL), ("role", "stable"), ("version", "v1"))] == 0.0
    assert role.values[(("model", MODEL), ("role", "stable"), ("version", "v4"))] == 1.0
    gauge.values.clear()
    role.values.clear()
    metrics.flush()  # v1..v3 are not set again: Ray lets their series age out
    assert gauge.values == {(("model", MODEL), ("version", "v4")): 100.0}
    assert {k for k, v in role.values.items() if v} == {
        (("model", MODEL), ("role", "stable"), ("version", "v4"))}


def test_evidence_that_is_not_finite_is_not_exported() -> None:
    checks = {"v2": [{"check": "latency", "verdict": "FAIL", "log10_e": "inf",
                      "log10_threshold": 1.3}]}
    metrics = ControllerMetrics(MODEL, lambda: {"phase": "canary", "checks": checks},
                                lambda n: [], interval_s=1.0, make=Metric)
    metrics.flush()
    assert metrics._m[spec.CHECK_EVIDENCE.name].values == {}
    assert metrics._m[spec.CHECK_VERDICT.name].values == {
        (("check", "latency"), ("model", MODEL), ("version", "v2")): 3.0}
    assert not math.isnan(next(iter(metrics._m[spec.CHECK_THRESHOLD.name].values.values())))


@pytest.mark.parametrize(("entry", "prev_step", "kind"), [
    ({"kind": "deadline", "phase_from": "canary", "phase_to": "paused"}, 0, "deadline"),
    ({"kind": "Not A Kind!", "phase_from": "canary", "phase_to": "paused"}, 0, "paused"),
    ({"phase_from": "canary", "phase_to": "rolled_back", "step": 0}, 0, "rolled_back"),
    ({"phase_from": "canary", "phase_to": "canary", "step": 1}, 0, "step"),
    ({"phase_from": "canary", "phase_to": "canary", "step": 1}, 1, "update"),
    ({"phase_from": "canary", "phase_to": "somewhere"}, None, "update"),
])
def test_decision_kinds_stay_few(entry: dict[str, Any], prev_step: int | None,
                                 kind: str) -> None:
    assert decision_kind(entry, prev_step) == kind


def test_the_timed_store_reports_failed_calls_too(tmp_path: Path) -> None:
    calls: list[str] = []
    store = TimedStore(open_store(str(tmp_path / "s.db"), MODEL), lambda op, s: calls.append(op))
    token = store.acquire(MODEL, "me")
    with pytest.raises(StoreError):
        store.create(MODEL, "d", {}, {}, token=token + 1)  # a stale token: fenced
    assert calls == ["acquire", "create"]
    assert store.where.endswith("s.db") and store.head()[1] == 0
    store.close()
