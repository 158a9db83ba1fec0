"""Helpers shared by the serving benchmarks (``router_overhead``, ``inference_throughput``).

* ``start_ray(mode)``: one local Ray + Serve session the way this 2-core machine wants it, in
  the default proxy mode or the experimental direct-ingress mode (HAProxy in front of the
  ingress replicas, no Python proxy hop). The env vars must be set before Ray starts, so each
  mode runs in its own subprocess (``run_worker``).
* ``load(...)``: a closed-loop asyncio httpx load generator with a fixed duration per cell
  (warm-up first, then only requests that *start* inside the window are timed).
* ``CpuSampler``: CPU seconds per process of this Ray session (read from /proc), so a result
  says where the two cores went.
* ``machine()``, ``write_result()``: the metadata every result JSON carries.

Timing lives here and in the benchmarks, never in tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
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


# -- Ray session --------------------------------------------------------------------------------


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


def wait_http_ok(url: str, body: bytes, timeout_s: float = 60.0) -> None:
    """Until ``url`` answers 200 to ``body`` (routes reach proxies/HAProxy asynchronously)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            r = httpx.post(url, content=body, headers=JSON_HEADERS, timeout=10)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout_s:g} s: {last}")


# -- load generator -----------------------------------------------------------------------------

JSON_HEADERS = {"content-type": "application/json"}


@dataclass
class Cell:
    """One measured cell: a target at one concurrency for a fixed window."""

    target: str
    concurrency: int
    duration_s: float
    requests: int
    errors: int
    latencies_ms: list[float] = field(repr=False)
    client_cpu_s: float
    server_cpu_s: dict[str, float]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "target": self.target,
            "concurrency": self.concurrency,
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "errors": self.errors,
            "rps": round(self.rps, 1),
            "p50_ms": round(quantile(lat, 0.50), 3),
            "p99_ms": round(quantile(lat, 0.99), 3),
            "mean_ms": round(statistics.fmean(lat), 3) if lat else None,
            "client_cpu_s": round(self.client_cpu_s, 2),
            "server_cpu_s": {k: round(v, 2) for k, v in sorted(self.server_cpu_s.items())},
        }


def quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


async def _raw_request_loop(host: str, port: int, request: bytes, stop: Any, on_done: Any) -> None:
    """One keep-alive HTTP/1.1 connection, one request in flight at a time. Minimal parser
    (status line, Content-Length or chunked body, Connection: close); costs far less CPU
    per request than httpx, which matters when the client shares two cores with the server."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        while not stop():
            if reader is None or writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            t0 = time.perf_counter()
            ok, close = False, False
            try:
                writer.write(request)
                status = await reader.readline()
                ok = status[9:12] == b"200"
                clen, chunked = -1, False
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    k, _, v = line.partition(b":")
                    k = k.strip().lower()
                    if k == b"content-length":
                        clen = int(v)
                    elif k == b"transfer-encoding" and b"chunked" in v.lower():
                        chunked = True
                    elif k == b"connection" and b"close" in v.lower():
                        close = True
                if chunked:
                    while True:
                        size = int((await reader.readline()).split(b";")[0], 16)
                        await reader.readexactly(size + 2)
                        if size == 0:
                            break
                elif clen >= 0:
                    await reader.readexactly(clen)
                else:
                    await reader.read()
                    close = True
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok, close = False, True
            on_done(t0, time.perf_counter(), ok)
            if close:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def _load(
    url: str,
    body: bytes,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    client: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, int, list[float], float]:
    hdrs = {**JSON_HEADERS, **(headers or {})}
    lat: list[float] = []
    counts = [0, 0]  # ok, errors (started inside the window)
    t_start = time.perf_counter()
    t_measure = t_start + warmup_s
    t_end = t_measure + duration_s

    def on_done(t0: float, t1: float, ok: bool) -> None:
        if t0 >= t_measure:
            if ok:
                counts[0] += 1
                lat.append((t1 - t0) * 1000.0)
            else:
                counts[1] += 1

    def stop() -> bool:
        return time.perf_counter() >= t_end

    cpu0 = -1.0

    async def cpu_mark() -> None:
        nonlocal cpu0
        await asyncio.sleep(max(0.0, t_measure - time.perf_counter()))
        cpu0 = time.process_time()

    marker = asyncio.ensure_future(cpu_mark())
    if client == "raw":
        from urllib.parse import urlsplit

        u = urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        extra = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        request = (
            f"POST {u.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        await asyncio.gather(
            *(_raw_request_loop(host, port, request, stop, on_done) for _ in range(concurrency))
        )
    elif client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60) as hc:

            async def worker() -> None:
                while not stop():
                    t0 = time.perf_counter()
                    try:
                        r = await hc.post(url, content=body, headers=hdrs)
                        ok = r.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    on_done(t0, time.perf_counter(), ok)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    else:
        raise ValueError(f"unknown client {client!r}")
    await marker
    cpu = time.process_time() - cpu0
    return counts[0], counts[1], lat, cpu


CLIENTS = ("raw", "httpx")


async def load_async(
    target: str,
    url: str,
    body: bytes,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    client: str = "raw",
    headers: dict[str, str] | None = None,
) -> Cell:
    """``load`` on the running event loop (for callers that also await Serve handles)."""
    sampler = CpuSampler()

    async def mark() -> None:
        await asyncio.sleep(warmup_s)
        sampler.start()

    m = asyncio.ensure_future(mark())
    ok, errors, lat, client_cpu = await _load(
        url, body, concurrency, warmup_s, duration_s, client, headers
    )
    await m
    return Cell(target, concurrency, duration_s, ok, errors, lat, client_cpu, sampler.stop())


def run_async(coro: Any) -> Any:
    """Run ``coro`` on a fresh uvloop (asyncio if uvloop is missing)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def load(
    target: str,
    url: str,
    body: bytes,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    client: str = "raw",
    headers: dict[str, str] | None = None,
) -> Cell:
    """Closed loop: ``concurrency`` connections, each with one request in flight, for warm-up
    plus ``duration_s``. Requests that start in the window count; throughput is count / window.

    ``client``: ``raw`` (default; a minimal asyncio HTTP/1.1 keep-alive client on uvloop,
    ~0.1 ms CPU a request) or ``httpx`` (``httpx.AsyncClient``, ~2-5 ms CPU a request here).
    ``headers``: request headers on top of ``content-type: application/json`` (which they may
    override), e.g. ``inference-header-content-length`` for OIP binary tensors."""
    return run_async(
        load_async(target, url, body, concurrency, warmup_s, duration_s, client, headers)
    )


