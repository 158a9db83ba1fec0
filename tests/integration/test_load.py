"""Whole rollouts under load on a real local Ray: concurrent closed-loop clients through a whole
rollout, one rollout to promotion and one to rollback.

Short form here (16 clients, >= 10 s of judged canary before the rollback, three 5 s steps to
the promotion); the long form is the same tests with ``RAYROLLOUT_LONG_FORM=1`` (32 clients,
>= 60 s of rollout each), which ``python -m benchmarks.endurance`` runs and reports. The
assertions are the same in both forms: none of them depends on the number of clients or on
how long the rollout ran.

Every request is accounted for three times: the clients count what they sent and what came back
(status, ``x-model-version``, ``x-routing-epoch``), and the store counts what the controller
collected from the routers. The right counter is ``VersionStats.requests``: every request a
router replica handled, whatever its outcome (OK, ERROR, TIMEOUT, REJECTED), under the version
it chose (``""`` when it refused the request before choosing). ``collect()`` hands the
controller the delta since the previous collect and drains the events; the controller persists,
with each tick, the requests per version that reached a version (``requests``, what ``decide``
counts), those rejected as bad input (``rejected``) and the events lost off a full buffer
(``dropped_events``). So sent = received = sum(requests) + sum(rejected) over the rollout's
ticks, and sum(requests) = the events the controller saw: nothing lost between the routers'
buffers and the store.

``Traffic`` and ``Ledger`` are shared with ``test_chaos.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import ray

import rayrollout.client.api as rr
from rayrollout.controller.store import Store
from rayrollout.errors import IllegalTransition, NotFound, UnavailableError
from rayrollout.serving.port import RayServePort
from tests.conftest import ARTIFACTS, RayServe

pytestmark = pytest.mark.integration

NO_VERSION = "-"  # a response without x-model-version: it never got past the HTTP proxy

# The long forms of this module's and test_chaos.py's tests (more clients, longer rollouts, more
# faults): ``python -m benchmarks.endurance`` sets this.
LONG_FORM = os.environ.get("RAYROLLOUT_LONG_FORM") == "1"
LOAD_CLIENTS = 32 if LONG_FORM else 16
ROLLBACK_WARMUP_S = 60 if LONG_FORM else 10  # the errors check's warm-up: the rollout lasts it
PROMOTION_STEP_S = 20 if LONG_FORM else 5  # each of the promotion's three steps


@dataclass(frozen=True)
class Reply:
    """One request as its client saw it: ``kind`` ok (a valid row), poison (a valid row the
    faulty model refuses) or bad (invalid input, must be a 4xx); ``status`` -1 when no HTTP
    response came back."""

    t0: float
    t1: float
    kind: str
    status: int
    version: str
    epoch: int


class Traffic:
    """``clients`` closed-loop clients (async httpx on one event loop, in a thread) posting
    held-out rows to a model's router. Every ``bad_every``-th request of a client is invalid
    input, every ``poison_every``-th valid one has a negative pixel (0: never)."""

    def __init__(self, base: str, model: str, X: np.ndarray, clients: int,
                 bad_every: int = 40, poison_every: int = 0) -> None:
        self.base, self.model, self.X = base, model, X
        self.clients, self.bad_every, self.poison_every = clients, bad_every, poison_every
        self.sent = 0
        self.replies: list[Reply] = []
        self.started = self.stopped = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Traffic:
        self.started = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "a client is still waiting for an answer"
        self.stopped = time.time()

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.clients)
        async with httpx.AsyncClient(base_url=self.base, timeout=60, limits=limits) as c:
            await asyncio.gather(*(self._client(c, k) for k in range(self.clients)))

    def _body(self, k: int, i: int) -> tuple[str, dict[str, Any]]:
        if self.bad_every and i % self.bad_every == self.bad_every - 1:
            return "bad", {"instances": [[0.5] * (self.X.shape[1] - 1)]}  # one feature short
        row = self.X[(k * 131 + i) % len(self.X)].copy()
        if self.poison_every and i % self.poison_every == 0:
            row[0] = -1.0
            return "poison", {"instances": [row.tolist()]}
        return "ok", {"instances": [row.tolist()]}

    async def _client(self, c: httpx.AsyncClient, k: int) -> None:
        url, i = f"/v1/models/{self.model}/predict", 0
        while not self._stop.is_set():
            kind, body = self._body(k, i)
            i += 1
            t0 = time.time()
            self.sent += 1
            try:
                r = await c.post(url, json=body)
                status, h = r.status_code, r.headers
                version = h.get("x-model-version", NO_VERSION)
                epoch = int(h.get("x-routing-epoch", "-1"))
            except httpx.HTTPError:
                status, version, epoch = -1, NO_VERSION, -1
            self.replies.append(Reply(t0, time.time(), kind, status, version, epoch))

    # -- what the clients saw -------------------------------------------------------------------

    def received(self) -> int:
        return sum(1 for r in self.replies if r.status >= 0)

    def served(self) -> Counter[str]:
        return Counter(r.version for r in self.replies if r.status == 200)

    def failed(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        """Requests that should have succeeded and did not, by version: a valid row without a
        200, a bad one without a 4xx, anything without an answer (sent in [since, until))."""
        return Counter(r.version for r in self.replies
                       if since <= r.t0 < until and not _as_expected(r))

    def poison_failed(self) -> Counter[str]:
        return Counter(r.version for r in self.replies if r.kind == "poison" and r.status >= 500)

    def rps(self) -> float:
        return len(self.replies) / max(self.stopped - self.started, 1e-9)


def _as_expected(r: Reply) -> bool:
    if r.kind == "bad":
        return 400 <= r.status < 500
    return r.status == 200


@dataclass
class Ledger:
    """What the controller collected from the routers and persisted with a rollout's ticks."""

    requests: int = 0  # reached a version (OK, ERROR or TIMEOUT)
    rejected: int = 0
    events: int = 0
    dropped_events: int = 0
    by_version: Counter[str] | None = None

    @property
    def recorded(self) -> int:
        return self.requests + self.rejected

    @classmethod
    def read(cls, store_path: Path, rollout: int) -> Ledger:
        store = Store(store_path)
        try:
            ticks = store.ticks(rollout)
        finally:
            store.close()
        by: Counter[str] = Counter()
        out = cls(by_version=by)
        for t in ticks:
            for v, n in t["requests"].items():
                by[v] += n
            for v, n in t.get("rejected", {}).items():
                by[v] += n
            out.requests += sum(t["requests"].values())
            out.rejected += sum(t.get("rejected", {}).values())
            out.events += len(t["events"])
            out.dropped_events += t.get("dropped_events", 0)
        return out

    @classmethod
    def settle(cls, store_path: Path, rollout: int, sent: int, timeout_s: float = 20.0
               ) -> Ledger:
        """Read until the controller has collected ``sent`` requests (or ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            led = cls.read(store_path, rollout)
            if led.recorded >= sent or time.monotonic() > deadline:
                return led
            time.sleep(0.5)


def version(name: str, artifact: str) -> dict[str, Any]:
    runtime = "torchscript" if artifact.endswith(".pt") else "onnx"
    return {"name": name, "runtime": runtime, "artifact": str(ARTIFACTS / artifact)}


def rollout_spec(model: str, store: Path, stable: tuple[str, str], cand: tuple[str, str],
                 steps: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": model,
        "stable": version(*stable),
        "candidates": [version(*cand)],
        "strategy": {"steps": steps},
        "analysis": {"tick_s": 0.5,
                     "checks": [{"kind": "errors", "params": {"min_candidate_requests": 30}}]},
        "rollback_window_s": 600,
        "store_path": str(store),
    }
    doc.update(over)
    return doc


@dataclass
class Model:
    """A model name served on the session's Ray, its store, and the controller's handle."""

    name: str
    store: Path
    base: str

    def start(self, spec: dict[str, Any]) -> rr.Rollout:
        return rr.start(spec, route_prefix=f"/{self.name}")

    def controller(self) -> Any:
        return RayServePort().controller(self.name, create=False).actor


def make_model(ray_serve: RayServe, folder: Path) -> Model:
    name = f"l{uuid.uuid4().hex[:8]}"
    return Model(name, folder / "rollouts.db", f"{ray_serve.url}/{name}")


def remove_model(m: Model) -> None:
    from ray import serve

    try:
        h = m.controller()
        ray.get(h.stop.remote(), timeout=30)
        ray.kill(h, no_restart=True)
    except (NotFound, ray.exceptions.RayError):
        pass
    with contextlib.suppress(UnavailableError, ray.exceptions.RayError):
        RayServePort().remove_router(m.name)  # the ingress is shared: only this model leaves it
    for app in serve.status().applications:
        if app.startswith(f"{m.name}-"):
            serve.delete(app, _blocking=False)


def abort_if_active(m: Model) -> None:
    """After a test: a rollout it left running must not block the next one on this model."""
    with contextlib.suppress(NotFound, IllegalTransition):
        rr.connect(m.name).abort(reason="test teardown")


@pytest.fixture(scope="module")
def shared(ray_serve: RayServe, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    """One model for the module: its stable v1 and router are deployed once; each test starts
    its own rollout of it (a rollback leaves v1 stable for the next)."""
    m = make_model(ray_serve, tmp_path_factory.mktemp("load"))
    yield m
    remove_model(m)


@pytest.fixture
def model(shared: Model) -> Iterator[Model]:
    yield shared
    abort_if_active(shared)


def transitions(log: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(e["phase_from"], e["phase_to"], e["step"]) for e in log]


# Every rollout here starts so: deployed, then the first canary step.
START = [("pending", "deploying", -1), ("deploying", "canary", 0)]


def check_log(ro: rr.Rollout, after_start: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """The rollout's log is whole: the chain verifies, entries follow each other (each starts
    where the previous ended, sequence numbers without gaps), the transitions are exactly
    ``START`` then ``after_start`` (none missing, none twice), epochs never go back, and
    replay agrees."""
    log = ro.history()
    assert ro.verify()["ok"], ro.verify()
    assert transitions(log) == START + after_start, transitions(log)
    seqs = [e["seq"] for e in log]
    assert seqs == list(range(seqs[0], seqs[0] + len(log))), seqs
    assert all(a["phase_to"] == b["phase_from"] for a, b in itertools.pairwise(log))
    epochs = [e["epoch"] for e in log]
    assert epochs == sorted(epochs), epochs
    assert ro.replay()["identical"]
    return log


def report(record_property: Callable[[str, object], None], tmp_path: Path, name: str,
           figures: dict[str, Any]) -> None:
    """Print the figures, attach them to the test's report and keep them as JSON."""
    text = json.dumps(figures, sort_keys=True, default=str)
    print(f"\n{name}: {text}")
    record_property(name, text)
    (tmp_path / f"{name}.json").write_text(text)


