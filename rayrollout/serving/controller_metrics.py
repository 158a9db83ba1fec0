"""Export the controller's own state as Prometheus metrics through Ray's metrics agent.

The controller actor (``rayrollout.serving.actor``) runs one ``ControllerMetrics`` per model.
It reads what ``RolloutController.status()`` says (phase, step, weights, epoch, each check's
last result) and the decision log's new entries, and turns them into the ``CONTROLLER``
metrics of ``rayrollout.dataplane.metrics``; ``MeteredController`` times every tick and
``TimedStore`` every store call. These series come from the one controller of a model, so they
are the authoritative per-model values (the routers' weight and epoch gauges are one series
per ingress replica).

Guarantees:

* Every gauge is set again at least every ``refresh_interval_s()`` (and right after each
  tick), so Ray's agent, which drops a gauge series not set within two report intervals, never
  drops a live one.
* ``rayrollout_controller_phase`` has one series per phase (and ``none``): 1 for the current
  phase, 0 for every other, so a phase left reads 0 at once.
* A version of the current rollout (stable, previous stable, candidates, shadow) that has no
  weight reads 0; a version that is no longer part of it is set to 0 one last time and then
  left to age out. ``rayrollout_controller_role`` is 1 for each such version's role (stable
  first, then previous_stable, else candidate) and 0 for its other roles, under the same rule.
* Evidence, thresholds and verdicts mirror the status's ``checks`` (the last results judged):
  evidence and threshold in ``log10`` of the e-value (``E = 10^x``, as the status shows), only
  for checks that have them and only while finite; verdicts 0 PASS, 1 INCONCLUSIVE, 2 ERROR,
  3 FAIL.
* ``rayrollout_decisions_total`` counts each decision logged after this exporter started
  once, by ``decision_kind`` (a restarted actor counts from where it resumed: Prometheus reads
  the counter's reset as one).
* A fenced controller (a newer one holds the store's lease) exports no gauge: its series age
  out and the newer controller's are the only ones.
* Exporting never breaks the controller: a failed flush is logged and the next one runs.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rayrollout.analysis.result import Verdict
from rayrollout.controller.controller import RolloutController
from rayrollout.controller.phases import Phase
from rayrollout.controller.state import Decision
from rayrollout.controller.store import RolloutRow, RolloutStore
from rayrollout.dataplane import metrics as spec
from rayrollout.serving.exporter import _make, refresh_interval_s

log = logging.getLogger("rayrollout.controller_metrics")

PHASES: tuple[str, ...] = ("none", *(str(p) for p in Phase))
ROLES: tuple[str, ...] = ("stable", "candidate", "previous_stable")
MAX_NEW_DECISIONS = 1000  # log entries read per flush at most (a burst beyond is not counted)
_KIND = re.compile(r"^[a-z][a-z_]{0,31}$")


def decision_kind(entry: Mapping[str, Any], prev_step: int | None) -> str:
    """A log entry's kind, low-cardinality: the entry's own ``kind`` when it names one (such as
    ``deadline``); else the phase it entered when it changed phase (``rolled_back``,
    ``promoted``, ``paused``, ...); ``step`` when it moved to another step of the same phase
    (``prev_step``: the step before it, None if unknown); ``update`` otherwise (a candidate
    withdrawn among several, a reconciliation, a health notice, a capacity wait)."""
    kind = entry.get("kind")
    if isinstance(kind, str) and _KIND.match(kind):
        return kind
    src, dst = entry.get("phase_from"), entry.get("phase_to")
    if isinstance(dst, str) and dst != src and dst in PHASES:
        return dst
    if prev_step is not None and entry.get("step") != prev_step:
        return "step"
    return "update"


def _number(x: Any) -> float | None:
    """A finite float from a status value (None, "inf" and NaN are not)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


