"""How many replicas each version needs for a share of the traffic. Pure.

``decide`` asks ``needed(spec, state, moves)`` before it moves traffic up; the answer is the
size each version must have (and have running) first. The rules (``CapacitySpec``):

* The stable is never scaled down during a rollout: a rollback always lands on a full fleet.
* A fixed-size candidate gets ``max(min_replicas, ceil(share x full))`` replicas for a traffic
  share (shadow fraction, step weight; 1 at promotion), where ``full`` is the larger of the
  stable's and its own replica counts; ``candidate: full`` gives it ``full`` at once.
* An autoscaling candidate sizes itself on its load, except at promotion: its floor
  (``min_replicas``) is raised to the replicas the stable runs then (within its
  ``max_replicas``), and the stable's floor is held at that count during the rollback window,
  so both directions of the switch land on as many replicas as served the traffic before.

What Serve says of a version's app is read once per tick and turned into two inputs of
``decide`` here, from the same ``AppStatus``: ``running`` (the replicas a move may count on)
and ``app_health`` (the versions whose app is not plainly live: what ``decide`` judges as
"health").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from rayrollout.controller.port import DELETING, DEPLOY_FAILED, RUNNING, AppStatus
from rayrollout.spec import RolloutSpec

UNHEALTHY = "UNHEALTHY"
MISSING = "MISSING"  # the status ``app_health`` gives an app Serve does not have
MESSAGE_CHARS = 300  # of Serve's message, kept with a tick's inputs


def running(app: AppStatus | None) -> int | None:
    """The replicas of an app that can serve (None: not known, or none can: the app is
    missing, failed to deploy or is being deleted)."""
    if app is None or app.status in (DEPLOY_FAILED, DELETING) or app.replicas < 0:
        return None
    return app.replicas


def app_health(apps: Mapping[str, AppStatus], names: Mapping[str, str]
               ) -> dict[str, dict[str, Any]]:
    """The versions (``names``: version -> app name) whose app is not running with at least one
    replica, with what Serve says: ``{"status", "replicas", "message"}``; ``status`` is
    ``MISSING`` for an app Serve does not have. A version not in the answer is live.
    ``apps`` must be a successful read of Serve's applications (never an empty stand-in for a
    failed one: every app would look gone)."""
    out: dict[str, dict[str, Any]] = {}
    for version, name in sorted(names.items()):
        app = apps.get(name)
        if app is None:
            out[version] = {"status": MISSING, "replicas": 0, "message": ""}
        elif app.status != RUNNING or app.replicas == 0:
            out[version] = {"status": app.status, "replicas": app.replicas,
                            "message": app.message[:MESSAGE_CHARS]}
    return out


def floor(spec: RolloutSpec, version: str, sizes: Mapping[str, int]) -> int:
    """The fewest replicas ``version`` should run: the size the rollout asked of it, else its
    fixed count, else its autoscaling floor (Serve's default ``min_replicas`` is 1)."""
    if version in sizes:
        return sizes[version]
    v = spec.version(version)
    if v.replicas is not None:
        return v.replicas
    low = (v.autoscaling_config or {}).get("min_replicas", 1)
    return low if isinstance(low, int) else 1


def no_live_replica(spec: RolloutSpec, version: str, sizes: Mapping[str, int],
                    fact: Mapping[str, Any] | None) -> str | None:
    """Why ``version`` (a fact of ``app_health``; None: live) has no replica that can serve,
    or None if it may have one. An autoscaling version whose floor is 0 may run none."""
    if fact is None:
        return None
    status, replicas = str(fact.get("status", "")), int(fact.get("replicas", -1))
    said = f": {fact['message']}" if fact.get("message") else ""
    if status == MISSING:
        return "app gone (Serve has no application for it)"
    if status == DEPLOY_FAILED:
        return f"app deploy failed{said}"
    if status == DELETING:
        return f"app being deleted{said}"
    if status == UNHEALTHY and replicas <= 0:
        return f"app unhealthy, no replica running{said}"
    want = floor(spec, version, sizes)
    if replicas == 0 and want > 0:
        return f"replicas lost (replica or node gone): 0 of {want} running{said}"
    return None


def unlive(spec: RolloutSpec, versions: Iterable[str], sizes: Mapping[str, int],
           health: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``no_live_replica`` of each of ``versions`` that has none: version -> cause."""
    out = {}
    for v in versions:
        why = no_live_replica(spec, v, sizes, health.get(v))
        if why is not None:
            out[v] = why
    return out


def full_size(spec: RolloutSpec, version: str) -> int | None:
    """A fixed-size candidate's full size; None when either side autoscales."""
    stable, own = spec.stable.replicas, spec.version(version).replicas
    if stable is None or own is None:
        return None
    return max(stable, own)


def share_size(spec: RolloutSpec, version: str, share: float) -> int | None:
    """Replicas a fixed-size candidate runs for ``share`` (0..1) of the traffic; None for an
    autoscaling one (it sizes itself)."""
    full = full_size(spec, version)
    if full is None:
        return None
    cap = spec.strategy.capacity
    if cap.candidate == "full" or share >= 1.0:
        return full
    return min(full, max(cap.min_replicas, math.ceil(share * full - 1e-9)))


def promotion_sizes(spec: RolloutSpec, candidate: str, capacity: dict[str, int]
                    ) -> dict[str, int]:
    """The sizes a promotion of ``candidate`` needs first: the candidate at the stable's
    capacity and, for autoscaling versions, the stable's floor held where it is."""
    fixed = full_size(spec, candidate)
    if fixed is not None:
        return {candidate: fixed}
    running = capacity.get(spec.stable.name, -1)
    if running < 1:  # the stable's size is not known: nothing to match
        return {}
    auto = spec.version(candidate).autoscaling_config or {}
    top = auto.get("max_replicas")
    want = min(running, top) if isinstance(top, int) else running
    return {candidate: want, spec.stable.name: running}
