"""Sticky sessions routed as the router routes them: weighted rendezvous hashing of the key.

Each session gets a random key; every request of it goes where
``RoutingTable(...).choose(u, key=key)`` sends it under the table in force at the request's
arrival (one table per weight step, ``epoch`` = step index + 1, 0 before the canary). While
the weights hold a key keeps its version; when they change, keys move exactly as in the
router (raising the canary's weight moves keys only to it, lowering it only away from it).
"""

from __future__ import annotations

import numpy as np

from benchmarks.detection.scenario import SimConfig

CANARY, STABLE = "canary", "stable"


def epoch_of(cfg: SimConfig, t: np.ndarray) -> np.ndarray:
    """Routing-table epoch of each request: 0 before the canary, then 1 + weight step index."""
    if isinstance(cfg.weight, tuple):
        starts = np.array([s for s, _ in cfg.weight], dtype=float)
        step = np.searchsorted(starts, t, side="right") - 1
        e = np.where(step >= 0, step + 1, 0)
    else:
        e = np.ones(t.shape, dtype=np.int64)
    return np.where(t >= 0, e, 0).astype(np.int64)


def epoch_weights(cfg: SimConfig) -> list[float]:
    """Canary weight of each epoch (epoch 0: no canary)."""
    if isinstance(cfg.weight, tuple):
        return [0.0] + [float(w) for _, w in cfg.weight]
    return [0.0, float(cfg.weight)]


def hashed_arms(rng: np.random.Generator, cfg: SimConfig, t: np.ndarray, sid: np.ndarray,
                n_sessions: int) -> tuple[np.ndarray, np.ndarray]:
    """(canary flag, session key) of each request, from the router's own routing table."""
    from rayrollout.dataplane.routing import RoutingTable

    keys = np.array([f"{k:016x}" for k in rng.integers(0, 2**63, n_sessions)], dtype=object)
    tables = [RoutingTable(model="m", epoch=e, weights={STABLE: 1.0 - w, CANARY: w})
              for e, w in enumerate(epoch_weights(cfg))]
    epoch = epoch_of(cfg, t)
    pair = sid.astype(np.int64) * len(tables) + epoch
    uniq, inv = np.unique(pair, return_inverse=True)
    arm = np.fromiter(
        (tables[int(p % len(tables))].choose(0.0, key=keys[int(p // len(tables))]).version
         == CANARY for p in uniq), dtype=bool, count=uniq.size)
    return arm[inv], keys[sid]