class ControllerMetrics:
    """The ``CONTROLLER`` metrics of one model. ``status``: the controller's status (a dict as
    ``RolloutController.status()`` returns); ``history(n)``: the newest ``n`` log entries of
    the current rollout, oldest first; ``make``: a metric object for a spec (Ray's by
    default). ``flush()`` exports once; ``start()`` runs flushes on a thread."""

    def __init__(
        self,
        model: str,
        status: Callable[[], Mapping[str, Any]],
        history: Callable[[int], Sequence[Mapping[str, Any]]],
        interval_s: float | None = None,
        make: Callable[[spec.MetricSpec], Any] = _make,
    ) -> None:
        self.model = model
        self.status = status
        self.history = history
        self.interval_s = refresh_interval_s() if interval_s is None else interval_s
        self._m = {m.name: make(m) for m in spec.CONTROLLER}
        self._weighted: set[str] = set()  # versions whose weight gauge was set last flush
        self._seen: tuple[Any, int, int] | None = None  # (rollout, decisions, step) counted
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the controller reports -------------------------------------------------------

    def tick(self, seconds: float) -> None:
        """A tick took ``seconds``; the gauges follow it at once (on the export thread)."""
        self._m[spec.TICK_SECONDS.name].observe(seconds, {"model": self.model})
        self._wake.set()

    def store_call(self, op: str, seconds: float) -> None:
        """A store call ``op`` (the ``RolloutStore`` method) took ``seconds``."""
        self._m[spec.STORE_SECONDS.name].observe(seconds, {"model": self.model, "op": op})

    # -- the export thread -----------------------------------------------------------------

    def start(self) -> None:
        """Flush every ``interval_s``, and after each tick, on a daemon thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="rollout-metrics",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.safe_flush()
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def safe_flush(self) -> None:
        try:
            self.flush()
        except Exception:  # never let metrics break the controller
            log.exception("controller metrics export of %s failed", self.model)

    # -- one export ------------------------------------------------------------------------

    def flush(self) -> None:
        with self._lock:
            st = self.status()
            if st.get("fenced"):
                return  # a newer controller exports this model now
            self._export_phase(st)
            self._export_table(st)
            self._export_checks(st)
            self._export_decisions(st)

    def _export_phase(self, st: Mapping[str, Any]) -> None:
        model, gauge = self.model, self._m[spec.CONTROLLER_PHASE.name]
        phase = str(st.get("phase") or "none")
        for p in PHASES:
            gauge.set(1.0 if p == phase else 0.0, {"model": model, "phase": p})
        step = _number(st.get("step"))
        if step is not None:
            self._m[spec.CONTROLLER_STEP.name].set(step, {"model": model})
        epoch = _number(st.get("epoch"))
        if epoch is not None:
            self._m[spec.CONTROLLER_EPOCH.name].set(epoch, {"model": model})

    def _export_table(self, st: Mapping[str, Any]) -> None:
        model, gauge = self.model, self._m[spec.CONTROLLER_WEIGHT.name]
        weights = {str(v): float(w) for v, w in (st.get("weights") or {}).items()}
        versions = set(weights)
        versions.update(str(v) for v in (st.get("stable"), st.get("previous_stable"),
                                         st.get("shadow")) if v)
        versions.update(str(c["name"]) for c in st.get("candidates") or () if c.get("name"))
        roles = {v: "candidate" for v in versions}
        if st.get("previous_stable"):
            roles[str(st["previous_stable"])] = "previous_stable"
        if st.get("stable"):
            roles[str(st["stable"])] = "stable"
        role_gauge = self._m[spec.CONTROLLER_ROLE.name]
        for v in sorted(self._weighted - versions):  # no longer part of the rollout: 0, once
            gauge.set(0.0, {"model": model, "version": v})
            for r in ROLES:
                role_gauge.set(0.0, {"model": model, "version": v, "role": r})
        for v in sorted(versions):
            gauge.set(weights.get(v, 0.0), {"model": model, "version": v})
            for r in ROLES:
                role_gauge.set(1.0 if roles[v] == r else 0.0,
                               {"model": model, "version": v, "role": r})
        self._weighted = versions

    def _export_checks(self, st: Mapping[str, Any]) -> None:
        model = self.model
        evidence = self._m[spec.CHECK_EVIDENCE.name]
        threshold = self._m[spec.CHECK_THRESHOLD.name]
        verdict = self._m[spec.CHECK_VERDICT.name]
        for version, results in (st.get("checks") or {}).items():
            for r in results:
                check = str(r.get("check", ""))
                tags = {"model": model, "version": str(version), "check": check}
                name = r.get("verdict")
                if isinstance(name, str) and name in Verdict.__members__:
                    verdict.set(float(Verdict[name]), tags)
                e = _number(r.get("log10_e"))
                if e is not None:
                    evidence.set(e, tags)
                th = _number(r.get("log10_threshold"))
                if th is not None:
                    threshold.set(th, {"model": model, "check": check})

    def _export_decisions(self, st: Mapping[str, Any]) -> None:
        rollout, seq = st.get("rollout"), int(st.get("decisions") or 0)
        step = st.get("step")
        seen, self._seen = self._seen, (rollout, seq, step if isinstance(step, int) else -1)
        if seen is None:
            return  # the baseline: count what is decided from now on
        since, prev_step = (seen[1], seen[2]) if rollout == seen[0] else (0, -1)
        if seq <= since:
            return
        kinds: Counter[str] = Counter()
        for e in self.history(min(seq - since, MAX_NEW_DECISIONS)):
            n = e.get("seq")
            if e.get("rollout", rollout) != rollout or not isinstance(n, int) or n <= since:
                continue  # another rollout's, or counted already
            kinds[decision_kind(e, prev_step)] += 1
            s = e.get("step")
            prev_step = s if isinstance(s, int) else prev_step
        counter = self._m[spec.DECISIONS.name]
        for kind, n in sorted(kinds.items()):
            counter.inc(n, {"model": self.model, "kind": kind})


class MeteredController(RolloutController):
    """``RolloutController`` whose every tick (``step()``) is reported to ``on_tick`` with its
    duration in seconds, whatever it did or raised."""

    on_tick: Callable[[float], None] | None = None

    def step(self) -> Decision | None:
        t0 = time.perf_counter()
        try:
            return super().step()
        finally:
            if self.on_tick is not None:
                self.on_tick(time.perf_counter() - t0)


class TimedStore:
    """A ``RolloutStore`` that reports the duration of each call to ``observe(op, seconds)``
    (failed calls too) and otherwise is the store it wraps."""

    def __init__(self, store: RolloutStore, observe: Callable[[str, float], None]) -> None:
        self._store = store
        self._observe = observe

    def _timed(self, op: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            self._observe(op, time.perf_counter() - t0)

    @property
    def where(self) -> str:
        return self._store.where

    def close(self) -> None:
        self._timed("close", self._store.close)

    def acquire(self, model: str, owner: str) -> int:
        return int(self._timed("acquire", self._store.acquire, model, owner))

    def holds(self, model: str, token: int) -> bool:
        return bool(self._timed("holds", self._store.holds, model, token))

    def create(self, model: str, digest: str, spec: dict[str, Any], state: dict[str, Any],
               token: int | None = None) -> int:
        return int(self._timed("create", self._store.create, model, digest, spec, state,
                               token=token))

    def latest(self, model: str) -> RolloutRow | None:
        row: RolloutRow | None = self._timed("latest", self._store.latest, model)
        return row

    def get(self, rollout: int) -> RolloutRow | None:
        row: RolloutRow | None = self._timed("get", self._store.get, rollout)
        return row

    def rollouts(self, model: str) -> list[int]:
        return list(self._timed("rollouts", self._store.rollouts, model))

    def commit(self, rollout: int, state: dict[str, Any], judges: dict[str, Any], now: float,
               inputs: dict[str, Any] | None = None, decision: dict[str, Any] | None = None,
               token: int | None = None) -> None:
        self._timed("commit", self._store.commit, rollout, state, judges, now, inputs=inputs,
                    decision=decision, token=token)

    def mark_applied(self, rollout: int, seq: int, token: int | None = None) -> None:
        self._timed("mark_applied", self._store.mark_applied, rollout, seq, token=token)

    def history(self, rollout: int | None = None, limit: int | None = None,
                before: int | None = None) -> list[dict[str, Any]]:
        return list(self._timed("history", self._store.history, rollout, limit, before))

    def head(self) -> tuple[str, int]:
        h, n = self._timed("head", self._store.head)
        return str(h), int(n)

    def verify(self) -> tuple[bool, str]:
        ok, msg = self._timed("verify", self._store.verify)
        return bool(ok), str(msg)

    def ticks(self, rollout: int) -> list[dict[str, Any]]:
        return list(self._timed("ticks", self._store.ticks, rollout))

    def __getattr__(self, name: str) -> Any:
        """Anything else of the store (a method a newer store has), untimed."""
        if name == "_store":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self._store, name)
