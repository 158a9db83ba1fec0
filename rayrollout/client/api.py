"""Python API: start a rollout on a Ray cluster, then watch and steer it.

::

    import ray
    import rayrollout as rr

    ray.init(address="auto")                       # or a local Ray
    ro = rr.start("configs/rollout-digits.yaml")   # stable + router + controller, then the rollout
    for st in ro.watch():                          # live status until the outcome is known
        print(st["phase"], st["weights"])
    ro.history()                                   # the decision log with its evidence

    ro = rr.connect("digits")                      # from another process, later
    ro.pause(); ro.resume(); ro.promote(); ro.abort(); ro.undo(); ro.retry()

Every function takes an optional ``port`` (a ``ServePort``); the default is the real Ray Serve
(``rayrollout.serving.port.RayServePort``), and ``rayrollout.controller.fake.FakeServePort``
runs the same calls in memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rayrollout.controller.phases import FINAL
from rayrollout.controller.port import ControllerHandle, ServePort
from rayrollout.errors import UnavailableError
from rayrollout.names import version_app_name
from rayrollout.spec import RolloutSpec, RouterConfig, load_spec

FINAL_PHASES = frozenset(str(p) for p in FINAL)


def default_port() -> ServePort:
    """The port to the Ray cluster this process is connected to (imports Ray)."""
    from rayrollout.serving.port import RayServePort

    return RayServePort()


def controller_handle(
    model: str, store_path: str | None = None, create: bool = True, port: ServePort | None = None
) -> ControllerHandle:
    """The controller of ``model``: named, detached, restarted by Ray if it dies; created if
    ``create`` and it is not running (``NotFound`` otherwise)."""
    return (port or default_port()).controller(model, store_path, create)


def ensure_serving(spec: RolloutSpec, route_prefix: str = "/",
                   port: ServePort | None = None) -> None:
    """Deploy the stable version and the router if they are not running yet."""
    p = port or default_port()
    apps = p.applications()
    if version_app_name(spec.model, spec.stable.name) not in apps:
        p.deploy_version(spec.stable.for_model(spec.model).resolved())
    # The port serves the model on the ingress unless it is served already (idempotent).
    rcfg = RouterConfig.model_validate(spec.router_config({spec.stable.name: 100.0}, None, 1))
    p.deploy_router(rcfg, route_prefix)


def start(
    spec: RolloutSpec | dict[str, Any] | str | Path,
    store_path: str | None = None,
    route_prefix: str = "/",
    port: ServePort | None = None,
) -> Rollout:
    """Validate ``spec``, make sure stable and router serve, and start the rollout."""
    s = load_spec(spec)
    p = port or default_port()
    ensure_serving(s, route_prefix, p)
    ro = Rollout(s.model, p.controller(s.model, store_path or s.store_path))
    ro._h.call("start", s.model_dump(mode="json"), "python-api")
    return ro


def connect(model: str, port: ServePort | None = None) -> Rollout:
    """Attach to the running controller of ``model`` (``NotFound`` if there is none)."""
    return Rollout(model, controller_handle(model, create=False, port=port))


class Rollout:
    """Steer one model's rollouts. Every verb returns the status after it took effect; a verb
    the phase does not allow raises ``IllegalTransition``."""

    def __init__(self, model: str, handle: ControllerHandle) -> None:
        self.model = model
        self._h = handle

    def status(self) -> dict[str, Any]:
        return dict(self._h.call("status"))

    def history(self, limit: int | None = None, all_rollouts: bool = False) -> list[dict[str, Any]]:
        return list(self._h.call("history", limit, all_rollouts))

    def _verb(self, verb: str, full: bool = False, candidate: str | None = None,
              reason: str = "") -> dict[str, Any]:
        return dict(self._h.call("command", verb, "python-api", full, candidate, reason))

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
        return dict(self._h.call("verify"))

    def replay(self, rollout: int | None = None) -> dict[str, Any]:
        return dict(self._h.call("replay", rollout))

    def _poll(self, deadline: float | None) -> dict[str, Any] | None:
        """The status, or None while the controller is unavailable (Ray is restarting it: it
        reloads the rollout from its store and answers again). Past ``deadline`` an
        unavailable controller is an error."""
        try:
            return self.status()
        except UnavailableError:
            if deadline is not None and time.monotonic() > deadline:
                raise
            return None

    def watch(self, interval_s: float = 1.0, timeout_s: float | None = None
              ) -> Iterator[dict[str, Any]]:
        """Yield the status every ``interval_s`` until the rollout's outcome is known (promoted,
        completed or rolled back) or ``timeout_s`` passes. A controller restart is waited out
        (nothing is yielded while it is unavailable); ``UnavailableError`` only if it is still
        unavailable when ``timeout_s`` has passed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            st = self._poll(deadline)
            if st is not None:
                yield st
                if st["phase"] in FINAL_PHASES:
                    return
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(interval_s)

    def wait(self, phases: set[str] | frozenset[str] = FINAL_PHASES,
             timeout_s: float = 600.0) -> dict[str, Any]:
        """Block until the phase is one of ``phases``; TimeoutError otherwise. A controller
        restart is waited out; ``UnavailableError`` only if the controller is still
        unavailable at the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            st = self._poll(deadline)
            if st is not None and st["phase"] in phases:
                return st
            if time.monotonic() > deadline:
                phase = st["phase"] if st is not None else "unknown"
                raise TimeoutError(f"{self.model}: still {phase} after {timeout_s:g} s")
            time.sleep(0.2)
