"""``python -m benchmarks.cluster_faults``: node loss under load on a multi-node Ray.

Four scenarios on ``ray.cluster_utils.Cluster`` (a head and worker raylets on this machine,
each worker with a custom resource so that versions and the controller can be placed on it),
with Serve's proxy on the head only (127.0.0.1, a free port) and 8 closed-loop httpx clients
on loopback sending one-row predictions:

1. ``candidate-node``: the node holding the candidate's only replica is removed mid-canary. The
   rollout must roll back by itself, with 0 failed requests on the stable path; reported: the
   seconds from the removal to the rollback, and the decision log's reason.
2. ``controller-node``: the node holding the controller is removed mid-rollout, with the
   PostgreSQL store (a real server, ``tests/pg.py``). The controller must come back on another
   node with the same phase, step, epoch and decision count, the log's chain intact, and the
   rollout must complete.
3. ``router-replica``: a router (ingress) replica of two is killed, in a ``serve run``-style
   deployment (the ingress app built from a rollout config) and in a Python-API one. Once the
   replacement serves, no response may carry an epoch older than the controller's, and a
   rollout that was rolled back must not start again. The full form kills twice per
   deployment (mid-canary, and after an abort); the short form kills once, after the abort,
   which tests both (the replacement must serve the rolled-back epoch, not its config's
   first table, and must not start the rollout again).
4. ``stable-node``: the stable has two replicas on two nodes; one node is removed mid-canary.
   The stable path must keep serving; its failed requests must be only those in flight at the
   removal.

The full form runs each scenario in its own subprocess (``--worker``) and cluster. The short
form (``--short``, the test suite's) runs them all in one subprocess on one cluster, each with
its own model on the one ingress, retired (routes, apps, controller, its workers) before the
next starts; the order is chosen so that no scenario can disturb a later one: scenario 3 first
(its killed router replicas may come back on its worker, which is kept to the end and never
removed), then 1, 4 and 2 (PostgreSQL started for it). Every run is bounded in time and in
requests and always shuts its cluster down. Results: a table, and
``results/cluster_faults.json`` (or ``--out``), with each scenario's timeline (seconds from its
start to each step). The exit status is 1 if a scenario did not meet its expectations.

Placement, since the router deployment takes no resources: Serve and the ingress are deployed,
and each controller created, while no worker but the kept one is up, so they run there or on
the head (scenario 2 puts the controller on a worker through a custom resource instead; a
SQLite store pins the controller to the head); the other workers are added after. Each
scenario that removes a node checks that no ingress replica is on it. Node failure detection
is shortened (``health_check_period_ms`` 1000, 5 misses) so a removed node is declared dead in
~5 s rather than Ray's default ~15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import _common as c

NAME = "cluster_faults"
MODULE = f"benchmarks.{NAME}"
SCENARIOS = {1: "candidate-node", 2: "controller-node", 3: "router-replica", 4: "stable-node"}
STYLES = ("serve-run", "python-api")  # scenario 3's two deployments
CONCURRENCY = 8
STABLE, CANDIDATE = "v1", "v2"
SYSTEM_CONFIG = {"health_check_period_ms": 1000, "health_check_failure_threshold": 5}

# Bounds of a run. ``dwell_s``: canary traffic before the fault; ``observe_s``: at most this long
# for the expected reaction; ``settle_s``: traffic watched once the reaction is seen (a
# replacement serves, the lost node is declared dead, the rollback is done); ``after_s``:
# scenario 4 watches the stable path at least this long after the removal; ``max_requests``:
# the clients stop after this many in a scenario; ``router_kills``: scenario 3's kills per
# deployment (2: mid-canary and after the abort; 1: after the abort only); ``kill_at_abort``:
# that kill as soon as the abort has returned (the candidate's app may still be being
# deleted), else once the app is gone; ``last_step_requests``: scenario 2's last step;
# ``one_cluster``: every scenario in one process on one cluster (else each in its own).
FULL = {"warmup_s": 4.0, "dwell_s": 8.0, "observe_s": 60.0, "settle_s": 6.0, "after_s": 20.0,
        "max_requests": 40_000, "request_timeout_s": 5.0, "tick_s": 0.5,
        "step_s": 40.0, "last_step_requests": 50, "scenario_timeout_s": 540.0,
        "router_kills": 2, "kill_at_abort": False, "one_cluster": False}
SHORT = {"warmup_s": 1.0, "dwell_s": 2.0, "observe_s": 45.0, "settle_s": 3.0, "after_s": 0.0,
         "max_requests": 12_000, "request_timeout_s": 5.0, "tick_s": 0.5,
         "step_s": 15.0, "last_step_requests": 20, "scenario_timeout_s": 300.0,
         "router_kills": 1, "kill_at_abort": True, "one_cluster": True}
# One cluster: scenario 3 first (its killed router replicas may be replaced on its worker,
# ``KEPT_WORKER``, which no later scenario removes), scenario 2 last (PostgreSQL, and
# $RAYROLLOUT_STORE_URL for the workers it adds).
ONE_CLUSTER_ORDER = ((3, "serve-run"), (3, "python-api"), (1, None), (4, None), (2, None))
KEPT_WORKER = "node_s"
NODE_START_ATTEMPTS = 3  # a raylet that misses Ray's start window is stopped and started again


# -- load -------------------------------------------------------------------------------------


@dataclass
class Row:
    """One request: when it started and ended (wall clock), the HTTP status (0: no answer),
    the version and routing epoch the router said served it, and the error if any."""

    t0: float
    t1: float
    status: int
    version: str
    epoch: int
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.status != 200


class Load:
    """``CONCURRENCY`` closed-loop clients (httpx, one event loop on a thread of the driver),
    loopback only, until ``stop()`` or ``max_requests``; every request is a ``Row``."""

    def __init__(self, url: str, body: bytes, max_requests: int, timeout_s: float = 30.0
                 ) -> None:
        self.url, self.body = url, body
        self.max_requests, self.timeout_s = max_requests, timeout_s
        self.rows: list[Row] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout_s + 10)

    @property
    def exhausted(self) -> bool:
        return len(self.rows) >= self.max_requests

    async def _main(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(timeout=self.timeout_s, limits=limits) as client:
            await asyncio.gather(*(self._client(client) for _ in range(CONCURRENCY)))

    async def _client(self, client: Any) -> None:
        while not self._stop.is_set() and not self.exhausted:
            t0 = time.time()
            try:
                r = await client.post(self.url, content=self.body, headers=c.JSON_HEADERS)
                row = Row(t0, time.time(), r.status_code, r.headers.get("x-model-version", ""),
                          int(r.headers.get("x-routing-epoch", -1)),
                          "" if r.status_code == 200 else r.text[:160])
            except Exception as e:  # the connection dropped, or no answer in timeout_s
                row = Row(t0, time.time(), 0, "", -1, type(e).__name__)
            self.rows.append(row)
            if row.failed:
                await asyncio.sleep(0.05)  # a failing path is not hammered in a tight loop


def path_of(row: Row) -> str:
    return {STABLE: "stable", CANDIDATE: "candidate"}.get(row.version, "unknown")


def by_path(rows: list[Row], pred: Callable[[Row], bool]) -> dict[str, int]:
    out = {"stable": 0, "candidate": 0, "unknown": 0}
    for r in rows:
        if pred(r):
            out[path_of(r)] += 1
    return out


def traffic(rows: list[Row], fault: tuple[float, float] | None = None) -> dict[str, Any]:
    """What the clients saw: requests, failures by path (all, and started after the fault),
    and a few failures' errors. ``fault``: when the removal began and when it was done (the
    node's processes killed); a request is in flight at the fault if it started before the
    node was gone and had not ended when its removal began."""
    doc: dict[str, Any] = {
        "requests": len(rows),
        "served_by_path": by_path(rows, lambda r: not r.failed),
        "failed_by_path": by_path(rows, lambda r: r.failed),
        "failure_examples": sorted({f"{r.status} {r.error}"[:120] for r in rows if r.failed})[:5],
    }
    if fault is not None:
        t_fault, t_gone = fault
        doc["removal_s"] = round(t_gone - t_fault, 3)
        doc["in_flight_at_fault"] = sum(1 for r in rows if r.t0 <= t_gone and r.t1 > t_fault)
        doc["failed_started_after_fault"] = by_path(rows, lambda r: r.failed and r.t0 > t_gone)
        doc["served_after_fault"] = by_path(rows, lambda r: not r.failed and r.t0 > t_gone)
        doc["failures_after_removal_began"] = [  # seconds from the removal's start, path, error
            [round(r.t0 - t_fault, 3), path_of(r), f"{r.status} {r.error}"[:100]]
            for r in rows if r.failed and r.t1 > t_fault][:10]
    return doc


# -- the cluster ------------------------------------------------------------------------------


class Timeline:
    """Seconds from a scenario's start to each named step (where its time goes)."""

    def __init__(self) -> None:
        self.t0 = time.time()
        self.marks: dict[str, float] = {}

    def mark(self, what: str) -> None:
        self.marks[what] = round(time.time() - self.t0, 1)


