"""The Prometheus exporter's bookkeeping with stand-in metric objects: no Ray is imported or
started (``ray.util.metrics`` is only reached when real metrics are made)."""

from __future__ import annotations

from rayrollout.dataplane import metrics as spec
from rayrollout.dataplane.aggregates import Recorder
from rayrollout.dataplane.events import RequestEvent
from rayrollout.dataplane.routing import RoutingTable
from rayrollout.serving.exporter import MetricsExporter


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
