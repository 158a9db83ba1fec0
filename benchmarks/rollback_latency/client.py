"""The load generator, in its own process (``client_proc``, a ``multiprocessing`` spawn
target): closed loop, one row per request with the version and routing epoch that answered."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import _common as c

Row = tuple[float, float, int, str, int, str]  # t_send, t_recv, status, version, epoch, note


@dataclass
class _Reply:
    """What one response said, as far as it was read (a failed read keeps what came before)."""

    status: int = 0
    version: str = ""
    epoch: int = -1
    note: str = ""
    close: bool = False


def _request(host: str, port: int, path: str, body: bytes) -> bytes:
    """The bytes of one POST of ``body`` to ``path``."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _read_headers(reader: asyncio.StreamReader, rep: _Reply) -> tuple[int, bool]:
    """Header lines into ``rep``; (Content-Length or -1, chunked)."""
    clen, chunked = -1, False
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b""):
            break
        k, _, v = h.partition(b":")
        k, v = k.strip().lower(), v.strip()
        if k == b"content-length":
            clen = int(v)
        elif k == b"x-model-version":
            rep.version = v.decode()
        elif k == b"x-routing-epoch":
            rep.epoch = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
        elif k == b"connection" and b"close" in v.lower():
            rep.close = True
    return clen, chunked


async def _read_reply(reader: asyncio.StreamReader, rep: _Reply) -> None:
    """One response into ``rep``: status, headers, and the body's start as the note of a non-200."""
    line = await asyncio.wait_for(reader.readline(), 60)
    if not line:
        raise ConnectionError("connection closed by server")
    rep.status = int(line[9:12])
    clen, chunked = await _read_headers(reader, rep)
    data = b""
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            data += (await reader.readexactly(size + 2))[:size]
            if size == 0:
                break
    elif clen >= 0:
        data = await reader.readexactly(clen)
    else:
        data = await reader.read()
        rep.close = True
    if rep.status != 200:
        rep.note = data[:200].decode(errors="replace")


async def _raw_loop(
    host: str, port: int, request: bytes, stopped: list[bool], rows: list[Row]
) -> None:
    """One keep-alive connection (reopened after errors), one request in flight."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while not stopped[0]:
        t0 = time.time()
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as e:
                rows.append((t0, time.time(), 0, "", -1, f"connect: {e!r}"[:200]))
                await asyncio.sleep(0.05)
                continue
        assert reader is not None
        rep = _Reply()
        try:
            writer.write(request)
            await _read_reply(reader, rep)
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError,
                asyncio.TimeoutError) as e:  # asyncio.TimeoutError: Python 3.10
            rep.status, rep.close = 0, True
            rep.note = f"{type(e).__name__}: {e}"[:200]
        rows.append((t0, time.time(), rep.status, rep.version, rep.epoch, rep.note))
        if rep.close:
            writer.close()
            reader = writer = None


async def _httpx_loop(hc: Any, url: str, body: bytes, stopped: list[bool], rows: list[Row]) -> None:
    """One request in flight on the shared ``httpx.AsyncClient``."""
    import httpx

    hdrs = {"content-type": "application/json"}
    while not stopped[0]:
        t0 = time.time()
        try:
            r = await hc.post(url, content=body, headers=hdrs)
            ep = r.headers.get("x-routing-epoch")
            rows.append(
                (
                    t0,
                    time.time(),
                    r.status_code,
                    r.headers.get("x-model-version", ""),
                    int(ep) if ep else -1,
                    "" if r.status_code == 200 else r.text[:200],
                )
            )
        except httpx.HTTPError as e:
            rows.append((t0, time.time(), 0, "", -1, f"{type(e).__name__}: {e}"[:200]))


async def _drive(
    host: str,
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    client: str,
    stopped: list[bool],
    rows: list[Row],
) -> None:
    """``concurrency`` loops of the chosen client until ``stopped[0]``."""
    if client == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        url = f"http://{host}:{port}{path}"
        async with httpx.AsyncClient(limits=limits, timeout=60) as hc:
            await asyncio.gather(
                *(_httpx_loop(hc, url, body, stopped, rows) for _ in range(concurrency))
            )
    else:
        request = _request(host, port, path, body)
        await asyncio.gather(
            *(_raw_loop(host, port, request, stopped, rows) for _ in range(concurrency))
        )


def client_proc(
    host: str,
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    client: str,
    stop_evt: Any,
    out_path: str,
) -> None:
    """Closed loop, ``concurrency`` keep-alive connections, one request in flight on each; one
    row per request: (t_send, t_recv, status, x-model-version, x-routing-epoch, note).
    Status 0 is a transport error (connection refused/reset, timeout)."""
    rows: list[Row] = []
    stopped = [False]

    def watch() -> None:
        stop_evt.wait()
        stopped[0] = True

    threading.Thread(target=watch, daemon=True).start()
    cpu0 = time.process_time()
    c.run_async(_drive(host, port, path, body, concurrency, client, stopped, rows))
    doc = {"rows": rows, "cpu_s": time.process_time() - cpu0}
    Path(out_path).write_text(json.dumps(doc))
