"""Closed-loop HTTP load: ``load(...)`` / ``load_async(...)`` with a fixed duration per cell
(warm-up first, then only requests that *start* inside the window are timed), and
``wait_http_ok`` for a route to come up."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks._common.cpu import CpuSampler

JSON_HEADERS = {"content-type": "application/json"}
CLIENTS = ("raw", "httpx")

OnDone = Callable[[float, float, bool], None]


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


async def _raw_request_loop(
    host: str, port: int, request: bytes, stop: Callable[[], bool], on_done: OnDone
) -> None:
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
            try:
                writer.write(request)
                ok, close = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok, close = False, True
            on_done(t0, time.perf_counter(), ok)
            if close:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[bool, bool]:
    """Read one response off ``reader``: (status is 200, the connection must be closed)."""
    status = await reader.readline()
    ok, close = status[9:12] == b"200", False
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
    return ok, close


async def _drive_raw(
    url: str,
    body: bytes,
    hdrs: dict[str, str],
    concurrency: int,
    stop: Callable[[], bool],
    on_done: OnDone,
) -> None:
    """``concurrency`` raw keep-alive connections posting ``body`` until ``stop()``."""
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


async def _drive_httpx(
    url: str,
    body: bytes,
    hdrs: dict[str, str],
    concurrency: int,
    stop: Callable[[], bool],
    on_done: OnDone,
) -> None:
    """``concurrency`` httpx.AsyncClient workers posting ``body`` until ``stop()``."""
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


_DRIVERS = {"raw": _drive_raw, "httpx": _drive_httpx}


async def _load(
    url: str,
    body: bytes,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    client: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, int, list[float], float]:
    """(requests ok, errors, latencies ms, client CPU s) of the requests started in the window."""
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
    drive = _DRIVERS.get(client)
    if drive is None:
        raise ValueError(f"unknown client {client!r}")
    await drive(url, body, hdrs, concurrency, stop, on_done)
    await marker
    cpu = time.process_time() - cpu0
    return counts[0], counts[1], lat, cpu


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
