"""The router's recorder and mergeable aggregates: pure, no Ray."""

from __future__ import annotations

import math

from rayrollout.dataplane.aggregates import Collected, Recorder, VersionStats, merge_stats
from rayrollout.dataplane.events import EventBatch, Outcome, RequestEvent, ShadowEvent


def ev(t: float, version: str, outcome: int = Outcome.OK, latency: float = 10.0) -> RequestEvent:
    return RequestEvent(t, version, 0.5, latency, outcome, 3.0, "", True, 1)


def test_rejects_are_counted_but_never_as_errors_or_events() -> None:
    r = Recorder("r1")
    r.record(ev(1, "v1"))
    r.record(ev(2, "v1", Outcome.REJECTED))
    r.reject("v1")
    r.record(ev(3, "v1", Outcome.ERROR))
    r.record(ev(4, "v1", Outcome.TIMEOUT))
    c = r.collect(epoch=1)
    s = c.stats["v1"]
    assert (s.requests, s.ok, s.rejected, s.errors, s.timeouts) == (5, 1, 2, 1, 1)
    assert s.failures == 2
    assert [e.outcome for e in c.events] == [Outcome.OK, Outcome.ERROR, Outcome.TIMEOUT]


def test_collect_returns_deltas_and_drains_events() -> None:
    r = Recorder("r1")
    for i in range(5):
        r.record(ev(i, "v1"))
    first = r.collect(1)
    assert first.stats["v1"].requests == 5 and len(first.events) == 5
    r.record(ev(9, "v1", latency=250.0))
    second = r.collect(1)
    assert second.stats["v1"].requests == 1 and [e.t for e in second.events] == [9]
    assert second.stats["v1"].latency_quantile(0.5) == 250.0
    assert r.collect(1).stats["v1"].requests == 0
    assert r.totals["v1"].requests == 6  # totals keep growing for the exporter


def test_bounded_buffer_counts_what_it_dropped() -> None:
    r = Recorder("r1", max_events=100)
    for i in range(250):
        r.record(ev(i, "v1"))
    c = r.collect(1)
    assert len(c.events) == 100 and c.dropped_events == 150
    assert c.events[0].t == 150  # the newest survive, in arrival order
    assert c.stats["v1"].requests == 250  # aggregates lose nothing
    for i in range(250, 380):
        r.record(ev(i, "v1"))
    assert r.collect(2).dropped_events == 30
    assert r.events_dropped == 180  # a running total for the exporter, across collects


def test_stats_merge_over_replicas_and_round_trip() -> None:
    a, b = Recorder("a"), Recorder("b")
    for i in range(3):
        a.record(ev(i, "v1", latency=5.0))
    b.record(ev(1.5, "v1", Outcome.ERROR))
    b.record(ev(2.5, "v2"))
    ca, cb = a.collect(1), b.collect(1)
    merged = merge_stats([ca.stats, cb.stats])
    assert merged["v1"].requests == 4 and merged["v1"].errors == 1 and merged["v2"].ok == 1
    back = Collected.from_dict(cb.to_dict())
    assert back.events == cb.events and back.stats["v2"].ok == 1
    batch = EventBatch.concat(
        [EventBatch.from_events(ca.events), EventBatch.from_events(cb.events)]
    )
    assert list(batch.t) == [0, 1, 1.5, 2, 2.5]


def test_shadow_comparisons_and_drops() -> None:
    r = Recorder("r")
    r.record_shadow(ShadowEvent(1.0, "v1", "sh", 1.0, 0.3, 5.0, True))
    r.record_shadow(ShadowEvent(2.0, "v1", "sh", 0.0, 0.1, 5.0, True))
    r.record_shadow(ShadowEvent(3.0, "v1", "sh", 1.0, math.nan, 5.0, False))
    r.shadow_dropped("sh")
    s = r.collect(1).stats["sh"]
    assert (s.shadow_compared, s.shadow_disagree, s.shadow_errors, s.shadow_dropped) == (
        2,
        1.0,
        1,
        1,
    )
    assert math.isclose(s.shadow_abs_diff, 0.4)


def test_latency_quantile_empty_is_nan() -> None:
    assert math.isnan(VersionStats().latency_quantile(0.99))


def test_the_watermark_is_the_earliest_arrival_still_in_flight() -> None:
    from rayrollout.dataplane.aggregates import Recorder

    r = Recorder("r")
    assert r.watermark(now=50.0) == 50.0  # nothing in flight: everything to come is later
    for t in (10.0, 12.0, 12.0, 11.0):
        r.arrive(t)
    assert r.watermark(60.0) == 10.0
    r.leave(12.0)
    r.leave(10.0)
    assert r.watermark(60.0) == 11.0
    r.leave(11.0)
    assert r.watermark(60.0) == 12.0  # the other request that arrived at 12.0 is still out
    r.leave(12.0)
    got = r.collect(epoch=3, now=70.0)
    assert got.watermark == 70.0
    from rayrollout.dataplane.aggregates import Collected

    assert Collected.from_dict(got.to_dict()).watermark == 70.0
    old = {k: v for k, v in got.to_dict().items() if k != "watermark"}
    assert Collected.from_dict(old).watermark == float("inf")  # a router that does not track


def test_a_non_finite_or_negative_prediction_is_no_class_and_counts_whole() -> None:
    r = Recorder("r1")
    for p in (math.inf, -math.inf, math.nan, -1.0, 1e300, 2.0):
        r.record(RequestEvent(0.0, "v1", 0.5, 10.0, int(Outcome.OK), p, "", True, 1))
    s = r.collect(1).stats["v1"]
    assert s.requests == s.ok == 6
    assert sum(s.class_counts) == 2  # 1e300 (the last class) and 2.0
