"""``RouterPlatform``: what a router replica takes from the platform it runs on, injected so the
router itself stays free of Ray (``rayrollout.serving.ingress`` supplies Ray Serve's; tests
supply ``LocalVersions`` and ``FakeServePort``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rayrollout.controller.port import ServePort
from rayrollout.dataplane.aggregates import Recorder
from rayrollout.dataplane.routing import RoutingTable
from rayrollout.ingress.versions import VersionClient


class Exporter(Protocol):
    """Turns a router's aggregates into metrics off the request path; started once the
    replica's event loop runs."""

    def ensure_started(self) -> None: ...


ExporterFactory = Callable[[str, Recorder, Callable[[], RoutingTable]], Exporter]


def run_in_thread(fn: Callable[[], Any]) -> None:
    """Run a blocking function on a daemon thread (the default ``background``)."""
    threading.Thread(target=fn, daemon=True).start()


@dataclass
class RouterPlatform:
    """``versions`` calls version apps; ``port`` reaches the controller (admin API, adopting the
    controller's table after a restart, starting a rollout under ``serve run``), None when
    there is none; ``replica`` names this replica in the aggregates; ``transport_limit`` is the
    most tensor bytes one call to a version may carry (None: no cap); ``exporter`` turns the
    aggregates into metrics; ``background`` runs a blocking function off the request path."""

    versions: VersionClient
    port: ServePort | None = None
    replica: str = ""
    transport_limit: int | None = None
    exporter: ExporterFactory | None = None
    background: Callable[[Callable[[], Any]], None] | None = None
