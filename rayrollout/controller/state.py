"""The rollout's state, its inputs per tick and the actions ``decide`` returns. Plain values.

Everything here is JSON-able (``to_dict``/``from_dict``) so the store can persist it and a
replay can feed it back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rayrollout.analysis.result import CheckResult
from rayrollout.controller.phases import Phase


@dataclass(frozen=True)
class Candidate:
    name: str
    status: str = "active"  # active | failed | promoted | withdrawn
    reason: str = ""


@dataclass(frozen=True)
class RolloutState:
    """Where a rollout is. ``weights`` (percent) and ``shadow`` are the table of ``epoch``."""

    model: str
    stable: str
    candidates: tuple[Candidate, ...]
    phase: Phase = Phase.PENDING
    step: int = -1
    epoch: int = 0
    weights: dict[str, float] = field(default_factory=dict)
    shadow: str | None = None
    shadow_fraction: float = 0.0
    phase_since: float = 0.0
    step_requests: int = 0  # candidate requests (least-exposed candidate) in this step
    shadow_compared: int = 0
    previous_stable: str | None = None
    retire_at: float | None = None
    paused_from: Phase | None = None
    attempt: int = 1
    seq: int = 0  # number of decisions taken
    # Replicas asked of versions the rollout sized (``scale`` actions); a version not here runs
    # at the size its spec gives it.
    sizes: dict[str, int] = field(default_factory=dict)
    # A move that passed and waits for the replicas it needs, or None:
    # {"move": "step" | "promote", "to": step index or candidate, "why": its reason}.
    pending: dict[str, Any] | None = None
    # Versions reported as having no live replica (version -> cause), so a lasting loss is
    # logged once and its recovery once (``decide._health``).
    down: dict[str, str] = field(default_factory=dict)
    # The phase's counters when ``phase_since`` was set ({"step_requests", "shadow_compared"}):
    # the current rates are the counts since over the time since (``explain.rates``).
    phase_counts: dict[str, int] = field(default_factory=dict)
    # With ``strategy.progress_deadline_s``: since when something other than time holds the
    # shadow phase or the canary step (a check not PASS, requests or comparisons short); set
    # when the phase is entered or resumed, None while nothing holds it.
    holding_since: float | None = None

    def active(self) -> list[str]:
        return [c.name for c in self.candidates if c.status == "active"]

    def evolve(self, **kw: Any) -> RolloutState:
        return replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["phase"] = str(self.phase)
        d["paused_from"] = str(self.paused_from) if self.paused_from else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RolloutState:
        d = dict(d)
        d.setdefault("sizes", {})
        d.setdefault("pending", None)
        d.setdefault("down", {})
        d.setdefault("phase_counts", {})
        d.setdefault("holding_since", None)
        d["phase"] = Phase(d["phase"])
        d["paused_from"] = Phase(d["paused_from"]) if d.get("paused_from") else None
        d["candidates"] = tuple(Candidate(**c) for c in d["candidates"])
        return cls(**d)


@dataclass(frozen=True)
class Command:
    """A person's verb: pause, resume, approve, promote, abort, retry, undo."""

    verb: str
    actor: str = "system"  # which admin token (by name) or API caller acted
    full: bool = False  # promote: to 100% now rather than to the next step
    candidate: str | None = None  # promote: which candidate (A/B/n)
    reason: str = ""
    # The caller's id for this verb call: a retried call with an id the controller already
    # applied is answered with the status, never applied twice. Recorded with the decision.
    request: str = ""


@dataclass(frozen=True)
class Observation:
    """What the shell saw this tick. ``results`` holds each active candidate's check results."""

    now: float
    results: dict[str, list[CheckResult]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)  # new requests per version
    shadow_compared: int = 0  # new shadow comparisons
    ready: frozenset[str] = frozenset()  # version apps that are deployed and serving
    failed_deploys: dict[str, str] = field(default_factory=dict)
    command: Command | None = None
    capacity: dict[str, int] = field(default_factory=dict)  # running replicas per version
    # Versions of the rollout whose app is not plainly live, with what Serve says of it
    # (``capacity.app_health``): {"status": RUNNING | UNHEALTHY | ... | MISSING, "replicas",
    # "message"}; a version not in it runs with at least one replica. None: Serve's apps were
    # not read this tick (a verb, or Serve did not answer): nothing is known of their health.
    health: dict[str, dict[str, Any]] | None = None
    # The newest epoch a router replica holds, when it is newer than the state's (a store
    # that lost commits, or an old copy of it): ``decide`` moves above it.
    router_epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "results": {k: [r.to_dict() for r in v] for k, v in self.results.items()},
            "requests": dict(self.requests),
            "shadow_compared": self.shadow_compared,
            "ready": sorted(self.ready),
            "failed_deploys": dict(self.failed_deploys),
            "command": asdict(self.command) if self.command else None,
            "capacity": dict(self.capacity),
            "health": None if self.health is None else {
                v: dict(h) for v, h in self.health.items()},
            "router_epoch": self.router_epoch,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Observation:
        return cls(
            now=d["now"],
            results={k: [CheckResult.from_dict(r) for r in v] for k, v in d["results"].items()},
            requests=dict(d["requests"]),
            shadow_compared=d["shadow_compared"],
            ready=frozenset(d["ready"]),
            failed_deploys=dict(d.get("failed_deploys", {})),
            command=Command(**d["command"]) if d.get("command") else None,
            capacity=dict(d.get("capacity", {})),
            health=None if d.get("health") is None else {
                v: dict(h) for v, h in d["health"].items()},
            router_epoch=d.get("router_epoch"),
        )


@dataclass(frozen=True)
class Action:
    """Something the shell must do. ``kind``: deploy, delete, routes, notify, scale.

    ``replicas`` sizes a ``deploy`` or ``scale`` of ``version`` (a fixed count, or the floor of
    an autoscaling version); None: the size its spec gives it."""

    kind: str
    version: str | None = None
    replicas: int | None = None
    epoch: int | None = None
    weights: dict[str, float] | None = None
    shadow: str | None = None
    shadow_fraction: float = 0.0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "", 0.0) or k == "kind"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Action:
        return cls(**d)


@dataclass(frozen=True)
class Decision:
    """One entry of the decision log: what changed, why, with the evidence."""

    seq: int
    now: float
    phase_from: str
    phase_to: str
    step: int
    epoch: int
    actions: list[Action]
    reason: str
    evidence: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    actor: str = "controller"
    request: str = ""  # the id of the verb call that made it (``Command.request``), if any
    # A decision of its own kind, named where its phases do not say it: "deadline" (paused by
    # the progress deadline); "" for the others (``decision_kind`` names those).
    kind: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["actions"] = [a.to_dict() for a in self.actions]
        for key in ("request", "kind"):  # entries without one stay as they were (and hash
            if not d[key]:               # the same)
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Decision:
        d = dict(d)
        d["actions"] = [Action.from_dict(a) for a in d["actions"]]
        return cls(**d)


def decision_kind(d: Decision | dict[str, Any]) -> str:
    """A log entry's kind, a small fixed set for counting: its own ``kind`` when it has one
    (``deadline``: paused by the progress deadline), else the phase it went to (``canary``,
    ``paused``, ``promoted``, ``rolled_back``, ...)."""
    e = d.to_dict() if isinstance(d, Decision) else d
    return str(e.get("kind") or e.get("phase_to") or "unknown")
