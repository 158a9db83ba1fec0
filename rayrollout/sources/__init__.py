"""The ``MetricSource`` plug-in point: where a check's numbers come from.

The built-in checks read the routers' own events (the default, collected every tick); checks
of kind ``promql_threshold`` and ``promql_compare`` read Prometheus through a source:

* ``MetricSource`` (``rayrollout.sources.base``): one query -> one finite number, or a
  ``SourceError`` whose ``kind`` says why not;
* ``PromQLSource`` (``rayrollout.sources.prometheus``): Prometheus' instant-query API, with a
  timeout and the operator's host list (``RAYROLLOUT_PROMETHEUS_HOSTS``);
* ``FakeSource`` (``rayrollout.sources.fake``): scripted answers, for tests;
* ``take_reading`` and ``Poller`` (``rayrollout.sources.poll``): readings as recorded data,
  taken off the controller's thread.

Sources do I/O and import no Ray, and nothing of rayrollout but its errors: the controller's
shell reads them and hands the readings to the pure core (docs/sources.md).
"""

from __future__ import annotations

from rayrollout.sources.base import (
    ERROR_KINDS,
    BadResponse,
    EmptyResult,
    MetricSource,
    NotANumber,
    QueryFailed,
    SourceError,
    SourceUnavailable,
    TooManySeries,
)
from rayrollout.sources.fake import FakeSource
from rayrollout.sources.poll import Poller, take_reading
from rayrollout.sources.prometheus import HOSTS_ENV, PromQLSource, check_url

__all__ = [
    "ERROR_KINDS",
    "HOSTS_ENV",
    "BadResponse",
    "EmptyResult",
    "FakeSource",
    "MetricSource",
    "NotANumber",
    "Poller",
    "PromQLSource",
    "QueryFailed",
    "SourceError",
    "SourceUnavailable",
    "TooManySeries",
    "check_url",
    "take_reading",
]
