"""What the router-overhead benchmark deploys and how it loads it."""

from __future__ import annotations

MODEL = "bench"
ROUTER_PREFIX = "/rr"
PLAIN_PREFIX = "/plain"
SPLIT = {"v1": 90.0, "v2": 10.0}
MAX_ONGOING = 1000  # well above any concurrency used here
LOAD_GENERATORS = {
    "raw": "one client process (the Ray driver): asyncio on uvloop, a minimal HTTP/1.1 client, "
    "one keep-alive connection per concurrent request, closed loop",
    "httpx": "one client process (the Ray driver): httpx.AsyncClient, keep-alive pool of "
    "`concurrency` connections, closed loop",
}
