"""The worker (a subprocess, Serve's proxy mode): one Ray session, the open-loop client in its
own process, the sampler on a thread, and the driver running rollouts back to back until the
run's end; then the raw data (rollouts, samples, client rows) written to ``--out``."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import secrets
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import ray

import rayrollout.client.api as rr
from benchmarks import _common as c
from benchmarks.soak.config import CYCLE, build_spec, cycle_at, next_index
from benchmarks.soak.load import client_proc
from benchmarks.soak.probe import TickReader, actor_pids, role_of, rss_of, store_bytes
from rayrollout.serving.port import RayServePort
from rayrollout.spec import RouterConfig, load_spec


class Sampler:
    """Every ``period_s`` on its own thread: RSS of the watched actors, the store's size, the
    buffers' depths since the previous sample, the load average."""

    def __init__(self, model: str, store: str, period_s: float) -> None:
        self.model, self.store, self.period_s = model, store, period_s
        self.ticks = TickReader(store)
        self.samples: list[dict[str, Any]] = []
        self.pid_source = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self, note: str = "") -> None:
        actors, self.pid_source = actor_pids()
        pids = {a["pid"]: r for a in actors if (r := role_of(a, self.model)) is not None}
        self.samples.append({
            "t": time.time(),
            "note": note,
            "rss": rss_of(pids),
            "store": store_bytes(self.store),
            "buffers": self.ticks.read(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        })

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.sample()
            except Exception as e:  # a sample lost is a gap in the series, not a failed run
                print(f"  sample failed: {e!r}", file=sys.stderr, flush=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample("end")


def one_rollout(model: str, store: str, i: int, cfg: dict[str, Any], t_end: float
                ) -> tuple[dict[str, Any], str]:
    """Rollout ``i`` of the cycle, to its end or to the run's; (its record, the stable after)."""
    stable, cand, kind = cycle_at(i)
    rec: dict[str, Any] = {"i": i, "kind": kind, "stable": stable, "candidate": cand,
                           "start": time.time()}
    ro = rr.start(load_spec(build_spec(model, store, stable, cand, kind, cfg)), route_prefix="/")
    rec["rollout"] = ro.status()["rollout"]
    limit_s = cfg["promote_timeout_s"] if kind == "promote" else cfg["detect_timeout_s"]
    deadline = min(t_end, rec["start"] + limit_s)
    try:
        st = ro.wait(timeout_s=max(0.0, deadline - time.time()))
        rec["outcome"] = st["phase"]
        rec["by"] = "judge" if st["phase"] == "rolled_back" else "strategy"
    except TimeoutError:
        cut = time.time() >= t_end
        st = ro.abort(reason="soak: end of the run" if cut else f"soak: {limit_s:g} s passed")
        rec["outcome"] = "cut" if cut else "aborted"
        rec["by"] = "driver"
    rec["end"] = time.time()
    rec["phase"], rec["epoch"], rec["attempt"] = st["phase"], st["epoch"], st.get("attempt")
    rec["reason"] = (ro.history(limit=1) or [{}])[-1].get("reason", "")
    print(f"  rollout {i + 1} {stable}->{cand} ({kind}): {rec['outcome']} by {rec['by']} in "
          f"{rec['end'] - rec['start']:.1f} s", file=sys.stderr, flush=True)
    return rec, str(st["stable"])


def drive(model: str, store: str, cfg: dict[str, Any], t_first: float, t_end: float
          ) -> list[dict[str, Any]]:
    """Rollouts back to back from ``t_first``; none is started with under ``min_left_s`` to go,
    and one still running at ``t_end`` is aborted (outcome ``cut``)."""
    time.sleep(max(0.0, t_first - time.time()))
    recs: list[dict[str, Any]] = []
    i = 0
    while time.time() < t_end - cfg["min_left_s"]:
        rec, stable = one_rollout(model, store, i, cfg, t_end)
        recs.append(rec)
        i = next_index(i, stable)
    return recs


def start_client(http_port: int, model: str, cfg: dict[str, Any], token: str, t0: float,
                 tmp: str) -> tuple[Any, Any, str]:
    """The open-loop client's process: (process, stop event, path of its JSON)."""
    data = np.load(c.HELDOUT)
    X, y = data["X"].astype(np.float32), data["y"]
    bodies = [json.dumps({"instances": [row.tolist()]}).encode() for row in X]
    labels = [int(v) for v in y]
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    out = f"{tmp}/client.json"
    args = ("127.0.0.1", http_port, model, cfg, bodies, labels, token, t0, stop, out)
    proc = ctx.Process(target=client_proc, args=args, daemon=True)
    proc.start()
    return proc, stop, out


def worker(out: Path, cfg: dict[str, Any]) -> None:
    # the label feedback route wants a token of scope ``feedback``; the router replicas read it
    # from their environment, which Ray's processes inherit from this one
    token = secrets.token_urlsafe(16)
    os.environ[RouterConfig.model_fields["admin_tokens_env"].default] = f"soak:{token}:feedback"
    http_port = c.free_port()
    c.start_ray(http_port)
    tmp = tempfile.mkdtemp(prefix="rr-soak-")
    model = f"soak{uuid.uuid4().hex[:6]}"
    store = f"{tmp}/store/rollout.db"
    t_setup = time.time()
    first = load_spec(build_spec(model, store, *CYCLE[0], cfg))
    rr.ensure_serving(first, "/")
    probe_body = json.dumps({"instances": [[0.0] * 64]}).encode()
    c.wait_http_ok(f"http://127.0.0.1:{http_port}/v1/models/{model}/predict", probe_body)
    setup_s = time.time() - t_setup
    sampler = Sampler(model, store, cfg["sample_s"])
    t0 = time.time() + 2.0  # the client process's start-up
    proc, stop, client_out = start_client(http_port, model, cfg, token, t0, tmp)
    time.sleep(max(0.0, t0 - time.time()))
    sampler.sample("load starts")
    sampler.start()
    t_end = t0 + cfg["duration_s"]
    try:
        rollouts = drive(model, store, cfg, t0 + cfg["warmup_s"], t_end)
    finally:
        proc.join(max(0.0, t_end - time.time()) + 60)
        stop.set()
        sampler.stop()
    client = json.loads(Path(client_out).read_text())
    ro = rr.connect(model)
    doc = {
        "model": model,
        "setup_s": round(setup_s, 1),
        "t0": t0,
        "t_end": t_end,
        "rollouts": rollouts,
        "samples": sampler.samples,
        "pid_source": sampler.pid_source,
        "client": client,
        "verify": ro.verify(),
        "final_status": {k: ro.status()[k] for k in ("rollout", "phase", "stable", "epoch")},
        "env": c.mode_env("proxy"),
    }
    out.write_text(json.dumps(doc))
    h = RayServePort().controller(model, create=False)
    try:
        h.call("stop")
        ray.kill(h.actor, no_restart=True)
    finally:
        c.stop_ray()