class ClusterSession:
    """A head raylet (resource ``head``) with Ray connected and Serve started (proxy on the head
    only); ``add_worker`` adds a raylet with a custom resource (once per name); ``close`` stops
    everything. ``tl``: the running scenario's timeline."""

    def __init__(self) -> None:
        import ray
        from ray import serve
        from ray.cluster_utils import Cluster

        os.environ.update(c.BASE_ENV)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(c.ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.http_port = c.free_port()
        self.workers: dict[str, Any] = {}
        self.tl = Timeline()
        t0 = time.time()
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "resources": {"head": 1}, "include_dashboard": False,
            "_system_config": SYSTEM_CONFIG})
        try:
            ray.init(address=self.cluster.address, logging_level=logging.ERROR,
                     log_to_driver=False)
            serve.start(proxy_location="HeadOnly",
                        http_options={"host": "127.0.0.1", "port": self.http_port})
        except BaseException:
            self.cluster.shutdown()
            raise
        self.start_s = time.time() - t0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def add_worker(self, name: str, **extra: float) -> Any:
        """A worker with resource ``name`` (and ``extra``); the running one if there is one."""
        if name in self.workers:
            return self.workers[name]
        for attempt in range(1, NODE_START_ATTEMPTS + 1):
            before = _children()
            try:
                node = self.cluster.add_node(num_cpus=1, resources={name: 1, **extra})
                break
            except Exception as e:
                # Ray gives a raylet a fixed 30 s to register with the GCS; on a loaded 2-core
                # machine it can take longer. What that try started is ours: stopped by PID.
                if "timed out during startup" not in str(e) or attempt == NODE_START_ATTEMPTS:
                    raise
                _kill(_children() - before)
                self.tl.mark(f"{name}: raylet start timed out (try {attempt}); trying again")
        self.cluster.wait_for_nodes()
        self.workers[name] = node
        self.tl.mark(f"added {name}")
        return node

    def retire_workers(self, keep: str = KEPT_WORKER) -> None:
        """Every worker but ``keep`` removed, gracefully (the next scenario adds its own)."""
        for name in [n for n in self.workers if n != keep]:
            self.cluster.remove_node(self.workers.pop(name), allow_graceful=True)

    def remove_worker(self, name: str) -> tuple[float, float]:
        """Kill the worker's raylet and its processes at once (no graceful drain); returns the
        wall-clock times at which the removal began and was done (its processes killed)."""
        node = self.workers.pop(name)
        t = time.time()
        self.cluster.remove_node(node, allow_graceful=False)
        return t, time.time()

    def node_of(self, name: str) -> str:
        return str(self.workers[name].node_id)

    def close(self) -> None:
        import ray
        from ray import serve

        stopper = threading.Thread(target=serve.shutdown, daemon=True)
        stopper.start()
        stopper.join(60)
        with suppress(Exception):
            ray.shutdown()
        self.cluster.shutdown()


def _children() -> set[int]:
    """PIDs of the processes this one started itself (a raylet ``add_node`` starts is one)."""
    import psutil

    return {p.pid for p in psutil.Process().children()}


