"""Per-window aggregates (counts, error rates, latency quantiles), vectorised over windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.detection.methods.kernels import LOG_LO, LOG_STEP, N_BINS
from benchmarks.detection.simulator import Run


def group_quantiles(values: np.ndarray, groups: np.ndarray, n_groups: int,
                    qs: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """Quantiles per group (numpy's default linear interpolation); NaN for empty groups."""
    order = np.lexsort((values, groups))
    v, g = values[order], groups[order]
    counts = np.bincount(g, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = []
    ok = counts > 0
    for q in qs:
        res = np.full(n_groups, np.nan)
        pos = q * (counts[ok] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, counts[ok] - 1)
        frac = pos - lo
        base = starts[ok]
        res[ok] = v[base + lo] + frac * (v[base + hi] - v[base + lo])
        out.append(res)
    return tuple(out)


@dataclass
class WindowStats:
    """One row per window [start + k*width, start + (k+1)*width)."""

    n: np.ndarray
    err_rate: np.ndarray  # NaN where n == 0
    p50: np.ndarray
    p99: np.ndarray


def window_stats(t: np.ndarray, latency: np.ndarray, error: np.ndarray, start_s: float,
                 width_s: float, n_windows: int) -> WindowStats:
    sel = (t >= start_s) & (t < start_s + width_s * n_windows)
    g = ((t[sel] - start_s) // width_s).astype(np.int64)
    n = np.bincount(g, minlength=n_windows)
    e = np.bincount(g, weights=error[sel].astype(float), minlength=n_windows)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, e / np.maximum(n, 1), np.nan)
    p50, p99 = group_quantiles(latency[sel], g, n_windows, (0.5, 0.99))
    return WindowStats(n=n, err_rate=rate, p50=p50, p99=p99)


def sketch_window_stats(t: np.ndarray, latency: np.ndarray, error: np.ndarray, start_s: float,
                        width_s: float, n_windows: int) -> WindowStats:
    """Like :func:`window_stats` with quantiles from a log-bin histogram (0.2% relative
    accuracy, the way Prometheus histograms are read): for the large stable arm."""
    sel = (t >= start_s) & (t < start_s + width_s * n_windows)
    g = ((t[sel] - start_s) // width_s).astype(np.int64)
    n = np.bincount(g, minlength=n_windows)
    e = np.bincount(g, weights=error[sel].astype(float), minlength=n_windows)
    b = np.clip(((np.log(latency[sel]) - LOG_LO) / LOG_STEP).astype(np.int64), 0, N_BINS - 1)
    h = np.bincount(g * N_BINS + b, minlength=n_windows * N_BINS).reshape(n_windows, N_BINS)
    cb = np.cumsum(h, axis=1)
    qs = []
    for q in (0.5, 0.99):
        idx = np.argmax(cb >= q * np.maximum(n, 1)[:, None], axis=1)
        qs.append(np.where(n > 0, np.exp(LOG_LO + (idx + 0.5) * LOG_STEP), np.nan))
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, e / np.maximum(n, 1), np.nan)
    return WindowStats(n=n, err_rate=rate, p50=qs[0], p99=qs[1])


def arm_window_stats(run: Run, start_s: float, width_s: float,
                     n_windows: int) -> tuple[WindowStats, WindowStats]:
    """(canary, stable) statistics per window, all requests (cached on the run)."""
    key = ("arm", start_s, width_s, n_windows)
    if key not in run.cache:
        c = run.canary
        can = window_stats(run.t[c], run.latency[c], run.error[c], start_s, width_s, n_windows)
        st = sketch_window_stats(run.t[~c], run.latency[~c], run.error[~c], start_s, width_s,
                                 n_windows)
        run.cache[key] = (can, st)
    return run.cache[key]


def sampled_baseline_stats(run: Run, rng: np.random.Generator, start_s: float, width_s: float,
                           n_windows: int) -> tuple[WindowStats, WindowStats]:
    """(canary, baseline) where the baseline is, per window, a uniform random sample of stable
    requests of the same size as the canary's (Kayenta's equal-size baseline). Cached on the
    run: every Kayenta interval judges the same baseline sample."""
    key = ("sampled", start_s, width_s, n_windows)
    if key not in run.cache:
        run.cache[key] = _sampled(run, rng, start_s, width_s, n_windows)
    return run.cache[key]


def _sampled(run: Run, rng: np.random.Generator, start_s: float, width_s: float,
             n_windows: int) -> tuple[WindowStats, WindowStats]:
    sel = (run.t >= start_s) & (run.t < start_s + width_s * n_windows)
    t, c = run.t[sel], run.canary[sel]
    g = ((t - start_s) // width_s).astype(np.int64)
    n_c = np.bincount(g[c], minlength=n_windows)
    st_idx = np.flatnonzero(~c)  # time-ordered, so each window is a contiguous block
    counts = np.bincount(g[st_idx], minlength=n_windows)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    picks = [starts[k] + rng.choice(counts[k], min(n_c[k], counts[k]), replace=False)
             for k in range(n_windows) if counts[k] > 0]
    chosen = st_idx[np.concatenate(picks)] if picks else st_idx[:0]
    lat, err = run.latency[sel], run.error[sel]
    can = window_stats(t[c], lat[c], err[c], start_s, width_s, n_windows)
    base = window_stats(t[chosen], lat[chosen], err[chosen], start_s, width_s, n_windows)
    return can, base
