"""A run as the judges receive it: request arrays in delivery order with their release ticks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.detection.delivery import cached_delivery
from benchmarks.detection.scenario import Scenario
from benchmarks.detection.simulator import Run


def path_of(sc: Scenario, path: str | None) -> str:
    """The event path a method sees: its own, or the scenario's (deployed: watermark)."""
    if path is not None:
        return path
    return "watermark" if sc.sim.deployed else "tick"


@dataclass
class View:
    run: Run
    path: str
    idx: np.ndarray  # run indices in delivery order
    rel: np.ndarray  # release tick of each
    t: np.ndarray
    canary: np.ndarray
    w: np.ndarray
    latency: np.ndarray
    error: np.ndarray
    session: np.ndarray | None

    def col(self, name: str) -> np.ndarray:
        v = getattr(self.run, name)
        assert v is not None, f"run has no {name}"
        out: np.ndarray = v[self.idx]
        return out


def view_of(run: Run, sc: Scenario, path: str | None) -> View:
    p = path_of(sc, path)
    key = ("view", p, sc.sim.tick_s)
    if key not in run.cache:
        d = cached_delivery(run, p, sc.sim.tick_s)
        released = np.isfinite(d.release)  # the rest reach the judges after the horizon
        i, rel = d.order[released], d.release[released]
        run.cache[key] = View(run, p, i, rel, run.t[i], run.canary[i], run.w[i],
                              run.latency[i], run.error[i],
                              None if run.session is None else run.session[i])
    v: View = run.cache[key]
    return v


def first_per_unit(mask: np.ndarray, unit: np.ndarray | None) -> np.ndarray:
    """``mask`` keeping, per session, only its first marked position (request mode: all)."""
    if unit is None:
        return mask
    idx = np.flatnonzero(mask)
    _, first = np.unique(unit[idx], return_index=True)
    out = np.zeros(mask.size, dtype=bool)
    out[idx[first]] = True
    return out
