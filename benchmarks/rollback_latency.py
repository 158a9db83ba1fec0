"""How fast does a rollback take the candidate out of service, under load? And does anything fail?

One local Ray session (Serve's default proxy mode, in a subprocess like the other serving
benchmarks), the rayrollout router in front of ``v1`` (stable) and ``v2`` (candidate), 32
concurrent closed-loop HTTP clients in a separate client process for the whole run, and one
rollout driven through many cycles by the Python API:

    start → deploying → canary 30 % → dwell → abort()      (a rollback)    → retry → ...
                          canary 30 % → promote(full=True) → dwell → undo() (a rollback of a
                                                                             promotion) → retry

A rollback is a routing-table change first (the controller decides, persists, then pushes the
new table to every router replica with ``DeploymentHandle.broadcast("set_routes", table)``);
the candidate's app is deleted after the push. Per rollback it measures:

* **server side** (the headline): last arrival at a router of a request that the router sent to
  the candidate, minus the controller's decision time (the decision log entry's ``now``, from
  ``Rollout.history()``). Arrival times are the routers' own per-request events (``t``, set
  when the request reaches ``Router._infer``, right before it reads the table it will be routed
  with), read back from the controller's store (``Store.ticks(rollout)``: the tick inputs the
  controller persisted after draining every router replica with ``collect()``; reading
  ``collect()`` here would race the controller's drain and lose events);
* **client side**: last response carrying ``x-model-version: v2`` minus the moment ``abort()``
  (or ``undo()``) returned to the caller (and the same for the last candidate request *sent*);
* the verb's round trip and its parts (call → decision, decision → returned), and how many
  candidate requests were in flight at the decision.

Over the whole run it counts every non-200 response (split by the ``x-model-version`` that
answered, and by whether it fell in a rollback or a promotion window) and every request served
by a version that is not in the routing table of its epoch (``x-routing-epoch`` on the client
side, ``epoch`` in the router's events; tables from the decision log's ``routes`` actions).
After the cycles, still under load, it times no-op ``set_routes`` broadcasts of the table in
force (same epoch: ignored by the routers) to show what one push costs.

    python -m benchmarks.rollback_latency            # 20 aborts + 4 promote/undo, ~5.5 min
    python -m benchmarks.rollback_latency --quick    # 5 aborts + 2 promote/undo, ~3 min

Also reported: "decision -> last candidate call finished" (router arrival + the router-measured
version-call latency) and "stranded" candidate requests: ones that arrived around the rollback
and waited > 2 s for a replica of the candidate's app, which the rollback deletes right after
the table push (they are answered only when ``retry`` redeploys the candidate, or time out with
a 504 after the router's ``request_timeout_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Any

from benchmarks import _common as c

NAME = "rollback_latency"
STABLE, CANDIDATE = "v1", "v2"
GOAL_P99_MS = 250.0
# a candidate version call this slow, arriving around the rollback, was stranded: it waited for
# a replica of an app that was being deleted (normal version calls here take < 0.2 s)
STRANDED_MS = 2000.0
ANCHORS = [  # configured analysis intervals of other tools (their docs), not measurements
    (
        "Flagger",
        "analysis.interval (schedule interval, default 60 s) x analysis.threshold (failed checks "
        "before rollback, 5 in its examples): a rollback comes after >= 1 interval, ~5 min with "
        "the documented example",
    ),
    (
        "Argo Rollouts",
        "AnalysisTemplate metric interval (5m in its analysis docs' example) with failureLimit "
        "(3 in the example): the abort comes after one or more measurement intervals",
    ),
    (
        "Kayenta (Spinnaker ACA)",
        "canary analysis interval: 'the recommended interval is at least 30 minutes' "
        "(Spinnaker canary stage help)",
    ),
]


# -- load generator (runs in its own process) -------------------------------------------------


def _client_proc(
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
    rows: list[tuple[float, float, int, str, int, str]] = []
    stopped = [False]

    def watch() -> None:
        stop_evt.wait()
        stopped[0] = True

    threading.Thread(target=watch, daemon=True).start()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def raw_loop() -> None:
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
            status, version, epoch, note, close = 0, "", -1, "", False
            try:
                writer.write(request)
                line = await asyncio.wait_for(reader.readline(), 60)
                if not line:
                    raise ConnectionError("connection closed by server")
                status = int(line[9:12])
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
                        version = v.decode()
                    elif k == b"x-routing-epoch":
                        epoch = int(v)
                    elif k == b"transfer-encoding" and b"chunked" in v.lower():
                        chunked = True
                    elif k == b"connection" and b"close" in v.lower():
                        close = True
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
                    close = True
                if status != 200:
                    note = data[:200].decode(errors="replace")
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as e:
                status, close = 0, True
                note = f"{type(e).__name__}: {e}"[:200]
            rows.append((t0, time.time(), status, version, epoch, note))
            if close:
                writer.close()
                reader = writer = None

    async def httpx_loop(hc: Any) -> None:
        import httpx

        url = f"http://{host}:{port}{path}"
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

    async def main() -> None:
        if client == "httpx":
            import httpx

            limits = httpx.Limits(
                max_connections=concurrency, max_keepalive_connections=concurrency
            )
            async with httpx.AsyncClient(limits=limits, timeout=60) as hc:
                await asyncio.gather(*(httpx_loop(hc) for _ in range(concurrency)))
        else:
            await asyncio.gather(*(raw_loop() for _ in range(concurrency)))

    cpu0 = time.process_time()
    c.run_async(main())
    doc = {"rows": rows, "cpu_s": time.process_time() - cpu0}
    Path(out_path).write_text(json.dumps(doc))


# -- the worker: Ray session, rollout cycles, raw data -------------------------------------------


def schedule(rollbacks: int, promotions: int) -> list[str]:
    """``rollbacks`` aborts with ``promotions`` promote/undo cycles spread among them."""
    total = rollbacks + promotions
    at = {int((j + 1) * total / (promotions + 1)) for j in range(promotions)}
    return ["promote" if i in at else "abort" for i in range(total)]


def build_spec(
    model: str, store: str, weight: float, tick_s: float, router_replicas: int
) -> dict[str, Any]:
    def version(name: str) -> dict[str, Any]:
        return {"name": name, "runtime": "onnx", "artifact": str(c.ARTIFACTS / f"{name}.onnx")}

    return {
        "model": model,
        "stable": version(STABLE),
        "candidates": [version(CANDIDATE)],
        # one step that never ends by itself: only the benchmark's verbs move the rollout
        "strategy": {"steps": [{"weight": weight, "min_requests": 10**9}]},
        # errors only: v1 and v2 are both healthy, so no judge should roll back by itself
        "analysis": {"tick_s": tick_s, "checks": [{"kind": "errors"}]},
        "rollback_window_s": 3600,
        "router": {"deployment": {"num_replicas": router_replicas}},
        "store_path": store,
    }


def worker(out: Path, cfg: dict[str, Any]) -> None:
    import numpy as np
    import ray
    from ray import serve

    import rayrollout.api as rr
    from rayrollout.config import router_app_name, version_app_name
    from rayrollout.controller.store import Store
    from rayrollout.errors import Conflict

    http_port = c.free_port()
    c.start_ray(http_port)
    tmp = tempfile.mkdtemp(prefix="rr-rollback-")
    model = f"rb{uuid.uuid4().hex[:6]}"
    store_path = f"{tmp}/rollout.db"
    tick_s = cfg["tick_s"]
    spec = rr.load_spec(
        build_spec(model, store_path, cfg["weight"], tick_s, cfg["router_replicas"])
    )
    t_setup = time.time()
    rr.ensure_serving(spec, "/")
    path = f"/v1/models/{model}/predict"
    X = np.load(c.HELDOUT)["X"].astype(np.float32)
    body = json.dumps({"instances": [X[0].tolist()]}).encode()
    c.wait_http_ok(f"http://127.0.0.1:{http_port}{path}", body)
    setup_s = time.time() - t_setup

    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    client_out = f"{tmp}/client.json"
    proc = ctx.Process(
        target=_client_proc,
        args=(
            "127.0.0.1",
            http_port,
            path,
            body,
            cfg["concurrency"],
            cfg["client"],
            stop,
            client_out,
        ),
        daemon=True,
    )
    proc.start()
    time.sleep(cfg["warmup_s"])
    cand_app = version_app_name(model, CANDIDATE)

    def wait_gone(app: str, timeout_s: float = 60.0) -> float:
        t0 = time.time()
        while app in serve.status().applications and time.time() - t0 < timeout_s:
            time.sleep(0.1)
        return time.time() - t0

    cycles: list[dict[str, Any]] = []
    push_rtt_ms: list[float] = []
    t_run0 = time.time()
    try:
        ro = rr.start(spec, route_prefix="/")
        kinds = schedule(cfg["rollbacks"], cfg["promotions"])
        cycle_start = time.time()
        for i, kind in enumerate(kinds):
            rec: dict[str, Any] = {"i": i, "kind": kind, "start": cycle_start}
            cycles.append(rec)
            st = ro.wait(frozenset({"canary", "rolled_back"}), timeout_s=240)
            rec["canary_at"] = time.time()
            if st["phase"] == "rolled_back":  # a judge (or a failed deploy) rolled it back
                rec["kind"] = "auto"
                rec["reason"] = ro.history(limit=1)[-1]["reason"]
            else:
                rec["canary_epoch"] = st["epoch"]
                time.sleep(cfg["canary_s"])
                try:
                    if kind == "promote":
                        rec["promote_call"] = time.time()
                        ro.promote(full=True)
                        rec["promote_returned"] = time.time()
                        time.sleep(cfg["promoted_s"])
                        rec["call"] = time.time()
                        st = ro.undo()
                    else:
                        rec["call"] = time.time()
                        st = ro.abort(reason=f"benchmark rollback {i}")
                    rec["returned"] = time.time()
                    rec["epoch"] = st["epoch"]
                    rec["phase"] = st["phase"]
                except Conflict as e:  # a judge got there first
                    rec["error"] = str(e)
                    rec["kind"] = "auto"
            time.sleep(cfg["settle_s"])
            rec["delete_wait_s"] = round(wait_gone(cand_app), 3)
            if i < len(kinds) - 1:
                rec["retry_call"] = cycle_start = time.time()
                ro.retry()
            print(
                f"  cycle {i + 1}/{len(kinds)} {rec['kind']}: "
                f"{(rec.get('returned', 0) - rec.get('call', 0)) * 1000:.0f} ms verb",
                file=sys.stderr,
                flush=True,
            )
        # what one push costs, under the same load: no-op broadcasts of the table in force
        handle = serve.get_deployment_handle("Router", router_app_name(model))
        table = handle.broadcast("get_routes").results(timeout_s=10)[0]
        for _ in range(cfg["push_probes"]):
            t0 = time.perf_counter()
            handle.broadcast("set_routes", table).results(timeout_s=10)
            push_rtt_ms.append((time.perf_counter() - t0) * 1000.0)
            time.sleep(0.05)
    finally:
        t_run1 = time.time()
        stop.set()
        proc.join(120)
    time.sleep(3 * tick_s + 0.5)  # the controller's next ticks drain the routers' last events
    status = ro.status()
    history = ro.history()
    h = rr.controller_handle(model, create=False)
    ray.get(h.stop.remote())
    time.sleep(tick_s + 0.2)
    store = Store(store_path)
    row = store.get(status["rollout"])
    assert row is not None
    events = [
        [e[0], e[1], e[8], e[4], e[3]]  # t, version, epoch, outcome, latency_ms
        for tick in store.ticks(status["rollout"])
        for e in tick["events"]
    ]
    store.close()
    client = json.loads(Path(client_out).read_text())
    doc = {
        "model": model,
        "router_replicas": cfg["router_replicas"],
        "setup_s": round(setup_s, 1),
        "run_s": round(t_run1 - t_run0, 1),
        "initial_epoch": row.initial["epoch"],
        "cycles": cycles,
        "history": [
            {
                k: d[k]
                for k in (
                    "seq",
                    "now",
                    "phase_from",
                    "phase_to",
                    "epoch",
                    "actions",
                    "actor",
                    "reason",
                )
            }
            for d in history
        ],
        "events": events,
        "client_rows": client["rows"],
        "client_cpu_s": client["cpu_s"],
        "push_rtt_ms": push_rtt_ms,
        "verify": ro.verify(),
        "env": c.mode_env("proxy"),
    }
    out.write_text(json.dumps(doc))
    try:
        ray.kill(h, no_restart=True)
    finally:
        c.stop_ray()


# -- analysis (pure) -----------------------------------------------------------------------------


def _q(values: list[float]) -> dict[str, Any]:
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {
        "n": len(v),
        "p50": round(c.quantile(v, 0.50), 1),
        "p90": round(c.quantile(v, 0.90), 1),
        "p99": round(c.quantile(v, 0.99), 1),
        "max": round(v[-1], 1),
        "min": round(v[0], 1),
    }


def analyze(raw: dict[str, Any], settle_s: float) -> dict[str, Any]:
    hist = raw["history"]
    # the routing table of every epoch: versions with weight > 0
    tables: dict[int, set[str]] = {int(raw["initial_epoch"]): {STABLE}}
    enables: list[float] = []  # decisions that gave the candidate traffic
    for d in hist:
        for a in d["actions"]:
            if a["kind"] == "routes":
                live = {v for v, w in (a.get("weights") or {}).items() if w > 0}
                tables[int(a["epoch"])] = live
                if CANDIDATE in live:
                    enables.append(d["now"])
    enables.sort()

    ev = sorted(raw["events"], key=lambda e: e[0])
    cand_ev = [e for e in ev if e[1] == CANDIDATE]
    cand_t = [e[0] for e in cand_ev]
    rows = sorted(raw["client_rows"], key=lambda r: r[1])
    # every answer from the candidate (errors carry x-model-version too), by send time: a
    # request sent before the rollback belongs to it however late it is answered
    cand_ans = sorted((r for r in rows if r[3] == CANDIDATE), key=lambda r: r[0])
    cand_send = [r[0] for r in cand_ans]

    cycles = raw["cycles"]
    samples = []
    for d in hist:
        if d["phase_to"] != "rolled_back":
            continue
        t_dec, epoch = d["now"], int(d["epoch"])
        cyc = next(
            (
                cy
                for cy in cycles
                if "call" in cy and cy["call"] - 0.001 <= t_dec <= cy["returned"] + 0.001
            ),
            None,
        )
        kind = ("undo" if cyc["kind"] == "promote" else "abort") if cyc else "auto"
        i_en = bisect_right(enables, t_dec)
        lower = enables[i_en - 1] if i_en else float("-inf")
        upper = enables[i_en] if i_en < len(enables) else float("inf")
        lo, hi = bisect_left(cand_t, lower), bisect_left(cand_t, upper)
        window = cand_ev[lo:hi]
        s: dict[str, Any] = {
            "seq": d["seq"],
            "kind": kind,
            "decision_t": t_dec,
            "epoch": epoch,
            "reason": d["reason"][:120],
        }
        if window:
            last = window[-1]
            s["last_candidate_arrival_t"] = last[0]
            s["server_ms"] = round((last[0] - t_dec) * 1000.0, 2)
            s["candidate_arrivals_after_decision"] = sum(1 for e in window if e[0] >= t_dec)
            s["candidate_in_flight_at_decision"] = sum(
                1 for e in window if e[0] < t_dec <= e[0] + e[4] / 1000.0
            )
            s["candidate_events_at_or_after_rollback_epoch"] = sum(
                1 for e in window if e[2] >= epoch
            )
            # when the candidate really stopped serving: the last version call to finish
            s["last_candidate_finish_ms"] = round(
                (max(e[0] + e[4] / 1000.0 for e in window) - t_dec) * 1000.0, 2
            )
            stranded = [e for e in window if e[4] > STRANDED_MS and e[0] < t_dec + 1.0]
            s["candidate_stranded"] = len(stranded)
            s["candidate_stranded_outcomes"] = sorted({int(e[3]) for e in stranded})
            # resolution: the candidate's inter-arrival gap just before the decision
            before = [e[0] for e in window if e[0] < t_dec][-50:]
            if len(before) > 1:
                gaps = sorted(b - a for a, b in itertools.pairwise(before))
                s["candidate_gap_ms_median"] = round(gaps[len(gaps) // 2] * 1000.0, 2)
        if cyc:
            s["verb_call_to_decision_ms"] = round((t_dec - cyc["call"]) * 1000.0, 2)
            s["decision_to_verb_return_ms"] = round((cyc["returned"] - t_dec) * 1000.0, 2)
            s["verb_round_trip_ms"] = round((cyc["returned"] - cyc["call"]) * 1000.0, 2)
            c_lo = bisect_left(cand_send, cyc["start"])
            c_hi = bisect_left(cand_send, cyc.get("retry_call", float("inf")))
            cw = cand_ans[c_lo:c_hi]
            if cw:
                s["client_ms"] = round((max(r[1] for r in cw) - cyc["returned"]) * 1000.0, 2)
                s["client_last_send_ms"] = round(
                    (max(r[0] for r in cw) - cyc["returned"]) * 1000.0, 2
                )
                s["client_candidate_responses_after_return"] = sum(
                    1 for r in cw if r[1] > cyc["returned"]
                )
                s["client_candidate_in_flight_at_return"] = sum(
                    1 for r in cw if r[0] < cyc["returned"] < r[1]
                )
        samples.append(s)

    # failures: every non-200, by the version that answered and by window
    windows: list[tuple[float, float, str]] = []
    for cy in cycles:
        if "promote_call" in cy:
            windows.append((cy["promote_call"], cy["call"], "promotion"))
        if "call" in cy:
            windows.append(
                (cy["call"], cy["returned"] + settle_s + cy.get("delete_wait_s", 0), "rollback")
            )

    def window_of(r: list[Any]) -> str:
        """The first window a request's [sent, answered] interval overlaps."""
        for a, b, name in windows:
            if r[0] <= b and r[1] >= a:
                return name
        return "other"

    failures = [r for r in rows if r[2] != 200]
    by_version: dict[str, int] = {}
    by_window: dict[str, int] = {}
    for r in failures:
        by_version[r[3] or "(none)"] = by_version.get(r[3] or "(none)", 0) + 1
        w = window_of(r)
        by_window[w] = by_window.get(w, 0) + 1
    stable_path = [r for r in failures if r[3] in (STABLE, "")]
    router_failed: dict[str, int] = {}
    router_failed_detail = []
    rb_times = sorted(d["now"] for d in hist if d["phase_to"] == "rolled_back")
    for e in ev:
        if e[3] != 0:
            router_failed[e[1]] = router_failed.get(e[1], 0) + 1
            near = min(rb_times, key=lambda t: abs(t - e[0])) if rb_times else None
            router_failed_detail.append(
                {
                    "t": e[0],
                    "version": e[1],
                    "epoch": e[2],
                    "outcome": e[3],
                    "latency_ms": round(e[4], 1),
                    "arrival_minus_nearest_rollback_decision_ms": None
                    if near is None
                    else round((e[0] - near) * 1000.0, 1),
                }
            )

    # a version served under a table that does not list it
    bad_client = [r for r in rows if r[2] == 200 and r[3] not in tables.get(r[4], set())]
    bad_router = [e for e in ev if e[1] not in tables.get(e[2], set())]

    t0 = min(r[0] for r in rows) if rows else 0.0
    t1 = max(r[1] for r in rows) if rows else 0.0
    served: dict[str, int] = {}
    for r in rows:
        if r[2] == 200:
            served[r[3]] = served.get(r[3], 0) + 1

    rb = [s for s in samples if "server_ms" in s]
    summary = {
        "rollbacks": len(samples),
        "rollbacks_with_candidate_traffic": len(rb),
        "by_kind": {
            k: sum(1 for s in samples if s["kind"] == k) for k in ("abort", "undo", "auto")
        },
        "server_ms": _q([s["server_ms"] for s in rb]),
        "server_ms_abort": _q([s["server_ms"] for s in rb if s["kind"] == "abort"]),
        "server_ms_undo": _q([s["server_ms"] for s in rb if s["kind"] == "undo"]),
        "last_candidate_finish_ms": _q([s["last_candidate_finish_ms"] for s in rb]),
        "candidate_stranded": sum(s.get("candidate_stranded", 0) for s in rb),
        "rollbacks_with_stranded": sum(1 for s in rb if s.get("candidate_stranded")),
        "client_ms": _q([s["client_ms"] for s in samples if "client_ms" in s]),
        "client_last_send_ms": _q(
            [s["client_last_send_ms"] for s in samples if "client_last_send_ms" in s]
        ),
        "verb_round_trip_ms": _q(
            [s["verb_round_trip_ms"] for s in samples if "verb_round_trip_ms" in s]
        ),
        "verb_call_to_decision_ms": _q(
            [s["verb_call_to_decision_ms"] for s in samples if "verb_call_to_decision_ms" in s]
        ),
        "decision_to_verb_return_ms": _q(
            [s["decision_to_verb_return_ms"] for s in samples if "decision_to_verb_return_ms" in s]
        ),
        "candidate_in_flight_at_decision": _q(
            [float(s["candidate_in_flight_at_decision"]) for s in rb]
        ),
        "candidate_arrivals_after_decision": _q(
            [float(s["candidate_arrivals_after_decision"]) for s in rb]
        ),
        "candidate_gap_ms_median": _q(
            [s["candidate_gap_ms_median"] for s in rb if "candidate_gap_ms_median" in s]
        ),
        "set_routes_broadcast_rtt_ms": _q(list(raw["push_rtt_ms"])),
        "requests": len(rows),
        "requests_per_s": round(len(rows) / max(1e-9, t1 - t0), 1),
        "served": served,
        "client_cpu_ms_per_request": round(1000.0 * raw["client_cpu_s"] / max(1, len(rows)), 3),
        "router_events": len(ev),
        "failed_requests": len(failures),
        "failed_by_version": by_version,
        "failed_by_window": by_window,
        "failed_stable_path": len(stable_path),
        "failed_examples": [r for r in failures[:10]],
        "router_failed_events_by_version": router_failed,
        "router_failed_events": router_failed_detail[:20],
        "served_outside_epoch_table_client": len(bad_client),
        "served_outside_epoch_table_router": len(bad_router),
        "outside_examples": bad_client[:5] + [e[:3] for e in bad_router[:5]],
        "candidate_events_at_or_after_rollback_epoch": sum(
            s.get("candidate_events_at_or_after_rollback_epoch", 0) for s in samples
        ),
    }
    p99 = summary["server_ms"].get("p99")
    summary["goals"] = {
        "p99_server_ms_under_250": p99 is not None and p99 < GOAL_P99_MS,
        "zero_failed_stable_path": len(stable_path) == 0,
        "zero_failed_any": len(failures) == 0,
        "zero_served_outside_table": not bad_client and not bad_router,
        "zero_stranded_candidate_requests": summary["candidate_stranded"] == 0,
    }
    return {"samples": samples, "summary": summary, "epochs": len(tables)}


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="5 aborts + 2 promote/undo, ~3 min")
    p.add_argument("--rollbacks", type=int, default=None, help="aborts (default 20; quick 5)")
    p.add_argument(
        "--promotions",
        type=int,
        default=None,
        help="promote(full)/undo cycles (default 4; quick 2)",
    )
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--weight", type=float, default=30.0, help="canary step, percent")
    p.add_argument("--canary-s", type=float, default=1.0, help="dwell in canary before the verb")
    p.add_argument("--promoted-s", type=float, default=1.0, help="dwell at 100%% before undo")
    p.add_argument("--settle-s", type=float, default=0.5, help="after a rollback, before retry")
    p.add_argument("--tick-s", type=float, default=0.5, help="controller tick (collect period)")
    p.add_argument("--router-replicas", type=int, default=2)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--push-probes", type=int, default=30)
    p.add_argument("--client", choices=c.CLIENTS, default="raw")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--raw",
        type=Path,
        default=None,
        help="also save the worker's raw data (events, client rows, log) here",
    )
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cfg", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        worker(a.out, json.loads(a.cfg))
        return 0

    cfg = {
        "rollbacks": a.rollbacks if a.rollbacks is not None else (5 if a.quick else 20),
        "promotions": a.promotions if a.promotions is not None else (2 if a.quick else 4),
        "concurrency": a.concurrency,
        "weight": a.weight,
        "canary_s": a.canary_s,
        "promoted_s": a.promoted_s,
        "settle_s": a.settle_s,
        "tick_s": a.tick_s,
        "router_replicas": a.router_replicas,
        "warmup_s": a.warmup,
        "push_probes": a.push_probes,
        "client": a.client,
    }
    t0 = time.time()
    meta = c.machine()
    raw = c.run_worker(f"benchmarks.{NAME}", "proxy", ["--cfg", json.dumps(cfg)], timeout_s=1500)
    if a.raw:
        a.raw.write_text(json.dumps(raw))
    res = analyze(raw, cfg["settle_s"])
    s = res["summary"]

    print()
    rows = []
    for label, key in (
        ("decision -> last candidate arrival (server)", "server_ms"),
        ("  aborts only", "server_ms_abort"),
        ("  undos only (after promote full)", "server_ms_undo"),
        ("decision -> last candidate call finished (server)", "last_candidate_finish_ms"),
        ("verb returned -> last candidate response (client)", "client_ms"),
        ("verb returned -> last candidate request sent", "client_last_send_ms"),
        ("verb round trip (abort()/undo())", "verb_round_trip_ms"),
        ("  verb call -> decision", "verb_call_to_decision_ms"),
        ("  decision -> verb returned", "decision_to_verb_return_ms"),
        ("no-op set_routes broadcast (under load)", "set_routes_broadcast_rtt_ms"),
        ("candidate inter-arrival before decision", "candidate_gap_ms_median"),
    ):
        q = s[key]
        rows.append(
            [
                label,
                q.get("n", 0),
                q.get("p50", "-"),
                q.get("p90", "-"),
                q.get("p99", "-"),
                q.get("max", "-"),
            ]
        )
    print(c.table(rows, ["ms", "n", "p50", "p90", "p99", "max"]))
    print()
    print(
        f"rollbacks: {s['by_kind']}; requests {s['requests']} at {s['requests_per_s']} req/s "
        f"(served {s['served']}), client CPU {s['client_cpu_ms_per_request']} ms/request"
    )
    print(
        f"candidate requests in flight at the decision: p50 "
        f"{s['candidate_in_flight_at_decision'].get('p50')}, max "
        f"{s['candidate_in_flight_at_decision'].get('max')}; arriving after it: p50 "
        f"{s['candidate_arrivals_after_decision'].get('p50')}, max "
        f"{s['candidate_arrivals_after_decision'].get('max')}"
    )
    print(
        f"stranded candidate requests (version call > {STRANDED_MS / 1000:g} s, arrived at the "
        f"rollback): {s['candidate_stranded']} in {s['rollbacks_with_stranded']} rollbacks"
    )
    print(
        f"failed requests: {s['failed_requests']} (stable path {s['failed_stable_path']}; "
        f"by version {s['failed_by_version']}; by window {s['failed_by_window']}); "
        f"router-side failed events {s['router_failed_events_by_version']}"
    )
    print(
        f"served by a version outside its epoch's table: client "
        f"{s['served_outside_epoch_table_client']}, router "
        f"{s['served_outside_epoch_table_router']}"
    )
    g = s["goals"]
    print(
        f"goal p99 < {GOAL_P99_MS:g} ms: {'MET' if g['p99_server_ms_under_250'] else 'MISSED'}"
        f" (p99 {s['server_ms'].get('p99')} ms over {s['server_ms'].get('n')} rollbacks); "
        f"zero failed stable-path requests: "
        f"{'MET' if g['zero_failed_stable_path'] else 'MISSED'}"
    )
    print()
    print("For comparison (configured analysis intervals, not measurements):")
    for name, text in ANCHORS:
        print(f"  {name}: {text}")

    cmd = f"python -m benchmarks.{NAME}" + (" --quick" if a.quick else "")
    extra = [x for x in (argv if argv is not None else sys.argv[1:]) if x != "--quick"]
    doc = {
        "benchmark": NAME,
        "command": " ".join([cmd, *extra]),
        "config": {
            **cfg,
            "mode": "proxy (Serve's default HTTP proxy)",
            "mode_env": raw["env"],
            "stable": STABLE,
            "candidate": CANDIDATE,
            "cycle": "canary step -> dwell -> abort() -> settle + candidate app deleted -> "
            "retry(); promote cycles: canary -> promote(full=True) -> dwell -> undo()",
            "request": "POST one row {'instances': [[64 x FP32]]} (models/heldout.npz X[0])",
            "load_generator": (
                f"separate client process, {a.concurrency} closed-loop keep-alive connections "
                f"({'minimal asyncio HTTP/1.1 client on uvloop' if a.client == 'raw' else 'httpx'})"
            ),
            "server_ms": "latest router arrival time t of a request routed to the candidate, "
            "minus the decision log entry's now (router events read from the "
            "controller store's tick inputs)",
            "client_ms": "latest receive time of a 200 with x-model-version=candidate, minus "
            "the time abort()/undo() returned",
        },
        "machine": {**meta, "loadavg_1m_at_end": round(os.getloadavg()[0], 2)},
        "git": c.git_rev(),
        "wall_s": round(time.time() - t0, 1),
        "setup_s": raw["setup_s"],
        "run_s": raw["run_s"],
        "store_verify": raw["verify"],
        "anchors_configured_not_measured": dict(ANCHORS),
        "summary": s,
        "samples": res["samples"],
        "cycles": raw["cycles"],
    }
    path = c.write_result(NAME, doc, a.out)
    print(f"\nwrote {path.relative_to(c.ROOT) if path.is_relative_to(c.ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