def _kill(pids: set[int]) -> None:
    """Kill these processes and everything they started."""
    import psutil

    for pid in pids:
        with suppress(psutil.Error):
            p = psutil.Process(pid)
            for q in [*p.children(recursive=True), p]:
                with suppress(psutil.Error):
                    q.kill()


def actors() -> list[dict[str, Any]]:
    """Alive actors from the GCS actor table: name, class, node id, actor id, pid."""
    from ray._private import state

    return [{"name": a.get("Name") or "", "class": a.get("ActorClassName") or "",
             "node": (a.get("Address") or {}).get("NodeID", ""), "id": a.get("ActorID", ""),
             "pid": a.get("Pid")}
            for a in state.actors(actor_state_name="ALIVE").values()]


def replicas(app: str, deployment: str) -> list[dict[str, Any]]:
    return [a for a in actors() if a["class"] == f"ServeReplica:{app}:{deployment}"]


def actor_rows(model: str) -> list[dict[str, Any]]:
    """The controller's rows in the GCS actor table, in any state (for a failure's message)."""
    from ray._private import state

    from rayrollout.names import controller_name

    return [{"state": a.get("State"), "node": str((a.get("Address") or {}).get("NodeID", ""))[:12],
             "restarts": a.get("NumRestarts"), "death": str(a.get("DeathCause", ""))[:300]}
            for a in state.actors().values() if a.get("Name") == controller_name(model)]


def controller_actor(model: str) -> dict[str, Any] | None:
    from rayrollout.names import controller_name

    found = [a for a in actors() if a["name"] == controller_name(model)]
    return found[0] if found else None


def wait_for(what: str, ok: Callable[[], bool], timeout_s: float, every_s: float = 0.2) -> float:
    """Seconds until ``ok()`` held; ``TimeoutError`` naming ``what`` after ``timeout_s``."""
    t0 = time.time()
    while not ok():
        if time.time() - t0 > timeout_s:
            raise TimeoutError(f"{what}: not after {timeout_s:g} s")
        time.sleep(every_s)
    return time.time() - t0


# -- specs and deployments --------------------------------------------------------------------


def version(name: str, artifact: str, resources: dict[str, float], **kw: Any) -> dict[str, Any]:
    return {"name": name, "runtime": "onnx", "artifact": str(c.ARTIFACTS / artifact),
            "max_ongoing_requests": 512,
            "ray_actor_options": {"num_cpus": 0, "resources": resources}, **kw}


def spec_doc(model: str, cfg: dict[str, Any], stable: dict[str, Any], candidate: dict[str, Any],
             steps: list[dict[str, Any]], store: str | None, router_replicas: int = 1,
             rollback_window_s: float = 0.0) -> dict[str, Any]:
    """A rollout of ``candidate`` over ``stable``: errors judged (and a threshold guard), the
    router's request timeout short so a lost replica's requests end within the scenario."""
    from rayrollout.spec import RolloutSpec

    doc: dict[str, Any] = {
        "model": model,
        "stable": stable,
        "candidates": [candidate],
        "strategy": {"steps": steps},
        "analysis": {
            "alpha": 0.05, "tick_s": cfg["tick_s"],
            "checks": [{"kind": "errors", "params": {"min_candidate_requests": 20}}],
            "guards": [{"kind": "threshold_errors",
                        "params": {"max_error_rate": 0.5, "window_s": 10, "min_requests": 5}}],
        },
        "rollback_window_s": rollback_window_s,
        "drain_s": 1.0,
        "router": {"request_timeout_s": cfg["request_timeout_s"],
                   "deployment": {"num_replicas": router_replicas}},
    }
    if store is None:
        pass
    elif store.startswith(("postgresql://", "postgres://")):
        if "store_url" in RolloutSpec.model_fields:  # else: $RAYROLLOUT_STORE_URL (contract)
            doc["store_url"] = store
    else:
        doc["store_path"] = store
    return doc


def request_body() -> bytes:
    import numpy as np

    x = np.load(c.HELDOUT)["X"].astype(np.float32)
    return json.dumps({"instances": [x[0].tolist()]}).encode()


def predict_url(s: ClusterSession, model: str) -> str:
    return f"{s.base}/v1/models/{model}/predict"


def serve_python_api(spec: Any, store: str | None) -> None:
    """The stable and the model's router as the Python API deploys them, and the controller
    created now, while the head is the only node (so all of them run there)."""
    import rayrollout.client.api as rr
    from rayrollout.serving.port import RayServePort

    rr.ensure_serving(spec, "/")
    RayServePort().controller(spec.model, store, True)


def serve_config(spec_dict: dict[str, Any]) -> None:
    """The ingress app built from a rollout config, as ``serve run`` does: Serve's own builder
    call with the config's args; the router starts the controller and the rollout."""
    from ray import serve
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    from rayrollout.names import router_app_name
    from rayrollout.serving.app import build_rollout

    app = call_user_app_builder_with_args_if_necessary(build_rollout,  # type: ignore[arg-type]
                                                       spec_dict)
    serve.run(app, name=router_app_name(spec_dict["model"]), route_prefix="/")


def place_controller(model: str, store: str, resources: dict[str, float]) -> None:
    """The controller of ``model`` created as the port creates it, plus ``resources`` (a custom
    resource some workers have): Ray places it, and restarts it, only on such a node."""
    from rayrollout.serving.actor import create_controller_actor
    from rayrollout.serving.port import RayServePort

    create_controller_actor(model, store, RayServePort, {"resources": resources})


def controller_call(model: str, method: str, *args: Any, timeout_s: float = 15.0) -> Any:
    """``method`` of the controller of ``model``; ``UnavailableError`` if it does not answer
    within ``timeout_s`` (a call to an actor that Ray is restarting waits for it)."""
    from rayrollout.serving.port import RayServePort

    h = RayServePort().controller(model, create=False)
    h.timeout_s = timeout_s
    return h.call(method, *args)


