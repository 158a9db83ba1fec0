"""The open-loop load generator, in its own process (``client_proc``, a ``multiprocessing``
spawn target): requests are scheduled at a fixed rate and each is sent when its time comes,
whatever the server is doing; the label of every answered request goes back to the router's
feedback route, in batches.

One row per scheduled request: ``[t_sched, t_done, status, version, kind]``. ``status`` 0 is a
client-side failure; ``kind`` names every failure (``http-<code>``, ``transport:<error>``,
``timeout``, ``client-saturated``: more than ``max_in_flight`` requests were open) and is ""
for a 200. Latency is ``t_done - t_sched``: time spent waiting for a connection counts
(open-loop: no coordinated omission)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from benchmarks import _common as c

Row = tuple[float, float, int, str, str]
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
REQUEST_TIMEOUT_S = 30.0
FEEDBACK_EVERY_S = 0.5


def _post(host: str, port: int, path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _reply(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    """(status, lower-cased headers, body) of one response."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed by server")
    status = int(line[9:12])
    headers: dict[bytes, bytes] = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b""):
            break
        k, _, v = h.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            body += (await reader.readexactly(size + 2))[:size]
            if size == 0:
                break
    elif b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    else:
        body = await reader.read()
        headers[b"connection"] = b"close"
    return status, headers, body


class OpenLoop:
    """Sends request ``i`` at ``t0 + i / rate`` on an idle keep-alive connection (a new one when
    none is idle), for ``duration_s``; then waits for the stragglers."""

    def __init__(self, host: str, port: int, model: str, cfg: dict[str, Any],
                 bodies: list[bytes], labels: list[int], token: str) -> None:
        self.host, self.port = host, port
        self.requests = [_post(host, port, f"/v1/models/{model}/predict", b) for b in bodies]
        self.feedback_path = f"/v1/models/{model}/feedback"
        self.auth = f"Authorization: Bearer {token}\r\n"  # a token of scope ``feedback``
        self.labels = labels
        self.rate = float(cfg["rate"])
        self.max_in_flight = int(cfg["max_in_flight"])
        self.idle: list[Conn] = []
        self.in_flight = 0
        self.rows: list[Row] = []
        self.pending_labels: list[dict[str, Any]] = []
        self.feedback: dict[str, int] = {"posts": 0, "failed_posts": 0, "labels": 0}
        self.feedback_error = ""  # the last failed post's reason

    async def _conn(self) -> Conn:
        return self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)

    async def one(self, i: int, t_sched: float) -> None:
        if self.in_flight >= self.max_in_flight:
            self.rows.append((t_sched, time.time(), 0, "", "client-saturated"))
            return
        self.in_flight += 1
        status, version, kind = 0, "", ""
        conn: Conn | None = None
        try:
            conn = await self._conn()
            conn[1].write(self.requests[i % len(self.requests)])
            status, headers, _ = await asyncio.wait_for(_reply(conn[0]), REQUEST_TIMEOUT_S)
            version = headers.get(b"x-model-version", b"").decode()
            rid = headers.get(b"x-rollout-request-id", b"").decode()
            if status == 200 and rid:
                label = self.labels[i % len(self.labels)]
                self.pending_labels.append({"request_id": rid, "label": label})
            if status != 200:
                kind = f"http-{status}"
            if headers.get(b"connection", b"").lower() == b"close":
                conn[1].close()
            else:
                self.idle.append(conn)
        except (TimeoutError, asyncio.TimeoutError, OSError, asyncio.IncompleteReadError,
                ValueError) as e:  # asyncio.TimeoutError: Python 3.10
            timeout = isinstance(e, TimeoutError | asyncio.TimeoutError)
            kind = "timeout" if timeout else f"transport:{type(e).__name__}"
            if conn is not None:  # a failed exchange leaves the connection in an unknown state
                conn[1].close()
        finally:
            self.in_flight -= 1
        self.rows.append((t_sched, time.time(), status, version, kind))

    async def post_labels(self, stopped: list[bool]) -> None:
        """Every ``FEEDBACK_EVERY_S``: the labels gathered so far, in one POST."""
        conn: Conn | None = None
        while True:
            done = stopped[0]
            await asyncio.sleep(0 if done else FEEDBACK_EVERY_S)
            batch, self.pending_labels = self.pending_labels, []
            if batch:
                body = json.dumps({"feedback": batch}).encode()
                try:
                    conn = conn or await asyncio.open_connection(self.host, self.port)
                    conn[1].write(_post(self.host, self.port, self.feedback_path, body, self.auth))
                    status, _, text = await asyncio.wait_for(_reply(conn[0]), REQUEST_TIMEOUT_S)
                    ok = status == 200
                    if not ok:
                        self.feedback_error = f"{status} {text[:200]!r}"
                except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError,
                        asyncio.TimeoutError) as e:
                    ok, self.feedback_error = False, f"{type(e).__name__}: {e}"[:200]
                    conn = None
                self.feedback["posts"] += 1
                self.feedback["failed_posts"] += 0 if ok else 1
                self.feedback["labels"] += len(batch) if ok else 0
            if done:
                return

    async def run(self, t0: float, duration_s: float, stop_evt: Any) -> None:
        stopped = [False]
        labeller = asyncio.ensure_future(self.post_labels(stopped))
        tasks: set[asyncio.Task[None]] = set()
        n = int(duration_s * self.rate)
        for i in range(n):
            if stop_evt.is_set():
                break
            t_sched = t0 + i / self.rate
            delay = t_sched - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(self.one(i, t_sched))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
        stopped[0] = True
        await labeller
        for _, w in self.idle:
            w.close()


def client_proc(host: str, port: int, model: str, cfg: dict[str, Any], bodies: list[bytes],
                labels: list[int], token: str, t0: float, stop_evt: Any, out_path: str) -> None:
    """Open loop from ``t0`` for ``cfg['duration_s']``; rows, feedback counts and CPU seconds to
    ``out_path`` as JSON. ``stop_evt`` ends it early; ``token`` goes with the labels."""
    gen = OpenLoop(host, port, model, cfg, bodies, labels, token)
    cpu0 = time.process_time()
    c.run_async(gen.run(t0, float(cfg["duration_s"]), stop_evt))
    doc = {"rows": gen.rows, "feedback": {**gen.feedback, "last_error": gen.feedback_error},
           "cpu_s": time.process_time() - cpu0}
    Path(out_path).write_text(json.dumps(doc))