def wait_for(ro: rr.Rollout, phases: set[str], timeout_s: float) -> dict[str, Any]:
    return ro.wait(frozenset(phases), timeout_s)


def served_by(load: Traffic, epoch: int, timeout_s: float) -> None:
    """Wait until a request was answered under table ``epoch`` (or ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(r.epoch >= epoch and r.status == 200 for r in reversed(load.replies)):
            return
        time.sleep(0.1)


def test_rollback_under_load(model: Model, heldout, tmp_path: Path,
                             record_property: Callable[[str, object], None]) -> None:
    """v1 -> the faulty model, which fails every row with a negative pixel (one valid row in
    ten here), under ``LOAD_CLIENTS`` clients. The errors check ignores the candidate's first
    ``ROLLBACK_WARMUP_S`` (warm-up) and the first step lasts at least 120 s, so the rollout
    runs at least the warm-up under load and ends, in that step, in a rollback decided by the
    errors check. Long form (32 clients, 60 s warm-up): ``python -m benchmarks.endurance``."""
    X, _ = heldout
    steps = [{"weight": 20, "min_duration_s": 120}, {"weight": 40}]
    spec = rollout_spec(model.name, model.store, ("v1", "v1.onnx"), ("faulty", "faulty.pt"),
                        steps)
    spec["analysis"]["warmup_s"] = ROLLBACK_WARMUP_S
    ro = model.start(spec)
    with Traffic(model.base, model.name, X, clients=LOAD_CLIENTS, poison_every=10) as load:
        st = wait_for(ro, {"rolled_back", "promoted"}, timeout_s=240)
    rollout = st["rollout"]
    print("\nrollback:", st["phase"], "failed", dict(load.failed()), "served",
          dict(load.served()), "sent", load.sent, "received", load.received(),
          Ledger.read(model.store, rollout), [(e["phase_to"], e["now"], e["reason"][:200])
                                              for e in ro.history()])
    assert st["phase"] == "rolled_back" and st["weights"] == {"v1": 100.0}
    log = check_log(ro, [("canary", "rolled_back", 0)])
    assert "errors" in log[-1]["reason"]
    canary_at, decided_at = log[1]["now"], log[-1]["now"]
    # the warm-up was honoured, and the load spanned it
    assert decided_at - canary_at >= ROLLBACK_WARMUP_S and load.started < canary_at
    # The stable path: no failure at all. The candidate failed exactly its poisoned rows.
    assert load.failed()["v1"] == 0 and load.failed()[NO_VERSION] == 0, load.failed()
    bad_faulty = Counter(r.kind for r in load.replies
                         if r.version == "faulty" and not _as_expected(r))
    assert set(bad_faulty) == {"poison"} and load.poison_failed()["faulty"] > 0
    assert load.served()["faulty"] > 0 and load.served()["v1"] > 0
    led = Ledger.settle(model.store, rollout, load.sent)
    assert load.sent == load.received() == led.recorded, (load.sent, load.received(), led)
    assert led.events == led.requests and led.dropped_events == 0
    assert led.rejected == sum(1 for r in load.replies if r.kind == "bad")
    report(record_property, tmp_path, "load_rollback", {
        "sent": load.sent, "received": load.received(), "recorded": led.recorded,
        "rejected": led.rejected, "rps": round(load.rps(), 1),
        "served": dict(load.served()), "failed": dict(load.failed()),
        "rollout_s": round(decided_at - canary_at, 1)})


def test_promotion_under_load(model: Model, heldout, tmp_path: Path,
                              record_property: Callable[[str, object], None]) -> None:
    """v1 -> v2 in three steps of at least ``PROMOTION_STEP_S`` each under ``LOAD_CLIENTS``
    clients: promoted no sooner than the three steps allow, every table of the rollout served
    requests, not one request failed and every request is accounted for. Long form (32
    clients, 20 s steps): ``python -m benchmarks.endurance``."""
    X, _ = heldout
    steps = [{"weight": w, "min_duration_s": PROMOTION_STEP_S} for w in (10, 30, 60)]
    spec = rollout_spec(model.name, model.store, ("v1", "v1.onnx"), ("v2", "v2.onnx"), steps)
    ro = model.start(spec)
    with Traffic(model.base, model.name, X, clients=LOAD_CLIENTS) as load:
        st = wait_for(ro, {"promoted", "rolled_back"}, timeout_s=240)
        # served by the promoted table too
        served_by(load, st["epoch"], timeout_s=30)
    rollout = st["rollout"]
    assert st["phase"] == "promoted" and st["weights"] == {"v2": 100.0}
    assert st["previous_stable"] == "v1"
    log = check_log(ro, [("canary", "canary", 1),
                         ("canary", "canary", 2), ("canary", "promoted", 2)])
    canary_at, promoted_at = log[1]["now"], log[-1]["now"]
    assert promoted_at - canary_at >= 3 * PROMOTION_STEP_S
    assert load.started < canary_at < promoted_at
    assert sum(load.failed().values()) == 0, load.failed()
    epochs = {r.epoch for r in load.replies if r.status == 200}
    assert {e["epoch"] for e in log} <= epochs  # every table of the rollout served requests
    assert load.served()["v1"] > 0 and load.served()["v2"] > 0
    led = Ledger.settle(model.store, rollout, load.sent)
    assert load.sent == load.received() == led.recorded, (load.sent, load.received(), led)
    assert led.events == led.requests and led.dropped_events == 0
    assert led.rejected == sum(1 for r in load.replies if r.kind == "bad")
    assert led.by_version is not None
    assert {v: n for v, n in led.by_version.items() if n} == {
        v: n for v, n in Counter(r.version for r in load.replies).items() if n}
    report(record_property, tmp_path, "load_promotion", {
        "sent": load.sent, "received": load.received(), "recorded": led.recorded,
        "rejected": led.rejected, "rps": round(load.rps(), 1),
        "served": dict(load.served()), "rollout_s": round(promoted_at - canary_at, 1)})
