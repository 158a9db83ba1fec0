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

Controller restarts: Ray restarts the controller after a crash or the loss of its node (a few
seconds). Every call of a ``Rollout`` rides through it: a call that finds the controller
unavailable (or its store busy or unreachable: nothing was written) is tried again, backing
off, for up to ``retry_s`` (default ``RETRY_S``), and only then raises ``UnavailableError``. A
verb that the controller stored but could not carry out (``NotCarriedOut``: the routers could
not be reached) is not retried: it raises at once, and the controller carries it out later.
A verb is sent with an id of its own, and the controller answers a verb whose id it has
already applied with the status instead of applying it again, so a verb retried after its
answer was lost is applied once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rayrollout.controller.phases import FINAL
from rayrollout.controller.port import ControllerHandle, ServePort
from rayrollout.errors import NotCarriedOut, UnavailableError
from rayrollout.names import version_app_name
from rayrollout.spec import RolloutSpec, RouterConfig, load_spec

FINAL_PHASES = frozenset(str(p) for p in FINAL)
RETRY_S = 30.0  # how long a call waits out an unavailable controller (a restart) by default


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
    retry_s: float = RETRY_S,
) -> Rollout:
    """Validate ``spec``, make sure stable and router serve, and start the rollout.
    ``store_path``: the store's target (a SQLite path or a PostgreSQL URL; default: the spec's
    ``store_url`` or ``store_path``)."""
    s = load_spec(spec)
    p = port or default_port()
    ensure_serving(s, route_prefix, p)
    ro = Rollout(s.model, p.controller(s.model, store_path or s.store_target()), retry_s)
    # Starting the same spec again while it runs is a no-op, so a retry cannot start it twice.
    ro._call("start", s.model_dump(mode="json"), "python-api")
    return ro


def connect(model: str, port: ServePort | None = None, retry_s: float = RETRY_S) -> Rollout:
    """Attach to the running controller of ``model`` (``NotFound`` if there is none)."""
    return Rollout(model, controller_handle(model, create=False, port=port), retry_s)


class Rollout:
    """Steer one model's rollouts. Every verb returns the status after it took effect; a verb
    the phase does not allow raises ``IllegalTransition``.

    Each call waits out an unavailable controller (Ray restarting it) for up to ``retry_s``
    seconds, then raises ``UnavailableError``; a verb is applied once however often it is
    tried (see the module's docstring). ``sleep`` and ``monotonic`` default to ``time``'s."""

    def __init__(self, model: str, handle: ControllerHandle, retry_s: float = RETRY_S, *,
                 sleep: Callable[[float], None] | None = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        if not retry_s >= 0:
            raise ValueError(f"retry_s={retry_s!r} must be a number of seconds >= 0")
        self.model = model
        self.retry_s = retry_s
        self._h = handle
        self._sleep = sleep
        self._monotonic = monotonic

    def _now(self) -> float:
        return (self._monotonic or time.monotonic)()

    def _call(self, method: str, *args: Any, deadline: float | None = None) -> Any:
        """``method`` on the controller, tried again while it is unavailable, until
        ``retry_s`` has passed (or ``deadline``, on the monotonic clock, if sooner)."""
        end = self._now() + self.retry_s
        if deadline is not None:
            end = min(end, deadline)
        delay = 0.1
        while True:
            try:
                return self._h.call(method, *args)
            except UnavailableError as e:
                if isinstance(e, NotCarriedOut):  # applied: the controller answered
                    raise
                left = end - self._now()
                if left <= 0:
                    raise
                (self._sleep or time.sleep)(min(delay, left))
                delay = min(delay * 2, 2.0)

    def status(self) -> dict[str, Any]:
        return dict(self._call("status"))

    def history(self, limit: int | None = None, all_rollouts: bool = False) -> list[dict[str, Any]]:
        return list(self._call("history", limit, all_rollouts))

    def _verb(self, verb: str, full: bool = False, candidate: str | None = None,
              reason: str = "") -> dict[str, Any]:
        request = uuid.uuid4().hex  # the same id on every try: applied once
        return dict(self._call("command", verb, "python-api", full, candidate, reason,
                               request))

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

    def _poll(self, deadline: float | None) -> dict[str, Any]:
        """The status, waiting out a controller restart (Ray restarts it and it reloads the
        rollout from its store) for up to ``retry_s``, and never past ``deadline``; then
        ``UnavailableError``."""
        return dict(self._call("status", deadline=deadline))

    def watch(self, interval_s: float = 1.0, timeout_s: float | None = None
              ) -> Iterator[dict[str, Any]]:
        """Yield the status every ``interval_s`` until the rollout's outcome is known (promoted,
        completed or rolled back) or ``timeout_s`` passes. A controller restart is waited out
        (nothing is yielded while it is unavailable); ``UnavailableError`` if it stays
        unavailable for ``retry_s``, or still is when ``timeout_s`` has passed."""
        deadline = None if timeout_s is None else self._now() + timeout_s
        while True:
            st = self._poll(deadline)
            yield st
            if st["phase"] in FINAL_PHASES:
                return
            if deadline is not None and self._now() > deadline:
                return
            (self._sleep or time.sleep)(interval_s)

    def wait(self, phases: set[str] | frozenset[str] = FINAL_PHASES,
             timeout_s: float = 600.0) -> dict[str, Any]:
        """Block until the phase is one of ``phases``; TimeoutError otherwise. A controller
        restart is waited out; ``UnavailableError`` if the controller stays unavailable for
        ``retry_s``, or still is at the deadline."""
        deadline = self._now() + timeout_s
        while True:
            st = self._poll(deadline)
            if st["phase"] in phases:
                return st
            if self._now() > deadline:
                raise TimeoutError(f"{self.model}: still {st['phase']} after {timeout_s:g} s")
            (self._sleep or time.sleep)(0.2)
