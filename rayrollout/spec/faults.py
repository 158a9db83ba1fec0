"""``FaultSpec``: faults a version injects into itself on purpose, for drills and tests.

Part of a version's config (``VersionSpec.faults``), off by default: a version without
``faults`` (or with every fault off) runs exactly as before. Each fault is independent:

* ``latency_ms``: every request waits this much longer.
* ``tail_fraction`` + ``tail_ms``: that fraction of requests waits ``tail_ms`` longer.
* ``error_rate``: that fraction of requests raises (a model failure, HTTP 500).
* ``crash_after_requests`` or ``crash_after_s``: the replica process exits hard (``os._exit``)
  once, after that many requests or seconds; Serve starts a new replica, which does the same.
* ``hang_fraction``: that fraction of requests never answers (the router's
  ``request_timeout_s`` turns each into a TIMEOUT).
* ``wrong_fraction``: that fraction of rows is answered wrongly: a different class (with the
  class's probabilities swapped, so every output agrees) or, for regression, an offset.
* ``slow_start_s``: the replica's constructor waits this long before the replica is ready.
* ``start_after_s``: the per-request faults and the crash begin this long after the replica
  started, so a drill can see a healthy start. ``seed`` makes the random draws repeatable.

The runtime side (``rayrollout.runtime.faults.FaultInjector``) reads these fields; it does not
import this module (the layers), so the two agree through the ``FaultPlan`` protocol.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from rayrollout.spec.base import Strict

MAX_DELAY_MS = 600_000.0  # ten minutes: far beyond any sane request timeout
MAX_SECONDS = 86_400.0


class FaultSpec(Strict):
    """Faults one version injects; every field off by default, every number bounded."""

    latency_ms: float = Field(0.0, ge=0, le=MAX_DELAY_MS)
    tail_fraction: float = Field(0.0, ge=0, le=1)
    tail_ms: float = Field(0.0, ge=0, le=MAX_DELAY_MS)
    error_rate: float = Field(0.0, ge=0, le=1)
    crash_after_requests: int | None = Field(None, ge=1, le=1_000_000_000)
    crash_after_s: float | None = Field(None, gt=0, le=MAX_SECONDS)
    hang_fraction: float = Field(0.0, ge=0, le=1)
    wrong_fraction: float = Field(0.0, ge=0, le=1)
    slow_start_s: float = Field(0.0, ge=0, le=3_600)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    start_after_s: float = Field(0.0, ge=0, le=MAX_SECONDS)

    @model_validator(mode="after")
    def _consistent(self) -> FaultSpec:
        if (self.tail_fraction > 0) != (self.tail_ms > 0):
            raise ValueError(
                f"tail_fraction={self.tail_fraction:g} and tail_ms={self.tail_ms:g}: a tail "
                "needs both (a fraction of requests and how much longer they take)"
            )
        if self.crash_after_requests is not None and self.crash_after_s is not None:
            raise ValueError(
                f"crash_after_requests={self.crash_after_requests} and crash_after_s="
                f"{self.crash_after_s:g}: set one of them (a replica crashes once)"
            )
        if self.error_rate + self.hang_fraction > 1:
            raise ValueError(
                f"error_rate={self.error_rate:g} + hang_fraction={self.hang_fraction:g} > 1: "
                "a request either fails or hangs"
            )
        return self

    @property
    def active(self) -> bool:
        """Whether any fault is on (a ``FaultSpec()`` with all defaults changes nothing)."""
        return bool(
            self.latency_ms or self.tail_fraction or self.error_rate or self.hang_fraction
            or self.wrong_fraction or self.slow_start_s or self.crash_after_requests
            or self.crash_after_s
        )
