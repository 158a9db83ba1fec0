"""Seeded simulators of router event streams for the analysis tests (vectorised numpy)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rayrollout.dataplane.events import EventBatch, Outcome

BASE, CAND = "v1", "v2"


def stream(
    seed: int,
    n: int,
    w: float = 0.1,
    rate: float = 100.0,
    p_err: float = 0.005,
    rho: float = 1.0,
    lat_mult: float = 1.0,
    tail_frac: float = 0.0,
    tail_mult: float = 3.0,
    sigma: float = 0.3,
    t0: float = 0.0,
) -> EventBatch:
    """``n`` requests at ``rate``/s, routed to the candidate with probability ``w``."""
    rng = np.random.default_rng(seed)
    t = t0 + np.cumsum(rng.exponential(1.0 / rate, n))
    c = rng.random(n) < w
    lat = 100.0 * rng.lognormal(0.0, sigma, n)
    lat = np.where(c, lat * lat_mult, lat)
    if tail_frac:
        lat = np.where(c & (rng.random(n) < tail_frac), lat * tail_mult, lat)
    err = rng.random(n) < np.where(c, p_err * rho, p_err)
    return EventBatch(
        t=t,
        version=np.where(c, CAND, BASE).astype(object),
        weight=np.where(c, w, 1.0 - w),
        latency_ms=lat,
        outcome=np.where(err, int(Outcome.ERROR), int(Outcome.OK)).astype(np.int8),
        prediction=np.full(n, np.nan),
        unit=np.full(n, "", dtype=object),
        randomised=np.ones(n, dtype=bool),
        epoch=np.ones(n, dtype=np.int64),
    )


def ticks(batch: EventBatch, tick_s: float = 1.0) -> Iterator[EventBatch]:
    """Split a batch into consecutive per-``tick_s`` batches, as the controller drains them."""
    if not len(batch):
        return
    k = np.floor((batch.t - batch.t[0]) / tick_s).astype(np.int64)
    cuts = np.flatnonzero(np.diff(k)) + 1
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(batch)], strict=True):
        yield take(batch, slice(int(lo), int(hi)))


def take(batch: EventBatch, idx: slice | np.ndarray) -> EventBatch:
    """A sub-batch (rows ``idx``)."""
    return EventBatch(
        t=batch.t[idx],
        version=batch.version[idx],
        weight=batch.weight[idx],
        latency_ms=batch.latency_ms[idx],
        outcome=batch.outcome[idx],
        prediction=batch.prediction[idx],
        unit=batch.unit[idx],
        randomised=batch.randomised[idx],
        epoch=batch.epoch[idx],
    )


def replace(batch: EventBatch, **cols: np.ndarray) -> EventBatch:
    """A copy of ``batch`` with some columns replaced."""
    d = {name: getattr(batch, name) for name in batch.__dataclass_fields__}
    d.update(cols)
    return EventBatch(**d)


def mc_limit(alpha: float, runs: int) -> float:
    """``alpha`` plus three binomial standard errors (Monte-Carlo slack)."""
    return alpha + 3.0 * float(np.sqrt(alpha * (1.0 - alpha) / runs))
