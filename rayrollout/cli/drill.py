"""``rayrollout drill``: rehearse an automatic rollback with a fault injected on purpose.

::

    rayrollout drill --fault errors            # an embedded local Ray, started and stopped here
    rayrollout drill --fault all --json        # every kind, one JSON report per line
    rayrollout --url http://head:8000 drill --fault hang --address ray://head:10001

One drill deploys the example stable (``models/artifacts/v1.onnx``) and a candidate
(``v2.onnx``) whose ``faults`` (``rayrollout.spec.FaultSpec``) hold the fault, as a model of
its own on the ingress (``drill-<kind>-<hex>``, at ``/v1/models/<model>/...``). Clients send
held-out digits at a steady rate; then it starts a rollout with a spec made for the fault
(``DRILLS``) and waits for the outcome. It prints: rolled back or not, which check fired (or
a failed deploy) and why, the seconds from the candidate's first traffic (the decision that
opened the shadow or the first step; a crash or a slow start only begins after it) to the
rollback, and the requests sent / answered / failed by version. Then it removes its model
from the ingress, deletes its version apps and ends its controller.

A drill PASSES when the rollout was rolled back by one of the checks its fault is meant to
trip, within ``bound_s`` of the first candidate traffic, and no request on the stable path
failed (every failed answer must name the candidate). The slow-start drill is the exception:
its candidate is healthy, only slow to start. It PASSES when the rollout waited in
``deploying`` at least ``slow_start_s`` without sending the candidate a request or counting
anything against it, then promoted it within ``bound_s`` of the start, and no request
failed on any version. Exit status 0 when every drill passed, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import rayrollout.client.api as rr
from rayrollout.cli.demo import free_port
from rayrollout.cli.render import say
from rayrollout.errors import RolloutError
from rayrollout.names import version_app_name
from rayrollout.spec import RolloutSpec, project_root

STABLE, CANDIDATE = "v1", "v2"
ERRORS = {"kind": "errors", "params": {"min_candidate_requests": 30}}
HOLD = [{"weight": 20, "min_requests": 1_000_000}]  # a step never left: only a FAIL ends it


@dataclass(frozen=True)
class Drill:
    """One kind of fault: the candidate's faults, the checks meant to catch it, the bound."""

    faults: dict[str, Any]
    checks: list[dict[str, Any]]
    expect: tuple[str, ...]  # the checks that may fire; "deploy" for a failed deploy
    bound_s: float
    guards: list[dict[str, Any]] = field(default_factory=list)
    shadow: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=lambda: list(HOLD))
    rollback: bool = True  # False: the drill expects a promotion (slow start)


DRILLS: dict[str, Drill] = {
    "latency": Drill({"latency_ms": 150}, [ERRORS, {"kind": "latency", "params": {
        "tau": 0.5, "min_blocks": 10}}], ("latency",), 45),
    "tail": Drill({"tail_fraction": 0.25, "tail_ms": 400}, [ERRORS, {"kind": "latency_tail",
        "params": {"p": 0.9, "refresh_s": 3, "min_reference": 20,
                   "min_candidate_requests": 30}}], ("latency_tail",), 60),
    "errors": Drill({"error_rate": 0.25}, [ERRORS], ("errors",), 30),
    "crash": Drill({"crash_after_requests": 25}, [ERRORS], ("errors", "threshold_errors"), 45,
                   guards=[{"kind": "threshold_errors", "params": {
                       "max_error_rate": 0.05, "window_s": 10, "min_requests": 20}}]),
    "hang": Drill({"hang_fraction": 0.25}, [ERRORS], ("errors",), 45),
    "wrong": Drill({"wrong_fraction": 0.5}, [{"kind": "disagreement", "params": {
        "d0": 0.15, "min_comparisons": 50}}], ("disagreement",), 30,
        shadow={"fraction": 1.0, "min_comparisons": 1_000_000}),
    "slow-start": Drill({"slow_start_s": 8.0}, [ERRORS], (), 90, rollback=False,
                        steps=[{"weight": 20, "min_requests": 30}]),
}
KINDS = tuple(DRILLS)
REQUEST_TIMEOUT_S = 2.0  # the router's: a hung request is a TIMEOUT after this long
TICK_S = 0.25


def drill_spec(kind: str, model: str, store_path: str, faults: Mapping[str, Any] | None = None,
               tick_s: float = TICK_S) -> RolloutSpec:
    """The rollout a drill of ``kind`` starts; ``faults`` override the kind's fault fields."""
    d = DRILLS[kind]
    art = project_root() / "models" / "artifacts"
    cand = {"name": CANDIDATE, "runtime": "onnx", "artifact": str(art / "v2.onnx"),
            "faults": {**d.faults, **(faults or {})}}
    return RolloutSpec.model_validate({
        "model": model,
        "stable": {"name": STABLE, "runtime": "onnx", "artifact": str(art / "v1.onnx")},
        "candidates": [cand],
        "strategy": {"shadow": d.shadow, "steps": d.steps},
        "analysis": {"tick_s": tick_s, "checks": d.checks, "guards": d.guards},
        "rollback_window_s": 0,
        "drain_s": 1,
        "router": {"request_timeout_s": REQUEST_TIMEOUT_S},
        "store_path": store_path,
    })


