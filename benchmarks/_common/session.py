"""Ray + Serve session of one benchmark worker: paths, Serve-mode env vars, start/stop, and
``run_worker`` (one subprocess per mode, because the env vars must be set before Ray starts)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "models" / "artifacts"
HELDOUT = ROOT / "models" / "heldout.npz"
RESULTS = ROOT / "benchmarks" / "results"

BASE_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_SERVE_LOG_TO_STDERR": "0",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mode_env(mode: str, tmp: str | None = None) -> dict[str, str]:
    """Environment of one Serve mode.

    ``proxy``: Serve's default (Python proxy actor). ``direct``: direct ingress behind HAProxy
    (``RAY_SERVE_ENABLE_DIRECT_INGRESS=1`` + ``RAY_SERVE_ENABLE_HA_PROXY=1``); every HAProxy file
    and port is private to this run, so concurrent sessions on the box don't collide.
    ``direct-tuned``: ``direct`` plus ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1``."""
    env = dict(BASE_ENV)
    if mode == "proxy":
        env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "0"
        env["RAY_SERVE_ENABLE_HA_PROXY"] = "0"
    elif mode in ("direct", "direct-tuned"):
        d = tmp or tempfile.mkdtemp(prefix="rr-haproxy-")
        env.update(
            RAY_SERVE_ENABLE_DIRECT_INGRESS="1",
            RAY_SERVE_ENABLE_HA_PROXY="1",
            RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=f"{d}/haproxy.cfg",
            RAY_SERVE_HAPROXY_SOCKET_PATH=f"{d}/admin.sock",
            RAY_SERVE_HAPROXY_SERVER_STATE_BASE=d,
            RAY_SERVE_HAPROXY_SERVER_STATE_FILE=f"{d}/server-state",
            RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH=f"{d}/metrics.sock",
            RAY_SERVE_HAPROXY_METRICS_PORT=str(free_port()),
            RAY_SERVE_HAPROXY_STATS_PORT=str(free_port()),
            RAY_SERVE_HAPROXY_LOG_TARGET=f"{d}/log.sock",
            # ingress replicas otherwise drain >= 30 s at shutdown (nothing to drain here)
            RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S="0",
        )
        if mode == "direct-tuned":
            # Serve's own throughput preset: user code and the handle router on the replica's
            # main event loop (no cross-thread hops), buffered request logs, gRPC handle
            # transport, GC frozen after start-up. Only env vars: no code change.
            env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return env


def mode_flags(mode: str) -> dict[str, str]:
    """The env vars that define ``mode`` (without the private HAProxy paths and ports)."""
    keep = ("RAY_SERVE_ENABLE_DIRECT_INGRESS", "RAY_SERVE_ENABLE_HA_PROXY")
    env = mode_env(mode, "/nonexistent")
    return {k: v for k, v in env.items() if k in keep or k == "RAY_SERVE_THROUGHPUT_OPTIMIZED"}


def start_ray(http_port: int) -> None:
    """Local Ray + Serve, as in ``tests/conftest.py`` (call after ``mode_env`` is applied)."""
    import ray
    from ray import serve

    ray.init(
        address="local",
        num_cpus=8,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    serve.start(http_options={"host": "127.0.0.1", "port": http_port})


def stop_ray() -> None:
    import ray
    from ray import serve

    try:
        serve.shutdown()
    except RuntimeError:  # a handle bound to an event loop that is closed by now
        pass
    finally:
        ray.shutdown()


def run_worker(module: str, mode: str, args: list[str], timeout_s: float) -> dict[str, Any]:
    """Run ``python -m module --worker MODE ...`` with that mode's env; return its JSON."""
    for attempt in (1, 2):  # a loaded box sometimes fails Ray's node start-up; retry once
        with tempfile.TemporaryDirectory(prefix="rr-bench-") as d:
            out = Path(d) / "out.json"
            env = {**os.environ, **mode_env(mode, d)}
            cmd = [sys.executable, "-m", module, "--worker", mode, "--out", str(out), *args]
            proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=timeout_s, check=False)
            if proc.returncode == 0 and out.exists():
                return dict(json.loads(out.read_text()))
        print(
            f"worker {mode!r} failed (exit code {proc.returncode}, attempt {attempt})",
            file=sys.stderr,
            flush=True,
        )
    raise RuntimeError(f"worker {mode!r} failed twice")
