"""Helpers shared by the serving benchmarks (``router_overhead``, ``inference_throughput``,
``rollback_latency``); ``from benchmarks import _common as c`` gives all of them.

* ``session``: ``start_ray(port)`` starts one local Ray + Serve session the way this 2-core
  machine wants it, in the default proxy mode or the experimental direct-ingress mode (HAProxy
  in front of the ingress replicas, no Python proxy hop). The env vars (``mode_env``) must be
  set before Ray starts, so each mode runs in its own subprocess (``run_worker``).
* ``http_load``: ``load(...)``, a closed-loop asyncio load generator (a minimal HTTP/1.1
  client, or httpx) with a fixed duration per cell (warm-up first, then only requests that
  *start* inside the window are timed).
* ``cpu``: ``CpuSampler``, CPU seconds per process of this Ray session (read from /proc), so a
  result says where the two cores went.
* ``output``: ``machine()``, ``git_rev()``, ``write_result()``: the metadata every result JSON
  carries; ``table()`` for the printed tables.

Timing lives here and in the benchmarks, never in tests.
"""

from __future__ import annotations

from dataclasses import asdict

from benchmarks._common.cpu import CpuSampler
from benchmarks._common.http_load import (
    CLIENTS,
    JSON_HEADERS,
    Cell,
    load,
    load_async,
    quantile,
    run_async,
    wait_http_ok,
)
from benchmarks._common.output import git_rev, machine, shown, table, write_result
from benchmarks._common.session import (
    ARTIFACTS,
    BASE_ENV,
    HELDOUT,
    RESULTS,
    ROOT,
    free_port,
    mode_env,
    mode_flags,
    run_worker,
    start_ray,
    stop_ray,
)

__all__ = [
    "ARTIFACTS",
    "BASE_ENV",
    "CLIENTS",
    "HELDOUT",
    "JSON_HEADERS",
    "RESULTS",
    "ROOT",
    "Cell",
    "CpuSampler",
    "asdict",
    "free_port",
    "git_rev",
    "load",
    "load_async",
    "machine",
    "mode_env",
    "mode_flags",
    "quantile",
    "run_async",
    "run_worker",
    "shown",
    "start_ray",
    "stop_ray",
    "table",
    "wait_http_ok",
    "write_result",
]