# -- CPU accounting -----------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (ppid, name, cpu seconds) for every process we can read."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        ppid, ut, st = int(rest[1]), int(rest[11]), int(rest[12])
        out[int(p)] = (ppid, cmd, (ut + st) / _TICK)
    return out


def _label(cmd: str) -> str:
    if cmd.startswith("ray::ServeReplica:"):
        return "replica:" + cmd.split(":", 2)[2]
    if cmd.startswith("ray::"):
        return cmd[5:].split(" ")[0].split(".")[0]
    base = os.path.basename(cmd.split(" ")[0])
    return "ray-internal:" + base if base in ("raylet", "gcs_server") else base


class CpuSampler:
    """CPU seconds of this process's descendants (the Ray session it started) over a window."""

    def __init__(self) -> None:
        self._t0: dict[int, tuple[str, float]] = {}

    def _descendants(self) -> dict[int, tuple[str, float]]:
        table = _proc_table()
        me = os.getpid()
        kids: dict[int, list[int]] = defaultdict(list)
        for pid, (ppid, _, _) in table.items():
            kids[ppid].append(pid)
        out, stack = {}, list(kids[me])
        while stack:
            pid = stack.pop()
            _, cmd, cpu = table[pid]
            out[pid] = (_label(cmd), cpu)
            stack.extend(kids[pid])
        return out

    def start(self) -> None:
        self._t0 = self._descendants()

    def stop(self) -> dict[str, float]:
        now = self._descendants()
        by: dict[str, float] = defaultdict(float)
        for pid, (label, cpu) in now.items():
            d = cpu - self._t0.get(pid, (label, 0.0))[1]
            if d > 0.005:
                by[label] += d
        return dict(by)


# -- metadata -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import httpx
    import numpy
    import onnxruntime
    import ray

    try:
        cpu_model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu_model = platform.processor()
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = None
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "loadavg_1m_at_start": load1,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {
            "ray": ray.__version__,
            "onnxruntime": onnxruntime.__version__,
            "numpy": numpy.__version__,
            "httpx": httpx.__version__,
        },
    }


def git_rev() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write_result(name: str, doc: dict[str, Any], out: Path | None = None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r) for r in cells[1:]]
    return "\n".join(lines)


__all__ = ["Cell", "CpuSampler", "asdict"]
