"""``rayrollout demo``: the README's main job, on an embedded local Ray.

1. Deploys ``v1`` behind the router and rolls out ``v2`` (``configs/rollout-digits.yaml``):
   shadow, 10%, 50%, promotion — under real HTTP traffic from the held-out digits, with the
   true labels posted back to the feedback route so accuracy is judged too.
2. Rolls out ``v2-regressed`` over the new stable (``configs/rollout-regressed.yaml``); it is
   rolled back automatically when the accuracy check crosses its evidence threshold.
3. Prints both decisions with their evidence, verifies the hash-chained log, replays both
   rollouts from their recorded inputs, and shuts everything down. Exit 0 when v2 was promoted
   and v2-regressed rolled back with no failed request on the stable path.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

import rayrollout.client.api as rr
from rayrollout.analysis.result import CheckResult
from rayrollout.cli.render import evidence, say, status_line
from rayrollout.spec import RolloutSpec, load_spec, project_root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Traffic:
    """Clients sending held-out digits and posting the true label back for each answer."""

    def __init__(self, base: str, model: str, X: np.ndarray, y: np.ndarray, conc: int,
                 feedback_token: str) -> None:
        self.base, self.model, self.X, self.y, self.conc = base, model, X, y, conc
        self.labels = {"Authorization": f"Bearer {feedback_token}"}  # a feedback-only token
        self.served: Counter[str] = Counter()
        self.correct: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.rejected = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    async def _run(self) -> None:
        import httpx

        async with httpx.AsyncClient(base_url=self.base, timeout=30) as c:
            await asyncio.gather(*(self._worker(c, k) for k in range(self.conc)))

    async def _worker(self, c: Any, k: int) -> None:
        i = k
        url = f"/v1/models/{self.model}"
        while not self._stop.is_set():
            i += self.conc
            if i % 97 == 0:  # now and then a malformed request: a 4xx, never a model failure
                r = await c.post(f"{url}/predict", json={"instances": [[1.0, 2.0]]})
                self.rejected += r.status_code == 400
                continue
            j = i % len(self.X)
            try:
                r = await c.post(f"{url}/predict", json={"instances": [self.X[j].tolist()]})
            except Exception:
                self.failed["connection"] += 1
                continue
            v = r.headers.get("x-model-version", "?")
            if r.status_code != 200:
                self.failed[v] += 1
                continue
            self.served[v] += 1
            self.correct[v] += r.json()["predictions"][0] == int(self.y[j])
            rid = r.headers["x-rollout-request-id"]
            await c.post(f"{url}/feedback", json={"request_id": rid, "label": int(self.y[j])},
                         headers=self.labels)


def _follow(ro: Any, timeout_s: float) -> dict[str, Any]:
    last_key, last_print = None, 0.0
    for st in ro.watch(0.5, timeout_s):
        key = (st["phase"], st["step"], st["epoch"])
        if key != last_key or time.monotonic() - last_print > 5:
            say(status_line(st), flush=True)
            last_key, last_print = key, time.monotonic()
    return dict(ro.status())


def _summary(title: str, history: list[dict[str, Any]]) -> None:
    say(f"\n{title}")
    for h in history:
        say(f"  #{h['seq']:<2} {h['phase_from']:>17} -> {h['phase_to']:<17} {h['reason']}")
    final = history[-1] if history else None
    if final:
        for cand, results in final["evidence"].items():
            for r in results:
                ev = evidence(CheckResult.from_dict(r).view())
                say(f"      {cand}.{r['check']:<14} {r['verdict']:<13} {ev:<15} {r['reason']}")


def run(config: Path | None = None, requests: int = 0, concurrency: int = 8) -> int:
    """Run the demo; ``config`` overrides the first rollout. Returns the exit status."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_SERVE_LOG_TO_STDERR", "0")
    from rayrollout.serving.local import LocalTokens, local_serve

    root = project_root()
    data = np.load(root / "models" / "heldout.npz")
    X, y = data["X"].astype(np.float32), data["y"]
    store = Path(tempfile.mkdtemp(prefix="rayrollout-demo-")) / "rollouts.db"
    first, second = (
        load_spec(p).model_copy(update={"store_path": str(store)})
        for p in (config or root / "configs" / "rollout-digits.yaml",
                  root / "configs" / "rollout-regressed.yaml")
    )
    port = free_port()
    t0 = time.monotonic()
    say(f"rayrollout demo: local Ray + Serve on http://127.0.0.1:{port} (store {store})")
    tokens = LocalTokens.fresh()
    with local_serve(port, env=tokens.env):
        rr.ensure_serving(first)
        say(f"stable {first.stable.name} is serving ({time.monotonic() - t0:.0f} s); "
              f"sending held-out digits from {concurrency} clients, labels posted back")
        traffic = Traffic(f"http://127.0.0.1:{port}", first.model, X, y, concurrency,
                          tokens.feedback)
        traffic.start()
        try:
            outcomes = [_rollout(f"[{i}]", spec) for i, spec in enumerate((first, second), 1)]
        finally:
            traffic.stop()
        ok = _report(outcomes, traffic)
    say(f"\ndemo {'passed' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s")
    return 0 if ok else 1


def _rollout(label: str, spec: RolloutSpec) -> tuple[RolloutSpec, Any, dict[str, Any],
                                                        list[dict[str, Any]]]:
    say(f"\n{label} rolling out {spec.candidates[0].name} over {spec.stable.name}")
    ro = rr.start(spec)
    st = _follow(ro, 300)
    return spec, ro, st, ro.history()


def _report(outcomes: list[tuple[RolloutSpec, Any, dict[str, Any], list[dict[str, Any]]]],
            traffic: Traffic) -> bool:
    """Print both rollouts' decisions, what was served, the log check and the replays; True if
    v2 was promoted, v2-regressed rolled back, nothing failed and every replay is identical."""
    for i, (spec, _, st, history) in enumerate(outcomes, 1):
        _summary(f"rollout {i}: {spec.candidates[0].name} -> {st['phase']}", history)
    say("\nserved (accuracy against the true labels):")
    for v, n in sorted(traffic.served.items()):
        say(f"  {v:<14} {n:>6} requests  {traffic.correct[v] / n:6.1%}")
    failed = sum(traffic.failed.values())
    say(f"  rejected bad requests: {traffic.rejected}; failed requests: {failed}")
    ro = outcomes[-1][1]
    chain = ro.verify()
    rollouts = sorted({h["rollout"] for o in outcomes for h in o[3]})
    replays = [ro.replay(r) for r in rollouts]
    say(f"decision log: {chain['message']}; replay from recorded inputs: "
          + ", ".join(f"rollout {r['rollout']} "
                      f"{'identical' if r['identical'] else 'DIFFERS'}" for r in replays))
    (_, _, st1, _), (_, _, st2, _) = outcomes
    return (st1["phase"] in ("promoted", "completed") and st2["phase"] == "rolled_back"
            and failed == 0 and chain["ok"] and all(r["identical"] for r in replays))


if __name__ == "__main__":
    sys.exit(run())
