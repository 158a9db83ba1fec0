"""``ControllerActor``: the named, detached, restartable Ray actor around ``RolloutController``.

A thin wrapper: it opens the store at its target (``open_store``: a SQLite path, or a
PostgreSQL URL) where it runs, builds the controller over ``port()`` (``RayServePort``, passed
in by the port that creates the actor), runs ``run_loop`` on a thread, and forwards the verbs.
It exports the controller's state, tick durations and store latencies as Prometheus metrics
(``rayrollout.serving.controller_metrics``) from a second thread.
Everything it does is the plain controller's (``rayrollout.controller.controller``), which the
unit tests drive with the in-memory port. Ray restarts the actor after a crash; ``__init__``
then takes the store's lease (a controller Ray still runs elsewhere is fenced off), reloads the
rollout from the store and resumes it.

Placement (``create_controller_actor``): a node-local store (a SQLite file) pins the actor to
the head node, so a restart, wherever Ray would have put it, opens the same file; a PostgreSQL
store lets it run on any node. A node-local store on a cluster of more than one node is
warned about on the caller's side and in the controller's status (``store.warning``): the
state is then as durable as the head node's disk.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from rayrollout.controller.controller import RolloutController, run_loop
from rayrollout.controller.port import ServePort
from rayrollout.controller.state import Decision
from rayrollout.controller.store import describe_store, open_store
from rayrollout.names import NAMESPACE, controller_name
from rayrollout.serving.controller_metrics import ControllerMetrics, MeteredController, TimedStore

log = logging.getLogger("rayrollout.serving")

HEAD_NODE_RESOURCE = "node:__internal_head__"  # Ray's resource of the head node
STORE_INFO_TTL_S = 30.0  # the status's store section is re-read (alive nodes) this often


def alive_nodes() -> int:
    """How many nodes of the connected Ray cluster are alive."""
    import ray

    return sum(1 for n in ray.nodes() if n.get("Alive"))


def store_section(store_target: str | None, model: str, nodes: int) -> dict[str, Any]:
    """What the status says of the store: ``kind``, ``where`` (no password), ``node_local``
    and ``warning`` (None, or why this store's state is at risk on a cluster of ``nodes``)."""
    info = describe_store(store_target, model)
    warning = None
    if info["node_local"] and nodes > 1:
        warning = (f"the rollout store of {model!r} is a SQLite file ({info['where']}) on the "
                   f"head node's disk, and the cluster has {nodes} nodes: the controller is "
                   "pinned to the head node so that a restart finds the file, but the state "
                   "is lost with that disk unless it is a volume that outlives the node. On a "
                   "cluster, give the rollout a PostgreSQL store (store_url, or "
                   "$RAYROLLOUT_STORE_URL)")
    return {**info, "warning": warning}


class ControllerActor:
    def __init__(self, model: str, store_target: str | None, port: Callable[[], ServePort]
                 ) -> None:
        import ray

        self._model, self._target = model, store_target
        self.metrics = ControllerMetrics(model, lambda: self.controller.status(),
                                         lambda n: self.controller.history(n))
        store = TimedStore(open_store(store_target, model), self.metrics.store_call)
        node = ray.get_runtime_context().get_node_id()
        self._info_at = time.monotonic()
        controller = MeteredController(
            model, store, port(), owner=f"node {node[:16]} pid {os.getpid()}",
            store_info=store_section(store_target, model, alive_nodes()))
        controller.on_tick = self.metrics.tick
        self.controller: RolloutController = controller
        self.metrics.safe_flush()  # the baseline, before the first tick: then every interval
        self.metrics.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run_loop, args=(self.controller, self._stop), name="rollout-loop", daemon=True
        )
        self._thread.start()

    def start(self, spec: dict[str, Any], actor: str = "api",
              declarative: bool = False) -> dict[str, Any]:
        return self.controller.start(spec, actor, declarative)

    def command(self, verb: str, actor: str = "api", full: bool = False,
                candidate: str | None = None, reason: str = "",
                request: str | None = None) -> dict[str, Any]:
        return self.controller.command(verb, actor, full, candidate, reason, request)

    def status(self) -> dict[str, Any]:
        if time.monotonic() - self._info_at > STORE_INFO_TTL_S:  # nodes join and leave
            self._info_at = time.monotonic()
            try:
                self.controller.store_info = store_section(self._target, self._model,
                                                           alive_nodes())
            except Exception as e:  # the GCS did not answer: keep the last one
                log.debug("reading the cluster's nodes failed: %s", e)
        return self.controller.status()

    def history(self, limit: int | None = None, all_rollouts: bool = False) -> list[dict[str, Any]]:
        return self.controller.history(limit, all_rollouts)

    def verify(self) -> dict[str, Any]:
        return self.controller.verify()

    def replay(self, rollout: int | None = None) -> dict[str, Any]:
        return self.controller.replay(rollout)

    def table(self) -> dict[str, Any] | None:
        return self.controller.table()

    def step(self) -> Decision | None:
        return self.controller.step()

    def stop(self) -> None:
        self._stop.set()
        self.metrics.stop()

    def ping(self) -> str:
        return "ok"

    def pid(self) -> int:
        """This incarnation's process id (a restart gives a new one)."""
        return os.getpid()


def placement(store_target: str | None, model: str) -> dict[str, Any]:
    """The actor's placement options: pinned to the head node (hard) when its store is a
    node-local file, so every restart opens the same one; anywhere for a server store."""
    if describe_store(store_target, model)["node_local"]:
        return {"resources": {HEAD_NODE_RESOURCE: 0.001}}
    return {}


def create_controller_actor(model: str, store_target: str | None,
                            port: Callable[[], ServePort],
                            options: Mapping[str, Any] | None = None) -> Any:
    """The controller actor of ``model``: named, detached, restarted by Ray after a crash;
    the running one if it exists. ``store_target``: a SQLite path or a PostgreSQL URL (None:
    ``$RAYROLLOUT_STORE_URL``, else the default file, resolved where the actor runs). A
    node-local store on a multi-node cluster is warned about here (and in its status).
    ``options``: more of Ray's actor options (``resources``, ``scheduling_strategy``), which
    replace the placement chosen here (a head-node pin is then the caller's to keep)."""
    import ray

    where = {**placement(store_target, model), **(options or {})}
    if where:
        warning = store_section(store_target, model, alive_nodes())["warning"]
        if warning:
            log.warning("%s", warning)
    return ray.remote(ControllerActor).options(
        name=controller_name(model),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=0,  # a verb is never silently re-run after a crash
        max_concurrency=8,
        num_cpus=0,
        **where,
    ).remote(model, store_target, port)
