"""``ControllerActor``: the named, detached, restartable Ray actor around ``RolloutController``.

A thin wrapper: it builds the controller over ``port()`` (``RayServePort``, passed in by the
port that creates the actor) and the store at ``store_path``, runs ``run_loop`` on a thread,
and forwards the verbs. Everything it does is the plain controller's
(``rayrollout.controller.controller``), which the unit tests drive with the in-memory port.
Ray restarts the actor after a crash; ``__init__`` then reloads the rollout from the store and
resumes it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from rayrollout.controller.controller import RolloutController, run_loop
from rayrollout.controller.port import ServePort
from rayrollout.controller.state import Decision
from rayrollout.controller.store import Store
from rayrollout.names import NAMESPACE, controller_name, default_store_path


class ControllerActor:
    def __init__(self, model: str, store_path: str | None, port: Callable[[], ServePort]
                 ) -> None:
        store = Store(store_path or default_store_path(model))
        self.controller = RolloutController(model, store, port())
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run_loop, args=(self.controller, self._stop), name="rollout-loop", daemon=True
        )
        self._thread.start()

    def start(self, spec: dict[str, Any], actor: str = "api",
              declarative: bool = False) -> dict[str, Any]:
        return self.controller.start(spec, actor, declarative)

    def command(self, verb: str, actor: str = "api", full: bool = False,
                candidate: str | None = None, reason: str = "") -> dict[str, Any]:
        return self.controller.command(verb, actor, full, candidate, reason)

    def status(self) -> dict[str, Any]:
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

    def ping(self) -> str:
        return "ok"

    def pid(self) -> int:
        """This incarnation's process id (a restart gives a new one)."""
        return os.getpid()


def create_controller_actor(model: str, store_path: str | None,
                            port: Callable[[], ServePort]) -> Any:
    """The controller actor of ``model``: named, detached, restarted by Ray after a crash;
    the running one if it exists. ``store_path`` None: the default store, resolved where the
    actor runs."""
    import ray

    return ray.remote(ControllerActor).options(
        name=controller_name(model),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=0,  # a verb is never silently re-run after a crash
        max_concurrency=8,
        num_cpus=0,
    ).remote(model, store_path, port)
