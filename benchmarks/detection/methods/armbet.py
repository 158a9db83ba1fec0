"""Test B' (arm bets) as vectorised trajectories, and the adaptive bets tried against it.

Scores, exactly as ``rayrollout.analysis._arm_bet`` computes them when it is fed one batch per
tick: ``g`` of each value is its centred mid-rank (latency, ``ArmBetLatency``) or its
deviation from the mean (scores in [0, 1], ``ArmBetDifference``) among the last ``window``
values seen *before its batch*; ``z = (A - w) g / max(w, 1 - w)``; requests with ``w`` 0 or 1
enter the reference but are not bet on. ``batch`` is any non-decreasing batch key per value
(the tick that releases it).

Bets on ``z`` (every one predictable, so each is a test supermartingale under H0):

* ``mixture``: the library's equal-weight mixture of constant bets (``kernels.bet_log_e``);
* ``agrapa``: one bet ``lambda_i = clip(S / (Q (1 + n0 / n)), 0, lambda_max)`` from the sums
  ``S``, ``Q`` of ``z``, ``z^2`` over the requests before ``i`` (approximate growth-rate
  adaptive, Waudby-Smith & Ramdas), shrunk towards 0 by ``n0`` pseudo-observations;
* ``ons``: online Newton step (Cutkosky & Orabona, as in Shekhar & Ramdas' two-sample test by
  betting), updated once per batch from that batch's gradients (the bet is fixed before the
  batch, as a controller ticking once per second would run it);
* ``prior``: the mixture over the Kelly bets of a few target effects, computed at the canary
  start from pre-canary stable data (a data-driven prior, fixed before any canary request).
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.detection.methods.kernels import EXACT_FROM, bet_log_e

ONS_STEP = 2.0 / (2.0 - math.log(3.0))
AGRAPA_N0 = 50.0


def batch_starts(batch: np.ndarray) -> np.ndarray:
    """Index of the first value of each batch (and the end), for a non-decreasing key."""
    if batch.size == 0:
        return np.zeros(1, dtype=np.int64)
    return np.r_[0, np.flatnonzero(np.diff(batch)) + 1, batch.size].astype(np.int64)


def midrank_scores(m: np.ndarray, batch: np.ndarray, window: int) -> np.ndarray:
    """Centred mid-rank of each value among the last ``window`` values before its batch.

    Vectorised over batches: values become dense ranks (ties kept), each batch's reference
    row is sorted, and one ``searchsorted`` on keys ``row * n + rank`` counts, per value, the
    reference values below it (``left``) and not above it (``right``)."""
    n = m.size
    g = np.zeros(n)
    cuts = batch_starts(batch)
    starts = cuts[:-1][cuts[:-1] > 0]
    if starts.size == 0:
        return g
    _, rank = np.unique(m, return_inverse=True)
    rank = rank.astype(np.int64)
    cols = np.arange(-window, 0, dtype=np.int64)
    src = starts[:, None] + cols[None, :]
    pads = np.maximum(window - starts, 0)  # rows with fewer than window values before them
    rows = np.arange(starts.size, dtype=np.int64)[:, None]
    keys = np.where(src >= 0, rank[np.maximum(src, 0)], -1) + rows * (n + 1)
    keys = np.sort(keys, axis=1).ravel()
    ends = cuts[1:][cuts[:-1] > 0]
    sizes = ends - starts
    row_of = np.repeat(np.arange(starts.size, dtype=np.int64), sizes)
    pos = np.arange(starts[0], ends[-1])  # the batches after the first, back to back
    q = rank[pos] + row_of * (n + 1)
    below = row_of * window + pads[row_of]
    left = np.searchsorted(keys, q, side="left")
    tied = np.flatnonzero(keys[np.minimum(left, keys.size - 1)] == q)  # rare: ties only
    right = left.copy()
    right[tied] = np.searchsorted(keys, q[tied], side="right")
    lo, hi = left - below, right - below
    k = np.minimum(starts, window)[row_of]
    g[pos] = (lo + hi) / k - 1.0
    return g


def level_scores(m: np.ndarray, batch: np.ndarray, window: int, delta: float) -> np.ndarray:
    """``(m - mean of the last window values before the batch) / (1 + delta)``, in [-1, 1]."""
    g = np.empty(m.size)
    cuts = batch_starts(batch)
    for lo, hi in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
        level = float(np.mean(m[max(0, lo - window):lo])) if lo else 0.5
        g[lo:hi] = (m[lo:hi] - level) / (1.0 + delta)
    out: np.ndarray = np.clip(g, -1.0, 1.0)
    return out


def arm_z(a: np.ndarray, w: np.ndarray, g: np.ndarray,
          scale: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """(z of the requests bet on, their mask). ``scale="max"``: the library's
    ``(A - w) g / max(w, 1 - w)``; ``"none"``: ``(A - w) g`` (one bet means the same Kelly
    fraction at every weight; |z| <= max(w, 1 - w) < 1 keeps every bet below 1 positive)."""
    keep = (w > 0.0) & (w < 1.0)
    wk = w[keep]
    d = (a[keep].astype(float) - wk) * g[keep]
    if scale == "none":
        return d, keep
    return np.clip(d / np.maximum(wk, 1.0 - wk), -1.0, 1.0), keep


def agrapa_log_e(z: np.ndarray, lam_max: float, n0: float = AGRAPA_N0) -> np.ndarray:
    """log wealth after each request with the predictable aGRAPA bet."""
    if z.size == 0:
        return np.zeros(0)
    s = np.r_[0.0, np.cumsum(z)[:-1]]
    q = np.r_[0.0, np.cumsum(z * z)[:-1]]
    n = np.arange(z.size, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(q > 0.0, s / (q * (1.0 + n0 / np.maximum(n, 1.0))), 0.0)
    out: np.ndarray = np.cumsum(np.log1p(np.clip(lam, 0.0, lam_max) * z))
    return out


def ons_bets(z: np.ndarray, batch: np.ndarray, lam_max: float) -> np.ndarray:
    """The ONS bet of each request: fixed for its batch, updated after it."""
    lam = np.empty(z.size)
    cuts = batch_starts(batch)
    cur, a_sum = 0.0, 1.0
    for lo, hi in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
        lam[lo:hi] = cur
        zb = z[lo:hi]
        grad = zb / (1.0 + cur * zb)
        a_sum += float(np.dot(grad, grad))
        cur = min(lam_max, max(0.0, cur + ONS_STEP * float(grad.sum()) / a_sum))
    return lam


def ons_log_e(z: np.ndarray, batch: np.ndarray, lam_max: float) -> np.ndarray:
    out: np.ndarray = np.cumsum(np.log1p(ons_bets(z, batch, lam_max) * z))
    return out


def kelly_prior(effects: np.ndarray, second_moment: float, w0: float,
                lam_max: float) -> tuple[float, ...]:
    """Kelly bets ``E z / E z^2 = effect * max(w, 1 - w) / E g^2`` of each target effect at the
    start weight ``w0``, clipped to (0, lam_max]."""
    m = max(w0, 1.0 - w0)
    lam = np.clip(effects * m / max(second_moment, 1e-12), 1e-4, lam_max)
    return tuple(float(x) for x in np.unique(lam))


def latency_effects(stable: np.ndarray, mults: tuple[float, ...]) -> np.ndarray:
    """Rank effect ``E[g | candidate] - E[g | stable]`` of a candidate ``mult`` x slower, from a
    stable sample: ``2 P(Y' < mult Y) - 1``."""
    ref = np.sort(stable)
    out = [2.0 * float(np.mean(np.searchsorted(ref, m * ref, side="left")
                               + np.searchsorted(ref, m * ref, side="right"))) / (2 * ref.size)
           - 1.0 for m in mults]
    return np.maximum(np.asarray(out), 0.0)


def log_e(z: np.ndarray, batch: np.ndarray, bets: str, lambdas: tuple[float, ...],
          prior: tuple[float, ...] | None = None) -> np.ndarray:
    """log E after each bet-on request, for one of the betting schemes."""
    if bets == "mixture":
        return bet_log_e(z, lambdas, EXACT_FROM)
    if bets == "prior":
        return bet_log_e(z, prior or lambdas, EXACT_FROM)
    if bets == "agrapa":
        return agrapa_log_e(z, max(lambdas))
    if bets == "ons":
        return ons_log_e(z, batch, max(lambdas))
    raise ValueError(f"unknown bets {bets!r}")
