"""What does the rayrollout router cost over a plain Ray Serve app? HTTP req/s and p50/p99.

Targets, deployed side by side in one Ray session and measured interleaved (a, b, b, a, ...):

* ``plain``: what a Ray Serve user would write — one ingress deployment that parses the JSON
  body and runs ``v1.onnx`` with onnxruntime (1 intra-op thread, like a version) in the handler.
  Path: client -> Serve proxy -> replica.
* ``router``: the rayrollout router (``rayrollout.serving.app.deploy``) with a 90/10 random split
  over v1/v2 (same model cost), each version its own app with dynamic batching.
  Path: client -> Serve proxy -> Router replica -> ModelVersion replica.

Both answer ``POST`` with a one-row ``{"instances": [[64 floats]]}`` body (the router's ``/v1``
predict route). Each Serve mode runs in its own subprocess (the env vars must be set before Ray
starts), all in one run:

* ``proxy``: Serve's default, the Python proxy actor in front of the ingress replica;
* ``direct``: experimental direct ingress (``RAY_SERVE_ENABLE_DIRECT_INGRESS=1`` +
  ``RAY_SERVE_ENABLE_HA_PROXY=1``): HAProxy on the HTTP port forwards straight to the ingress
  replica's own HTTP server (ports from ``RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT``, 30000 up);
* ``direct-tuned``: ``direct`` plus ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` (Serve's preset: user
  code and the handle router on the replica's main loop, buffered request logs, gRPC handles).

Headline: router ÷ plain req/s within the *same* ingress mode (the router's own cost), at each
concurrency, and the p50/p99 the router adds at the lowest one. router(mode)/plain(proxy) is
printed only as a note: it compares two ingress modes, and a plain app that turns direct
ingress on gets it too.

Load: one client process (the worker that started Ray): asyncio on uvloop with a minimal
HTTP/1.1 keep-alive client (``--client httpx`` for httpx.AsyncClient, which costs 2-5 ms of CPU a
request here and so steals a large share of the two cores), closed loop at each concurrency,
fixed window after a warm-up. Every cell reports the client's CPU and every Ray process's.

    python -m benchmarks.router_overhead            # ~5 min, writes results/router_overhead.json
    python -m benchmarks.router_overhead --quick    # ~1.5 min: proxy + direct, 1 rep of 3 s
"""