class Load:
    """Steady clients sending held-out digits; counts sent / answered / failed by version (the
    version that answered, from ``x-model-version``; "?" when no answer named one)."""

    def __init__(self, url: str, X: np.ndarray, concurrency: int = 4) -> None:
        self.url, self.X, self.concurrency = url, X, concurrency
        self.answered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=30) as c:
            await asyncio.gather(*(self._client(c, k) for k in range(self.concurrency)))

    async def _client(self, c: httpx.AsyncClient, k: int) -> None:
        i = k
        while not self._stop.is_set():
            i = (i + self.concurrency) % len(self.X)
            try:
                r = await c.post(self.url, json={"instances": [self.X[i].tolist()]})
            except httpx.HTTPError:
                self.failed["?"] += 1
                await asyncio.sleep(0.05)
                continue
            version = r.headers.get("x-model-version", "?")
            (self.answered if r.status_code == 200 else self.failed)[version] += 1
            await asyncio.sleep(0.005)  # steady, not flat out: the stable must keep up

    def by_version(self) -> dict[str, dict[str, int]]:
        out = {}
        for v in sorted(set(self.answered) | set(self.failed)):
            a, f = self.answered[v], self.failed[v]
            out[v] = {"sent": a + f, "answered": a, "failed": f}
        return out


@dataclass
class Report:
    """What one drill found. ``seconds``: first candidate traffic to the rollback (slow start:
    the start of the rollout to the promotion)."""

    kind: str
    model: str
    passed: bool
    phase: str
    rolled_back: bool
    fired: list[str]
    reason: str
    seconds: float | None
    bound_s: float
    requests: dict[str, dict[str, int]]
    stable_failed: int
    problems: list[str]
    faults: dict[str, Any]
    waited_s: float | None = None  # time in ``deploying`` (the candidate starting)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first(history: Sequence[Mapping[str, Any]], phases: set[str]) -> Mapping[str, Any] | None:
    return next((h for h in history if h["phase_to"] in phases), None)


def judge(kind: str, spec: RolloutSpec, history: Sequence[Mapping[str, Any]],
          requests: dict[str, dict[str, int]], bound_s: float) -> Report:
    """The report of a finished drill, from the decision log and what the clients saw."""
    d = DRILLS[kind]
    fs = spec.candidates[0].faults
    faults = fs.model_dump(exclude_defaults=True) if fs is not None else {}
    final: Mapping[str, Any] = history[-1] if history else {
        "phase_to": "pending", "reason": "", "evidence": {}, "now": 0.0}
    phase = str(final["phase_to"])
    rolled_back = phase == "rolled_back"
    deploying = _first(history, {"deploying"})
    traffic = _first(history, {"shadow", "canary"})
    end = _first(history, {"rolled_back"} if d.rollback else {"promoted"}) or final
    fired = [r["check"] for r in end["evidence"].get(CANDIDATE, []) if r["verdict"] == "FAIL"]
    if rolled_back and "deploy failed" in end["reason"]:
        fired.append("deploy")
    start = (traffic or deploying) if d.rollback else deploying
    seconds = end["now"] - start["now"] if start is not None and history else None
    waited = traffic["now"] - deploying["now"] if traffic and deploying else None
    stable_failed = sum(c["failed"] for v, c in requests.items() if v != CANDIDATE)
    problems = []
    if d.rollback:
        if not rolled_back:
            problems.append(f"not rolled back: the rollout ended {phase}")
        elif not set(fired) & set(d.expect):
            problems.append(f"rolled back by {fired or 'no check'}, expected {list(d.expect)}")
    else:
        slow = float(faults.get("slow_start_s", 0.0))
        if phase not in ("promoted", "completed"):
            problems.append(f"not promoted: the rollout ended {phase}")
        if waited is None or waited < slow:
            problems.append(f"left deploying after {waited} s, before the {slow:g} s start")
        cand = requests.get(CANDIDATE, {}).get("failed", 0)
        if cand:
            problems.append(f"{cand} failed requests on the slow starter")
    if seconds is None or seconds > bound_s:
        problems.append(f"took {seconds} s, over the {bound_s:g} s bound")
    if stable_failed:
        problems.append(f"{stable_failed} failed requests on the stable path")
    return Report(kind, spec.model, not problems, phase, rolled_back, fired, str(end["reason"]),
                  seconds, bound_s, requests, stable_failed, problems, faults, waited)


