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
"""

from __future__ import annotations

import math

from rayrollout.spec import RolloutSpec


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
