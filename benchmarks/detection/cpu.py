"""CPU cost of ours (target T9) and decision delay (T10), measured on one null-med run.

* vectorised: the kernels of ``sequential.py`` over a whole 60-minute run, per request;
* per 1 s tick: ``rayrollout.analysis.eprocess`` fed one batch at a time (``ours-api``);
* pure Python: the library's scalar ``update`` / ``observe`` per request for tests A and C,
  and test B' (arm bets, batch path only) once per 1 s tick.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from benchmarks.detection.methods.sequential import Sequential
from benchmarks.detection.scenario import Scenario
from benchmarks.detection.simulator import simulate


def _best_of(fn: Any, n: int = 3) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_cpu(n_pure: int = 100_000) -> dict[str, Any]:
    sc = Scenario(name="cpu-null-med")
    run = simulate(sc, 0, 1)
    n_req = run.n_requests
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"requests": n_req, "guards": list(sc.guards)}
    vec = _best_of(lambda: Sequential().judge(run, sc, rng))
    out["vectorised_us_per_request"] = round(vec / n_req * 1e6, 4)
    try:
        from benchmarks.detection.methods.sequential_api import SequentialAPI
        from rayrollout.analysis import eprocess as ep
    except ImportError as exc:  # the library is not importable: say so, do not guess
        out["api"] = f"not measured: {exc}"
        return out
    api = SequentialAPI()
    api.judge(run, sc, rng)
    ticks = np.asarray(api.tick_seconds) * 1e6
    out["tick_us"] = {"median": round(float(np.median(ticks)), 1),
                      "p99": round(float(np.quantile(ticks, 0.99)), 1),
                      "max": round(float(ticks.max()), 1), "n_ticks": int(ticks.size)}
    out["batch_api_us_per_request"] = round(float(ticks.sum()) / n_req, 4)
    sel = np.flatnonzero(run.t >= 0)[:n_pure]
    tt, cc, ll, ww, ee = (run.t[sel].tolist(), run.canary[sel].tolist(),
                          run.latency[sel].tolist(), run.w[sel].tolist(),
                          run.error[sel].tolist())
    cuts = np.searchsorted(run.t[sel], np.arange(0.0, float(run.t[sel][-1]) + 1.0)).tolist()
    cuts.append(sel.size)
    c_arr, w_arr, l_arr = run.canary[sel], run.w[sel], run.latency[sel]

    def pure() -> None:
        a, c = ep.BadEventEProcess(), ep.TailExceedance()
        b = ep.ArmBetLatency()  # arm bets have a batch path only: one call per 1 s tick
        for lo, hi in itertools.pairwise(cuts):
            for i in range(lo, hi):
                if ee[i]:
                    a.update(cc[i], ww[i])
                c.observe(tt[i], cc[i], ll[i], ww[i])
            b.observe_many(c_arr[lo:hi], w_arr[lo:hi], l_arr[lo:hi])
            _ = max(a.max_log_e, b.max_log_e, c.max_log_e)

    out["pure_python_us_per_request"] = round(_best_of(pure, 2) / len(tt) * 1e6, 3)
    out["pure_python_note"] = ("tests A and C per request (scalar update/observe), test B' "
                               "per 1 s tick (ArmBetLatency.observe_many, no scalar path)")
    out["decision_delay_s"] = "<= 1.0 (evaluated at the end of every 1 s tick)"
    return out
