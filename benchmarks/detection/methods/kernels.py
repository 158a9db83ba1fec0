"""Vectorised e-process trajectories (STATISTICS.md section 1), one value per event.

These compute, with cumulative sums, exactly the quantities that
``rayrollout.analysis.eprocess`` updates event by event (the per-batch adapter in
``sequential_api.py`` cross-checks them): a benchmark of thousands of runs cannot afford a
Python call per event.
"""

from __future__ import annotations

import math

import numpy as np

RHO_GRID = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
SIGN_LAMBDAS = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5)


def _theta(w: np.ndarray, rho: float | np.ndarray) -> np.ndarray:
    return w * rho / (w * rho + 1.0 - w)


EXACT_FROM = 2.0  # below every threshold in use (log(1 / 0.05) = 3.0)


def mixture_log_e(increments: np.ndarray, exact_from: float | None = None) -> np.ndarray:
    """log of the equal-weight mixture of products, after each row of (K, J) log-increments.

    With ``exact_from``, rows whose best component ``top`` is below both ``exact_from`` and
    ``max(top) - log J`` get the lower bound ``top - log J`` instead of the exact value: such a
    row can neither reach a threshold >= ``exact_from`` nor be the running maximum (the
    mixture lies in ``[top - log J, top]``), so crossings and the peak stay exact."""
    return _mixture_columns(np.array(increments, dtype=float).T, exact_from)


def _mixture_columns(s: np.ndarray, exact_from: float | None) -> np.ndarray:
    """``mixture_log_e`` on (J, K) increments, overwritten (contiguous rows: fast cumsums)."""
    if s.shape[1] == 0:
        return np.zeros(0)
    s = np.ascontiguousarray(s)
    np.cumsum(s, axis=1, out=s)
    top = s.max(axis=0)
    log_j = math.log(s.shape[0])
    if exact_from is None:
        cols: slice | np.ndarray = slice(None)
        out = np.empty(top.size)
    else:
        cols = np.flatnonzero(top >= min(exact_from, float(top.max()) - log_j))
        out = top - log_j
    sub = s[:, cols] - top[cols]
    np.exp(sub, out=sub)
    out[cols] = top[cols] + np.log(sub.mean(axis=0))
    return out


def bad_event_log_e(from_canary: np.ndarray, w: np.ndarray, rho0: float = 1.0,
                    grid: tuple[float, ...] = RHO_GRID) -> np.ndarray:
    """Test A: log E_n after each bad event (arm indicator, routing weight at its time)."""
    w = np.asarray(w, float)[:, None]
    rho = rho0 * np.asarray(grid, float)[None, :]
    th0 = _theta(w, rho0)
    th = _theta(w, rho)
    inc = np.where(np.asarray(from_canary, bool)[:, None], np.log(th / th0),
                   np.log((1.0 - th) / (1.0 - th0)))
    return mixture_log_e(inc)


def bet_log_e(x: np.ndarray, lambdas: tuple[float, ...] | np.ndarray,
              exact_from: float | None = None) -> np.ndarray:
    """Betting e-process sum_j pi_j prod_i (1 + lambda_j x_i) (x = Z for test B, D - d0 for a
    bounded mean). ``exact_from``: see ``mixture_log_e``."""
    lam = np.asarray(lambdas, float)[:, None]
    return _mixture_columns(np.log1p(lam * np.asarray(x, float)[None, :]), exact_from)


def block_pairs(t: np.ndarray, canary: np.ndarray, value: np.ndarray, tau: float = 0.0,
                delta: float = 0.0, kind: str = "sign") -> tuple[np.ndarray, np.ndarray]:
    """Block pairing (test B): for canary i, the stable observations after it and before the
    next canary. ``kind="sign"``: Z_i = mean sign(X_i - (1+tau) Y_j - delta); ``"diff"``:
    Z_i = mean (X_i - Y_j). Returns (Z, time Z_i becomes known = next canary's time); blocks
    without stable observations are skipped."""
    ci = np.flatnonzero(canary)
    if ci.size < 2:
        return np.zeros(0), np.zeros(0)
    owner = np.cumsum(canary) - 1
    st = (~canary) & (owner >= 0)
    o = owner[st]
    x = value[ci][o]
    y = value[st]
    s = np.sign(x - (1.0 + tau) * y - delta) if kind == "sign" else x - y
    sums = np.bincount(o, weights=s, minlength=ci.size)[:-1]
    cnt = np.bincount(o, minlength=ci.size)[:-1]
    ok = cnt > 0
    return sums[ok] / cnt[ok], t[ci[1:]][ok]


LOG_LO = math.log(0.01)
LOG_STEP = math.log(1.002)  # relative accuracy 0.2% (a DDSketch-like log histogram)
N_BINS = int((math.log(1e6) - LOG_LO) / LOG_STEP) + 1


def refreshed_quantiles(t: np.ndarray, values: np.ndarray, p: float, refresh_s: float,
                        n_periods: int) -> np.ndarray:
    """Quantile p used in period k = [k*refresh, (k+1)*refresh): from the observations with
    t < k*refresh only (including t < 0), via a log-bin histogram sketch (bin upper edge)."""
    b = np.clip(((np.log(values) - LOG_LO) / LOG_STEP).astype(np.int64), 0, N_BINS - 1)
    key = np.clip(np.floor(t / refresh_s).astype(np.int64) + 1, 0, n_periods)
    h = np.bincount(key * N_BINS + b, minlength=(n_periods + 1) * N_BINS)
    c = np.cumsum(h.reshape(n_periods + 1, N_BINS), axis=0)[:n_periods]
    cb = np.cumsum(c, axis=1)
    total = cb[:, -1]
    idx = np.argmax(cb >= p * total[:, None], axis=1)
    q = np.exp(LOG_LO + (idx + 1) * LOG_STEP)
    return np.where(total > 0, q, np.inf)
