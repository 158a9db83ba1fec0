"""The worker (a subprocess, Serve's proxy mode): one Ray session, the load in its own process,
the rollout driven through its cycles, then the raw data (cycles, decision log, the routers'
events from the controller's store, the client's rows) written to ``--out``."""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import serve

import rayrollout.client.api as rr
from benchmarks import _common as c
from benchmarks.rollback_latency.client import client_proc
from benchmarks.rollback_latency.config import CANDIDATE, build_spec, schedule
from rayrollout.controller.store import Store
from rayrollout.errors import Conflict
from rayrollout.names import router_app_name, version_app_name
from rayrollout.serving.port import RayServePort
from rayrollout.spec import load_spec

HISTORY_KEYS = ("seq", "now", "phase_from", "phase_to", "epoch", "actions", "actor", "reason")


@dataclass
class Session:
    """The Ray session with the rollout's model serving, ready for load."""

    http_port: int
    tmp: str
    model: str
    store_path: str
    spec: Any
    path: str
    body: bytes
    setup_s: float


def start_session(cfg: dict[str, Any]) -> Session:
    """Ray + Serve, the stable version serving behind the router, its route answering."""
    http_port = c.free_port()
    c.start_ray(http_port)
    tmp = tempfile.mkdtemp(prefix="rr-rollback-")
    model = f"rb{uuid.uuid4().hex[:6]}"
    store_path = f"{tmp}/rollout.db"
    spec = load_spec(
        build_spec(model, store_path, cfg["weight"], cfg["tick_s"], cfg["router_replicas"])
    )
    t_setup = time.time()
    rr.ensure_serving(spec, "/")
    path = f"/v1/models/{model}/predict"
    X = np.load(c.HELDOUT)["X"].astype(np.float32)
    body = json.dumps({"instances": [X[0].tolist()]}).encode()
    c.wait_http_ok(f"http://127.0.0.1:{http_port}{path}", body)
    setup_s = time.time() - t_setup
    return Session(http_port, tmp, model, store_path, spec, path, body, setup_s)


def start_client(s: Session, cfg: dict[str, Any]) -> tuple[Any, Any, str]:
    """The load generator's process: (process, stop event, path of its JSON)."""
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    client_out = f"{s.tmp}/client.json"
    args = (
        "127.0.0.1",
        s.http_port,
        s.path,
        s.body,
        cfg["concurrency"],
        cfg["client"],
        stop,
        client_out,
    )
    proc = ctx.Process(target=client_proc, args=args, daemon=True)
    proc.start()
    return proc, stop, client_out


def wait_gone(app: str, timeout_s: float = 60.0) -> float:
    """Seconds until Serve no longer lists ``app`` (at most ``timeout_s``)."""
    t0 = time.time()
    while app in serve.status().applications and time.time() - t0 < timeout_s:
        time.sleep(0.1)
    return time.time() - t0


def roll_back(ro: Any, cfg: dict[str, Any], rec: dict[str, Any], i: int, kind: str) -> None:
    """From canary: ``abort()``, or ``promote(full=True)`` then ``undo()``; times into ``rec``."""
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


def run_cycles(ro: Any, cfg: dict[str, Any], cand_app: str, cycles: list[dict[str, Any]]) -> None:
    """Every scheduled cycle: wait for canary, dwell, roll back, settle, retry; one record each."""
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
            roll_back(ro, cfg, rec, i, kind)
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


def push_probes(model: str, n: int) -> list[float]:
    """What one push costs, under the same load: no-op broadcasts of the table in force (same
    epoch: ignored by the routers); round trip of each, ms."""
    handle = serve.get_deployment_handle("Router", router_app_name(model))
    table = handle.broadcast("get_routes", model).results(timeout_s=10)[0]
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        handle.broadcast("set_routes", table).results(timeout_s=10)
        out.append((time.perf_counter() - t0) * 1000.0)
        time.sleep(0.05)
    return out


def read_store(store_path: str, rollout: int) -> tuple[Any, list[list[Any]]]:
    """(initial epoch, the routers' events as [t, version, epoch, outcome, latency_ms]) from
    the tick inputs the controller persisted."""
    store = Store(store_path)
    row = store.get(rollout)
    assert row is not None
    events = [
        [e[0], e[1], e[8], e[4], e[3]]  # t, version, epoch, outcome, latency_ms
        for tick in store.ticks(rollout)
        for e in tick["events"]
    ]
    store.close()
    return row.initial["epoch"], events


def worker(out: Path, cfg: dict[str, Any]) -> None:
    s = start_session(cfg)
    proc, stop, client_out = start_client(s, cfg)
    time.sleep(cfg["warmup_s"])
    cand_app = version_app_name(s.model, CANDIDATE)
    cycles: list[dict[str, Any]] = []
    push_rtt_ms: list[float] = []
    t_run0 = time.time()
    try:
        ro = rr.start(s.spec, route_prefix="/")
        run_cycles(ro, cfg, cand_app, cycles)
        push_rtt_ms += push_probes(s.model, cfg["push_probes"])
    finally:
        t_run1 = time.time()
        stop.set()
        proc.join(120)
    time.sleep(
        3 * cfg["tick_s"] + 0.5
    )  # the controller's next ticks drain the routers' last events
    status = ro.status()
    history = ro.history()
    h = RayServePort().controller(s.model, create=False)
    h.call("stop")
    time.sleep(cfg["tick_s"] + 0.2)
    initial_epoch, events = read_store(s.store_path, status["rollout"])
    client = json.loads(Path(client_out).read_text())
    doc = {
        "model": s.model,
        "router_replicas": cfg["router_replicas"],
        "setup_s": round(s.setup_s, 1),
        "run_s": round(t_run1 - t_run0, 1),
        "initial_epoch": initial_epoch,
        "cycles": cycles,
        "history": [{k: d[k] for k in HISTORY_KEYS} for d in history],
        "events": events,
        "client_rows": client["rows"],
        "client_cpu_s": client["cpu_s"],
        "push_rtt_ms": push_rtt_ms,
        "verify": ro.verify(),
        "env": c.mode_env("proxy"),
    }
    out.write_text(json.dumps(doc))
    try:
        ray.kill(h.actor, no_restart=True)
    finally:
        c.stop_ray()