def status_when_up(model: str, timeout_s: float) -> tuple[dict[str, Any], float]:
    """The controller's status as soon as it answers (it may be restarting), and when."""
    from rayrollout.errors import NotFound, UnavailableError

    t0 = time.time()
    while True:
        try:
            return dict(controller_call(model, "status")), time.time()
        except (UnavailableError, NotFound):
            if time.time() - t0 > timeout_s:
                raise
            time.sleep(0.1)


def log_view(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("seq", "now", "phase_from", "phase_to", "epoch", "actor", "reason", "hash")
    return [{k: e.get(k) for k in keys} for e in entries]


def stop_controller(model: str) -> None:
    """The detached controller outlives nothing: stopped and killed before the cluster goes."""
    import ray

    from rayrollout.names import NAMESPACE, controller_name

    with suppress(Exception):
        ray.kill(ray.get_actor(controller_name(model), namespace=NAMESPACE), no_restart=True)


def ingress_nodes() -> set[str]:
    """The nodes of the ingress's replicas (every model's router)."""
    from rayrollout.names import INGRESS_APP, ROUTER_DEPLOYMENT

    return {a["node"] for a in replicas(INGRESS_APP, ROUTER_DEPLOYMENT)}


def routers_running(apps: dict[str, Any], n: int) -> bool:
    """Of ``serve.status().applications``: the ingress has exactly ``n`` replicas, all running
    (a replacement counts once its constructor, which adopts the routes, has returned)."""
    from rayrollout.names import INGRESS_APP, ROUTER_DEPLOYMENT

    app = apps.get(INGRESS_APP)
    d = app.deployments.get(ROUTER_DEPLOYMENT) if app is not None else None
    if d is None:
        return False
    states = {str(getattr(k, "value", k)): v for k, v in d.replica_states.items()}
    return states.get("RUNNING", 0) == n and sum(states.values()) == n


def retire(model: str) -> None:
    """``model`` gone from a cluster that later scenarios use: its controller stopped, the
    model off the ingress (a tombstone, so a router replica started later does not serve it,
    even one whose config declares it) and its version apps deleted."""
    from ray import serve

    from rayrollout.serving.port import RayServePort

    stop_controller(model)
    with suppress(Exception):
        RayServePort().remove_router(model)
    for a in serve.status().applications:
        if a.startswith(f"{model}-"):  # not waited for: a later scenario never uses them
            serve.delete(a, _blocking=False)


@contextmanager
def loaded(s: ClusterSession, model: str, cfg: dict[str, Any]) -> Iterator[Load]:
    c.wait_http_ok(predict_url(s, model), request_body(), timeout_s=120)
    s.tl.mark("answers")
    load = Load(predict_url(s, model), request_body(), cfg["max_requests"]).start()
    try:
        time.sleep(cfg["warmup_s"])
        yield load
    finally:
        load.stop()


# -- scenarios --------------------------------------------------------------------------------


def canary_steps(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """One canary step that does not end by itself within a scenario."""
    return [{"weight": 30, "min_requests": 10**9, "min_duration_s": 3600}]


def start_to_canary(s: ClusterSession, spec: Any, store: str, cfg: dict[str, Any]
                    ) -> tuple[Any, dict[str, Any]]:
    """The rollout of ``spec`` started with the Python API, once in canary (or ended: the
    caller's expectations check the phase) and ``dwell_s`` later; its status then."""
    import rayrollout.client.api as rr

    ro = rr.start(spec, store_path=store)
    st = ro.wait(frozenset({"canary", "rolled_back", "completed"}), timeout_s=120)
    s.tl.mark("canary")
    time.sleep(cfg["dwell_s"])
    return ro, st


def scenario_candidate_node(s: ClusterSession, cfg: dict[str, Any], tmp: str, model: str
                            ) -> dict[str, Any]:
    from rayrollout.spec import load_spec

    store = f"{tmp}/{model}.db"
    spec = load_spec(spec_doc(model, cfg, version(STABLE, "v1.onnx", {"node_s": 0.01}),
                              version(CANDIDATE, "v2.onnx", {"node_c": 0.01}),
                              canary_steps(cfg), store))
    serve_python_api(spec, store)
    s.tl.mark("served")
    s.add_worker("node_s")
    s.add_worker("node_c")
    try:
        with loaded(s, model, cfg) as load:
            ro, st = start_to_canary(s, spec, store, cfg)
            placed = {a["node"] for a in replicas(f"{model}-{CANDIDATE}", "ModelVersion")}
            lost = s.node_of("node_c")
            routers_on = ingress_nodes()
            before = ro.status()
            t_fault, t_gone = s.remove_worker("node_c")
            s.tl.mark("node removed")
            t_seen = None
            with suppress(TimeoutError):
                wait_for("rollback", lambda: ro.status()["phase"] == "rolled_back",
                         cfg["observe_s"], 0.1)
                t_seen = time.time()
            s.tl.mark("rolled back")
            time.sleep(cfg["settle_s"])
        final = ro.status()
        history = ro.history()
        verify = ro.verify()
    finally:
        stop_controller(model)
    last = history[-1] if history else {}
    t_decision = last.get("now") if final["phase"] == "rolled_back" else None
    rows = load.rows
    tr = traffic(rows, (t_fault, t_gone))
    expect = {
        "candidate_was_on_removed_node": placed == {lost},
        "no_router_on_removed_node": bool(routers_on) and lost not in routers_on,
        "phase_before_fault": before["phase"] == "canary",
        "rolled_back": final["phase"] == "rolled_back",
        "by_the_controller": last.get("actor") not in ("python-api", "http", None),
        "no_failed_stable_requests": tr["failed_by_path"]["stable"] == 0,
        "no_unattributed_failures": tr["failed_by_path"]["unknown"] == 0,
        "log_gives_a_reason": bool(last.get("reason")),
        "chain_intact": bool(verify.get("ok")),
    }
    return {
        "model": model,
        "phase_at_canary": st["phase"],
        "canary_epoch": before["epoch"],
        "traffic": tr,
        "seconds_to_rollback": _since(t_fault, t_decision),
        "seconds_to_rollback_seen": _since(t_fault, t_seen),
        "reason": last.get("reason"),
        "reason_names_lost_replica": any(w in str(last.get("reason", "")).lower()
                                         for w in ("replica", "node", "unhealthy", "lost")),
        "final": {"phase": final["phase"], "epoch": final["epoch"]},
        "log": log_view(history),
        "expect": expect,
    }


def _since(t0: float | None, t1: Any) -> float | None:
    return None if t0 is None or not isinstance(t1, int | float) else round(float(t1) - t0, 2)


def scenario_stable_node(s: ClusterSession, cfg: dict[str, Any], tmp: str, model: str
                         ) -> dict[str, Any]:
    from rayrollout.names import version_app_name
    from rayrollout.spec import load_spec

    store = f"{tmp}/{model}.db"
    stable = version(STABLE, "v1.onnx", {"stable": 0.01}, num_replicas=2,
                     max_replicas_per_node=1)
    spec = load_spec(spec_doc(model, cfg, stable,
                              version(CANDIDATE, "v2.onnx", {"head": 0.01}),
                              canary_steps(cfg), store))
    serve_python_api(spec, store)
    s.tl.mark("served")
    s.add_worker("node_a", stable=1)
    s.add_worker("node_b", stable=1)
    app = version_app_name(model, STABLE)
    wait_for("two stable replicas on two nodes",
             lambda: len({a["node"] for a in replicas(app, "ModelVersion")}) == 2, 120)
    s.tl.mark("stable on two nodes")
    try:
        with loaded(s, model, cfg) as load:
            ro, st = start_to_canary(s, spec, store, cfg)
            nodes = sorted(a["node"] for a in replicas(app, "ModelVersion"))
            lost = s.node_of("node_a")
            routers_on = ingress_nodes()
            before = ro.status()
            t_fault, t_gone = s.remove_worker("node_a")
            s.tl.mark("node removed")
            # Watched until Ray has declared the node dead (its replica is no longer alive),
            # so that the window covers the time in which a request could still be routed to
            # the lost replica, then ``settle_s`` more (and ``after_s`` from the removal).
            with suppress(TimeoutError):
                wait_for("the lost node's stable replica dead",
                         lambda: lost not in {a["node"] for a in replicas(app, "ModelVersion")},
                         cfg["observe_s"])
            s.tl.mark("replica declared dead")
            time.sleep(max(cfg["settle_s"], t_fault + cfg["after_s"] - time.time()))
        final = ro.status()
        history = ro.history()
        verify = ro.verify()
        left = sorted(a["node"] for a in replicas(app, "ModelVersion"))
    finally:
        stop_controller(model)
    tr = traffic(load.rows, (t_fault, t_gone))
    failed = tr["failed_by_path"]["stable"]
    expect = {
        "stable_on_two_nodes": len(set(nodes)) == 2 and lost in nodes,
        "no_router_on_removed_node": bool(routers_on) and lost not in routers_on,
        "phase_before_fault": before["phase"] == "canary",
        "stable_kept_serving": tr["served_after_fault"]["stable"] > 0,
        "stable_failures_only_in_flight": (tr["failed_started_after_fault"]["stable"] == 0
                                           and failed <= tr["in_flight_at_fault"]),
        "no_unattributed_failures": tr["failed_by_path"]["unknown"] == 0,
        "rollout_undisturbed": (final["phase"] == before["phase"]
                                and final["epoch"] == before["epoch"]),
        "chain_intact": bool(verify.get("ok")),
    }
    return {
        "model": model,
        "phase_at_canary": st["phase"],
        "traffic": tr,
        "stable_replica_nodes": {"before": len(set(nodes)), "after": len(set(left))},
        "final": {"phase": final["phase"], "epoch": final["epoch"]},
        "log": log_view(history),
        "expect": expect,
    }


def scenario_controller_node(s: ClusterSession, cfg: dict[str, Any], url: str, model: str
                             ) -> dict[str, Any]:
    import rayrollout.client.api as rr
    from rayrollout.names import default_store_path
    from rayrollout.spec import load_spec

    steps = [{"weight": 20, "min_requests": 50, "min_duration_s": cfg["step_s"]},
             {"weight": 50, "min_requests": cfg["last_step_requests"], "min_duration_s": 2}]
    spec = load_spec(spec_doc(model, cfg, version(STABLE, "v1.onnx", {"head": 0.01}),
                              version(CANDIDATE, "v2.onnx", {"head": 0.01}), steps, url,
                              rollback_window_s=2.0))
    rr.ensure_serving(spec, "/")  # the router on the head (or the kept worker)
    s.tl.mark("served")
    # The controller needs resource "ctl": node_x has it, then node_y joins with it too, so
    # the controller starts on node_x and can only be restarted on node_y.
    s.add_worker("node_x", ctl=1)
    lost = s.node_of("node_x")
    place_controller(model, url, {"ctl": 0.01})
    try:
        wait_for("the controller on node_x",
                 lambda: (controller_actor(model) or {}).get("node") == lost, 60)
    except TimeoutError as e:
        raise TimeoutError(f"{e}; node_x {lost[:12]}; actor table: {actor_rows(model)}") from None
    s.tl.mark("controller on node_x")
    s.add_worker("node_y", ctl=1)
    spare = s.node_of("node_y")
    try:
        with loaded(s, model, cfg) as load:
            ro, _ = start_to_canary(s, spec, url, cfg)
            before, hist_before = ro.status(), ro.history()
            who_before = controller_actor(model) or {}
            routers_on = ingress_nodes()
            t_fault, t_gone = s.remove_worker("node_x")
            s.tl.mark("node removed")
            # The old incarnation may answer for a moment while its node goes down: resumed
            # means Ray runs it on node_y and it answers there.
            wait_for("the controller restarted on node_y",
                     lambda: (controller_actor(model) or {}).get("node") == spare,
                     cfg["observe_s"])
            after, t_up = status_when_up(model, cfg["observe_s"])
            s.tl.mark("resumed")
            hist_after = list(controller_call(model, "history"))
            who_after = controller_actor(model) or {}
            final = ro.wait(frozenset({"completed", "rolled_back"}),
                            timeout_s=cfg["step_s"] + cfg["observe_s"])
            s.tl.mark("completed")
        history = ro.history()
        verify = ro.verify()
    finally:
        stop_controller(model)
    keys = ("rollout", "phase", "step", "epoch")
    same = {k: before.get(k) == after.get(k) for k in keys}
    same["decisions"] = len(hist_after) == len(hist_before)
    prefix = [(e.get("seq"), e.get("hash")) for e in hist_before]
    kept = [(e.get("seq"), e.get("hash")) for e in hist_after[:len(hist_before)]] == prefix
    # Resumed as it was, or (if a decision fell due while it was down) it went on from there.
    went_on = (not all(same.values()) and kept and len(hist_after) > len(hist_before)
               and hist_after[len(hist_before)].get("phase_from") == before["phase"])
    tr = traffic(load.rows, (t_fault, t_gone))
    store_info = after.get("store") or {}
    expect = {
        "controller_was_on_removed_node": who_before.get("node") == lost,
        "no_router_on_removed_node": bool(routers_on) and lost not in routers_on,
        "resumed_on_another_node": who_after.get("node") == spare,
        "same_phase_step_epoch_decisions": all(same.values()) or went_on,
        "no_decision_lost": kept,
        "chain_intact": bool(verify.get("ok")),
        "rollout_completed": final["phase"] == "completed",
        "store_is_postgresql": (store_info.get("kind") == "postgresql" if store_info
                                else not Path(default_store_path(model)).exists()),
        "no_failed_requests": sum(tr["failed_by_path"].values()) == 0,
    }
    return {
        "model": model,
        "traffic": tr,
        "seconds_to_resume": _since(t_fault, t_up),
        "at_fault": {k: before.get(k) for k in (*keys, "decisions")},
        "at_resume": {k: after.get(k) for k in (*keys, "decisions")},
        "same_at_resume": same,
        "resumed_then_advanced": went_on,
        "decisions": {"before": len(hist_before), "at_resume": len(hist_after),
                      "final": len(history)},
        "store": store_info,
        "final": {"phase": final["phase"], "epoch": final["epoch"]},
        "log": log_view(history),
        "expect": expect,
    }


def kill_router_replica(app: str) -> tuple[str, float]:
    """Kill one ingress replica (Serve starts a new one); its actor id and when."""
    import ray

    from rayrollout.names import ROUTER_DEPLOYMENT

    victim = replicas(app, ROUTER_DEPLOYMENT)[0]
    actor = ray.get_actor(victim["name"], namespace="serve")
    t = time.time()
    ray.kill(actor, no_restart=True)
    return str(victim["id"]), t


def wait_replaced(app: str, killed: str, n: int, timeout_s: float) -> float:
    from rayrollout.names import ROUTER_DEPLOYMENT

    def ok() -> bool:
        ids = {a["id"] for a in replicas(app, ROUTER_DEPLOYMENT)}
        return killed not in ids and len(ids) >= n

    return wait_for("a new router replica", ok, timeout_s)


def kill_and_watch(s: ClusterSession, app: str, cand_app: str, cfg: dict[str, Any], when: str,
                   candidate_goes: bool) -> dict[str, Any]:
    """Kill one of the two router replicas, wait for its replacement to run, and watch
    ``settle_s`` more (at least 6 controller ticks) of traffic. ``candidate_goes``: the
    candidate's app is being deleted or gone (after the abort); then the watch also lasts
    until it is gone, and records whether it came back. Returns when each step happened."""
    from ray import serve

    killed, t_kill = kill_router_replica(app)
    replaced_s = wait_replaced(app, killed, 2, cfg["observe_s"])
    s.tl.mark(f"replica replaced ({when})")
    t_run: float | None = None
    t_gone: float | None = None
    back: list[float] = []
    t_end = time.time() + cfg["observe_s"]
    while time.time() < t_end:  # would a restarted replica start the rollout again?
        apps = serve.status().applications
        if cand_app not in apps and t_gone is None:
            t_gone = time.time()
        elif cand_app in apps and t_gone is not None:
            back.append(time.time())
        if t_run is None and routers_running(apps, 2):
            t_run = time.time()
            s.tl.mark(f"replacement running ({when})")
        if (t_run is not None and time.time() > t_run + max(cfg["settle_s"], 6 * cfg["tick_s"])
                and (t_gone is not None or not candidate_goes)):
            break
        time.sleep(0.2)
    return {"when": when, "t_kill": t_kill, "t_run": t_run, "replaced_s": round(replaced_s, 2),
            "running_s": _since(t_kill, t_run), "candidate_gone_s": _since(t_kill, t_gone),
            "candidate_back": back}


def scenario_router_replica(s: ClusterSession, cfg: dict[str, Any], tmp: str, model: str,
                            style: str) -> dict[str, Any]:
    import rayrollout.client.api as rr
    from rayrollout.names import ROUTER_DEPLOYMENT, router_app_name, version_app_name
    from rayrollout.serving.port import RayServePort
    from rayrollout.spec import load_spec

    store = f"{tmp}/{model}.db"
    doc = spec_doc(model, cfg, version(STABLE, "v1.onnx", {KEPT_WORKER: 0.01}),
                   version(CANDIDATE, "v2.onnx", {KEPT_WORKER: 0.01}), canary_steps(cfg),
                   store, router_replicas=2)
    spec = load_spec(doc)
    app = router_app_name(model)
    if style == "serve-run":
        serve_config(doc)  # the router starts the controller and the rollout
    else:
        serve_python_api(spec, store)
    wait_for("two router replicas", lambda: len(replicas(app, ROUTER_DEPLOYMENT)) >= 2, 120)
    s.tl.mark("served")
    s.add_worker(KEPT_WORKER)
    cand_app = version_app_name(model, CANDIDATE)
    kills: list[dict[str, Any]] = []
    tables: list[list[dict[str, Any]]] = []
    try:
        with loaded(s, model, cfg) as load:
            if style == "serve-run":
                status_when_up(model, 60)
                ro = rr.connect(model)
            else:
                ro = rr.start(spec, store_path=store)
            st = ro.wait(frozenset({"canary", "rolled_back", "completed"}), timeout_s=180)
            s.tl.mark("canary")
            time.sleep(cfg["dwell_s"])
            canary = ro.status()
            if cfg["router_kills"] >= 2:
                kills.append(kill_and_watch(s, app, cand_app, cfg, "mid-canary", False))
                tables.append(RayServePort().router_tables(model))
            # The abort returns once every router replica holds the rolled-back table.
            aborted = ro.abort(reason="benchmark: end the canary")
            t_abort = time.time()
            n_decisions = len(ro.history())
            s.tl.mark("rolled back")
            if not cfg["kill_at_abort"]:
                with suppress(TimeoutError):
                    wait_for("the candidate's app deleted",
                             lambda: cand_app not in RayServePort().applications(), 30)
                s.tl.mark("candidate deleted")
            kills.append(kill_and_watch(s, app, cand_app, cfg, "rolled back", True))
            tables.append(RayServePort().router_tables(model))
        final = ro.status()
        history = ro.history()
        verify = ro.verify()
    finally:
        stop_controller(model)
    rows = load.rows
    # Each kill's window: from the kill to the next step (the abort, or the end); a response
    # in it must carry the epoch the controller had then.
    ends = [t_abort, float("inf")][-len(kills):]
    epochs = [canary["epoch"], aborted["epoch"]][-len(kills):]
    stale = {k["when"]: sum(1 for r in rows if k["t_kill"] < r.t0 < end and not r.failed
                            and r.epoch < e) for k, end, e in zip(kills, ends, epochs, strict=True)}
    served_after = {k["when"]: sum(1 for r in rows if k["t_run"] is not None
                                   and k["t_run"] < r.t0 < end and not r.failed)
                    for k, end in zip(kills, ends, strict=True)}
    last = kills[-1]
    cand_after = sum(1 for r in rows if r.t0 > last["t_kill"] and r.version == CANDIDATE)
    in_flight = sum(1 for r in rows for k in kills if r.t0 <= k["t_kill"] < r.t1)
    tr = traffic(rows)
    expect = {
        "in_canary_before_faults": canary["phase"] == "canary",
        "replacements_ran": all(k["t_run"] is not None for k in kills),
        "replacements_served": all(n > 0 for n in served_after.values()),
        "no_stale_epoch_after_kills": all(n == 0 for n in stale.values()),
        "replicas_at_controller_epoch": all(
            bool(t) and all(int(x.get("epoch", -1)) == e for x in t)
            for t, e in zip(tables, [*epochs[:-1], final["epoch"]], strict=True)),
        "rolled_back_stays_rolled_back": (final["rollout"] == aborted["rollout"]
                                          and final["phase"] == "rolled_back"
                                          and final["epoch"] == aborted["epoch"]
                                          and len(history) == n_decisions),
        "candidate_not_redeployed": (last["candidate_gone_s"] is not None
                                     and not last["candidate_back"] and cand_after == 0),
        "failures_only_in_flight": sum(tr["failed_by_path"].values()) <= in_flight,
        "chain_intact": bool(verify.get("ok")),
    }
    return {
        "model": model,
        "style": style,
        "phase_at_canary": st["phase"],
        "traffic": tr,
        "kills": [k["when"] for k in kills],
        "in_flight_at_kills": in_flight,
        "seconds_to_replace": [k["replaced_s"] for k in kills],
        "seconds_to_replacement_running": [k["running_s"] for k in kills],
        "seconds_to_candidate_gone": last["candidate_gone_s"],
        "epochs": {"canary": canary["epoch"], "rolled_back": aborted["epoch"],
                   "replicas_after_kills": [[x.get("epoch") for x in t] for t in tables]},
        "stale_epoch_responses": stale,
        "served_after_replacement_ran": served_after,
        "candidate_responses_after_last_kill": cand_after,
        "candidate_app_reappeared": len(last["candidate_back"]) > 0,
        "final": {"phase": final["phase"], "epoch": final["epoch"],
                  "rollout": final["rollout"]},
        "log": log_view(history),
        "expect": expect,
    }


# -- worker and parent ------------------------------------------------------------------------


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_scenario(s: ClusterSession, n: int, style: str | None, cfg: dict[str, Any], tmp: str,
                 url: str, model: str) -> dict[str, Any]:
    if n == 1:
        return scenario_candidate_node(s, cfg, tmp, model)
    if n == 2:
        return scenario_controller_node(s, cfg, url, model)
    if n == 3:
        return scenario_router_replica(s, cfg, tmp, model, style or STYLES[0])
    return scenario_stable_node(s, cfg, tmp, model)


def worker(items: list[tuple[int, str | None]], cfg: dict[str, Any], out: Path) -> None:
    """``items`` in order on one cluster (and, for scenario 2, a PostgreSQL server started
    before it); between two scenarios the first one's model and workers are retired. The
    cluster and the server are always stopped, also on SIGTERM from the parent; the results so
    far are written after each scenario."""
    import traceback

    signal.signal(signal.SIGTERM, _interrupt)
    tmp = tempfile.mkdtemp(prefix="rr-cluster-faults-")
    docs: list[dict[str, Any]] = []
    pg: Any = None
    s: ClusterSession | None = None
    try:
        for i, (n, style) in enumerate(items):
            t0 = time.time()
            doc: dict[str, Any] = {"scenario": n, "name": SCENARIOS[n], "style": style}
            docs.append(doc)
            model = f"cf{n}{uuid.uuid4().hex[:6]}"
            stop = False
            try:
                url = ""
                if n == 2:
                    from tests import pg as pgmod

                    pg = pgmod.start()
                    url = pgmod.new_database(pg.url())
                    # before the workers start: they inherit it
                    os.environ["RAYROLLOUT_STORE_URL"] = url
                    doc["postgresql_start_s"] = round(time.time() - t0, 1)
                if s is None:
                    s = ClusterSession()
                    doc["cluster_start_s"] = round(s.start_s, 1)
                s.tl = Timeline()
                try:
                    doc.update(run_scenario(s, n, style, cfg, tmp, url, model))
                finally:
                    doc["timeline_s"] = s.tl.marks
                    if i + 1 < len(items):
                        t1 = time.time()
                        retire(model)
                        s.retire_workers()
                        doc["retire_s"] = round(time.time() - t1, 1)
            except BaseException as e:  # reported, not raised: the parent reads the JSON
                doc["error"] = f"{type(e).__name__}: {e}"[:2000]
                doc["traceback"] = traceback.format_exc()[-4000:]
                stop = not isinstance(e, Exception)  # SIGTERM, Ctrl-C: no more scenarios
            doc["passed"] = "error" not in doc and bool(doc.get("expect")) and all(
                doc["expect"].values())
            doc["wall_s"] = round(time.time() - t0, 1)
            print(f"{label(n, style)}: {'PASS' if doc['passed'] else 'FAIL'} in "
                  f"{doc['wall_s']} s", flush=True)
            out.write_text(json.dumps(docs))
            if stop:
                break
    finally:
        with suppress(BaseException):
            if s is not None:
                s.close()
        if pg is not None:
            from tests import pg as pgmod

            pgmod.stop(pg)
        out.write_text(json.dumps(docs))


def label(n: int, style: str | None) -> str:
    return f"scenario {n}: {SCENARIOS[n]}" + (f" ({style})" if style else "")


def run_worker(items: list[tuple[int, str | None]], cfg: dict[str, Any]
               ) -> list[dict[str, Any]]:
    """``items`` run by one worker subprocess (one cluster); a result for every item (an
    error for those it left none for)."""
    print("; ".join(label(n, st) for n, st in items) + " ...", file=sys.stderr, flush=True)
    limit_s = cfg["scenario_timeout_s"] * len(items)
    with tempfile.TemporaryDirectory(prefix="rr-cluster-faults-") as d:
        out = Path(d) / "out.json"
        cmd = [sys.executable, "-m", MODULE, "--worker", json.dumps(items),
               "--cfg", json.dumps(cfg), "--out", str(out)]
        env = {**os.environ, **c.BASE_ENV}
        log = Path(d) / "worker.log"
        with log.open("wb") as f:  # Ray's node-death warnings are expected here: kept quiet
            proc = subprocess.Popen(cmd, cwd=c.ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
            try:
                proc.wait(timeout=limit_s)
            except subprocess.TimeoutExpired:
                proc.terminate()  # the worker shuts its cluster down on SIGTERM
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        docs: list[dict[str, Any]] = json.loads(out.read_text()) if out.exists() else []
        done = {(d["scenario"], d.get("style")) for d in docs}
        docs += [{"scenario": n, "name": SCENARIOS[n], "style": st, "passed": False,
                  "error": f"the worker left no result (exit code {proc.returncode}; time "
                           f"limit {limit_s:g} s)"} for n, st in items if (n, st) not in done]
        if not all(d.get("passed") for d in docs):
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr, flush=True)
        return docs


def summary_rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for r in results:
        failed = (r.get("traffic") or {}).get("failed_by_path") or {}
        secs = r.get("seconds_to_rollback", r.get("seconds_to_resume"))
        if r["scenario"] == 3:
            secs = "/".join(str(x) for x in r.get("seconds_to_replace", [])) or None
        missed = [k for k, v in (r.get("expect") or {}).items() if not v]
        rows.append([
            f"{r['scenario']} {r['name']}" + (f" ({r['style']})" if r.get("style") else ""),
            "PASS" if r.get("passed") else "FAIL",
            (r.get("traffic") or {}).get("requests", "-"),
            failed.get("stable", "-"), failed.get("candidate", "-"), failed.get("unknown", "-"),
            "-" if secs is None else secs,
            (r.get("final") or {}).get("phase", "-"),
            r.get("wall_s", "-"),
            r.get("error", "")[:60] or ", ".join(missed) or "all as expected",
        ])
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                description="node loss under load on a multi-node Ray")
    p.add_argument("--short", action="store_true",
                   help="fewer requests, shorter steps, one router kill per deployment, all "
                        "scenarios on one cluster (the test suite's form)")
    p.add_argument("--scenario", type=int, action="append", choices=sorted(SCENARIOS),
                   help="run only this scenario (repeatable); default: all four")
    p.add_argument("--clusters", choices=("one", "each"), default=None,
                   help="one cluster for all scenarios, or one each (default: one with "
                        "--short, else each)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cfg", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.worker is not None:
        worker([(int(n), st) for n, st in json.loads(a.worker)], json.loads(a.cfg), a.out)
        return 0
    cfg = {**(SHORT if a.short else FULL), "concurrency": CONCURRENCY}
    if a.clusters is not None:
        cfg["one_cluster"] = a.clusters == "one"
    t0 = time.time()
    meta = c.machine()
    items = [(n, style) for n in sorted(set(a.scenario or SCENARIOS))
             for style in (STYLES if n == 3 else (None,))]
    if cfg["one_cluster"]:
        ran = run_worker([it for it in ONE_CLUSTER_ORDER if it in items], cfg)
    else:
        ran = [doc for it in items for doc in run_worker([it], cfg)]
    results = sorted(ran, key=lambda r: items.index((r["scenario"], r.get("style"))))
    header = ["scenario", "result", "requests", "failed stable", "failed candidate",
              "failed unknown", "s to rollback/resume/replace", "final phase", "wall s", "notes"]
    print(c.table(summary_rows(results), header))
    passed = all(r.get("passed") for r in results)
    doc = {
        "benchmark": NAME,
        "command": " ".join([f"python -m {MODULE}", *(argv if argv is not None else
                                                        sys.argv[1:])]),
        "config": cfg,
        "system_config": SYSTEM_CONFIG,
        "machine": meta,
        "git": c.git_rev(),
        "wall_s": round(time.time() - t0, 1),
        "order": [[r["scenario"], r.get("style")] for r in ran],
        "passed": passed,
        "scenarios": results,
    }
    path = c.write_result(NAME, doc, a.out)
    print(f"\nwrote {c.shown(path)} ({doc['wall_s']} s)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
