"""Python API: start a rollout on a Ray cluster, then watch and steer it.

::

    import ray
    import rayrollout.api as rr

    ray.init(address="auto")                   # or a local Ray
    ro = rr.start("configs/rollout-digits.yaml")   # stable + router + controller, then the rollout
    for st in ro.watch():                     # live status until the rollout ends
        print(st["phase"], st["weights"])
    ro.history()                              # the decision log with its evidence

    ro = rr.connect("digits")                 # from another process, later
    ro.pause(); ro.resume(); ro.promote(); ro.abort(); ro.undo(); ro.retry()
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray
from ray import serve

from rayrollout.config import RouterConfig, router_app_name, version_app_name
from rayrollout.controller.actor import (
    NAMESPACE,
    RolloutController,
    controller_name,
    default_store_path,
)
from rayrollout.controller.phases import TERMINAL
from rayrollout.spec import RolloutSpec, load_spec

FINAL_PHASES = frozenset(str(p) for p in TERMINAL) | {"promoted"}


def controller_handle(model: str, store_path: str | None = None, create: bool = True) -> Any:
    """The controller actor of ``model``: named, detached, restarted by Ray if it dies."""
    if not create:
        return ray.get_actor(controller_name(model), namespace=NAMESPACE)
    cls = ray.remote(RolloutController)
    return cls.options(
        name=controller_name(model),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=0,  # a verb is never silently re-run after a crash
        max_concurrency=8,
        num_cpus=0,
    ).remote(model, store_path or default_store_path(model))


def ensure_serving(spec: RolloutSpec, route_prefix: str = "/") -> None:
    """Deploy the stable version and the router if they are not running yet."""
    from rayrollout.serving.app import build_router, build_version

    apps = serve.status().applications
    stable_app = version_app_name(spec.model, spec.stable.name)
    if stable_app not in apps:
        cfg = spec.stable.for_model(spec.model)
        cfg = cfg.model_copy(update={"artifact": str(cfg.artifact_path())})
        serve.run(build_version(cfg), name=stable_app, route_prefix=None)
    if router_app_name(spec.model) not in apps:
        rcfg = RouterConfig.model_validate(spec.router_config({spec.stable.name: 100.0}, None, 1))
        serve.run(build_router(rcfg), name=rcfg.app_name, route_prefix=route_prefix)


def start(
    spec: RolloutSpec | dict[str, Any] | str | Path,
    store_path: str | None = None,
    route_prefix: str = "/",
) -> Rollout:
    """Validate ``spec``, make sure stable and router serve, and start the rollout."""
    s = load_spec(spec)
    ensure_serving(s, route_prefix)
    handle = controller_handle(s.model, store_path or s.store_path)
    ro = Rollout(s.model, handle)
    ro._call("start", s.model_dump(mode="json"), "python-api")
    return ro


def connect(model: str) -> Rollout:
    """Attach to the running controller of ``model``."""
    return Rollout(model, controller_handle(model, create=False))


class Rollout:
    """Steer one model's rollouts. Every verb returns the status after it took effect."""

    def __init__(self, model: str, handle: Any) -> None:
        self.model = model
        self._h = handle

    def _call(self, method: str, *args: Any, **kw: Any) -> Any:
        try:
            return ray.get(getattr(self._h, method).remote(*args, **kw))
        except ray.exceptions.RayTaskError as e:
            raise e.as_instanceof_cause() from None

    def status(self) -> dict[str, Any]:
        return dict(self._call("status"))

    def history(self, limit: int | None = None, all_rollouts: bool = False) -> list[dict[str, Any]]:
        return list(self._call("history", limit, all_rollouts))

    def _verb(self, verb: str, **kw: Any) -> dict[str, Any]:
        return dict(self._call("command", verb, kw.pop("actor", "python-api"), **kw))

    def pause(self, reason: str = "") -> dict[str, Any]:
        return self._verb("pause", reason=reason)

    def resume(self) -> dict[str, Any]:
        return self._verb("resume")

    def approve(self) -> dict[str, Any]:
        return self._verb("approve")

    def promote(self, full: bool = False, candidate: str | None = None) -> dict[str, Any]:
        return self._verb("promote", full=full, candidate=candidate)

    def abort(self, reason: str = "") -> dict[str, Any]:
        return self._verb("abort", reason=reason)

    def retry(self) -> dict[str, Any]:
        return self._verb("retry")

    def undo(self) -> dict[str, Any]:
        return self._verb("undo")

    def verify(self) -> dict[str, Any]:
        return dict(self._call("verify"))

    def replay(self, rollout: int | None = None) -> dict[str, Any]:
        return dict(self._call("replay", rollout))

    def watch(self, interval_s: float = 1.0, timeout_s: float | None = None
              ) -> Iterator[dict[str, Any]]:
        """Yield the status every ``interval_s`` until the rollout is promoted, completed or
        rolled back (or ``timeout_s`` passes)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            st = self.status()
            yield st
            if st["phase"] in FINAL_PHASES or (deadline and time.monotonic() > deadline):
                return
            time.sleep(interval_s)

    def wait(self, phases: set[str] | frozenset[str] = FINAL_PHASES,
             timeout_s: float = 600.0) -> dict[str, Any]:
        """Block until the phase is one of ``phases``; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.status()
            if st["phase"] in phases:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.model}: still {st['phase']} after {timeout_s:g} s")
            time.sleep(0.2)