def run_drill(kind: str, base_url: str, bound_s: float | None = None,
              faults: Mapping[str, Any] | None = None, tick_s: float = TICK_S,
              concurrency: int = 4, store_dir: Path | None = None) -> Report:
    """One drill against the Ray this process is connected to, whose Serve HTTP proxy is at
    ``base_url``. Deploys under a model of its own, and deletes it all again."""
    model = f"drill-{kind}-{uuid.uuid4().hex[:6]}"
    store = (store_dir or Path(tempfile.gettempdir())) / f"{model}.db"  # on the controller's node
    spec = drill_spec(kind, model, str(store), faults, tick_s)
    bound = DRILLS[kind].bound_s if bound_s is None else bound_s
    data = np.load(project_root() / "models" / "heldout.npz")
    port = rr.default_port()
    try:
        # Everything starts at once; the rollout then finds its controller and (but for a slow
        # start, which it must wait for) its candidate running.
        rr.controller_handle(model, str(store), port=port)
        if DRILLS[kind].rollback:
            port.deploy_version(spec.candidates[0].for_model(model).resolved())
        rr.ensure_serving(spec, "/", port)
        url = f"{base_url.rstrip('/')}/v1/models/{model}/predict"
        _wait_ready(url, data["X"][:1].astype(np.float32))
        with Load(url, data["X"].astype(np.float32), concurrency) as load:
            time.sleep(1.0)  # the stable's latencies before the start: the tail's reference
            ro = rr.start(spec, port=port)
            try:
                ro.wait(timeout_s=bound + 120)
            except TimeoutError:
                with contextlib.suppress(RolloutError):  # unless it just ended on its own
                    ro.abort("the drill timed out")
            time.sleep(0.5)  # a moment of load after the outcome: the stable path stays up
        return judge(kind, spec, ro.history(), load.by_version(), bound)
    finally:
        _clean(model, port)


def _wait_ready(url: str, x: np.ndarray, timeout_s: float = 120) -> None:
    """Until the stable answers (deploying it does not wait for it)."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=10) as c:
        while True:
            try:
                if c.post(url, json={"instances": x.tolist()}).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the drill's stable did not answer at {url}")
            time.sleep(0.25)


def _clean(model: str, port: Any) -> None:
    """End the drill's controller and delete its apps (best effort: the drill is over)."""
    try:
        h = rr.controller_handle(model, create=False, port=port)
        h.call("stop")
        end = getattr(h, "end", None)  # a controller actor: ended, never restarted
        if end is not None:
            end()
        else:
            h.call("__ray_terminate__")
    except RolloutError:
        pass
    port.remove_router(model)  # the ingress stays: other models may be served on it
    for app in (version_app_name(model, STABLE), version_app_name(model, CANDIDATE)):
        port.delete_app(app)


def render(r: Report) -> str:
    """A report as lines of text."""
    lines = [f"drill {r.kind} ({r.model}): {'PASS' if r.passed else 'FAIL'}",
             f"  faults: {r.faults}",
             f"  outcome: {r.phase}" + (", rolled back" if r.rolled_back else ""),
             f"  fired: {', '.join(r.fired) or '-'}",
             f"  reason: {r.reason}"]
    since = "start to promotion" if not DRILLS[r.kind].rollback else "first candidate traffic"
    secs = "-" if r.seconds is None else f"{r.seconds:.1f}"
    lines.append(f"  seconds ({since}): {secs} (bound {r.bound_s:g})")
    if r.waited_s is not None:
        lines.append(f"  waited for the candidate to start: {r.waited_s:.1f} s")
    lines.append("  requests    sent  answered  failed")
    for v, c in r.requests.items():
        lines.append(f"  {v:<8} {c['sent']:>7} {c['answered']:>9} {c['failed']:>7}")
    lines.append(f"  stable path failures: {r.stable_failed}")
    lines += [f"  problem: {p}" for p in r.problems]
    return "\n".join(lines)


def run(fault: str, address: str | None = None, url: str | None = None,
        bound_s: float | None = None, as_json: bool = False) -> int:
    """The ``rayrollout drill`` command (its options: ``rayrollout.cli.main.drill_cmd``): each
    drill of ``fault`` (or all); 0 if all passed."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_SERVE_LOG_TO_STDERR", "0")
    kinds = KINDS if fault == "all" else (fault,)
    reports = []

    def each(base: str) -> None:
        for kind in kinds:
            r = run_drill(kind, base, bound_s)
            reports.append(r)
            say(json.dumps(r.to_dict()) if as_json else render(r), flush=True)

    if address:
        os.environ["RAY_ADDRESS"] = address  # the first Serve call joins that cluster
        each(url or "http://127.0.0.1:8000")
    else:
        from rayrollout.serving.local import local_serve

        http_port = free_port()
        with local_serve(http_port):
            each(f"http://127.0.0.1:{http_port}")
    return 0 if all(r.passed for r in reports) else 1
