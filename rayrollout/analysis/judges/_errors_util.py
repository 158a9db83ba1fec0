"""Reporting helpers for bad-event judges: the ratio estimate and its confidence sequence."""

from __future__ import annotations

import math

from rayrollout.analysis._bad_event import BadEventEProcess
from rayrollout.analysis._mixture import rho_confidence_sequence


def ratio_and_cs(
    proc: BadEventEProcess, n_c: int, n_b: int, alpha: float, kappa: float
) -> tuple[float | None, tuple[float, float] | None]:
    """Bad-rate ratio estimate and its confidence sequence (at the mean weight of bad events)."""
    rate_c = proc.n_canary / n_c if n_c else math.nan
    rate_b = proc.n_baseline / n_b if n_b else math.nan
    ratio = rate_c / rate_b if rate_b > 0 else (math.inf if rate_c > 0 else math.nan)
    ci = None
    w_eff = proc.sum_w / proc.n if proc.n else math.nan
    if 0.0 < w_eff < 1.0:
        ci = rho_confidence_sequence(proc.n_canary, proc.n_baseline, w_eff, alpha, kappa)
    return (None if math.isnan(ratio) else ratio), ci
