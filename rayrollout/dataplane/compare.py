"""Compare a shadow's outputs with the primary's for the same request. Pure code.

Classifiers are compared by agreement of the predicted label; regressors by absolute difference,
with a relative tolerance deciding what counts as a disagreement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from rayrollout.runtime.summary import summarize_prediction


def compare_outputs(
    primary: Mapping[str, np.ndarray],
    shadow: Mapping[str, np.ndarray],
    task: str,
    rtol: float = 0.05,
) -> tuple[float, float]:
    """Return ``(disagree, abs_diff)`` averaged over the rows of the request.

    ``disagree`` is in [0, 1]: the fraction of rows whose labels differ (classification) or
    whose relative difference exceeds ``rtol`` (regression). ``abs_diff`` is the mean absolute
    difference of the summarised predictions (for classifiers, of the class probabilities when
    both sides give them).
    """
    p = summarize_prediction(dict(primary), task)
    s = summarize_prediction(dict(shadow), task)
    if p.shape != s.shape:
        return 1.0, math.nan
    if task == "classification":
        disagree = float(np.mean(p != s))
        pp, sp = primary.get("probabilities"), shadow.get("probabilities")
        if pp is not None and sp is not None and np.shape(pp) == np.shape(sp):
            return disagree, float(np.mean(np.abs(np.asarray(pp) - np.asarray(sp))))
        return disagree, float(np.mean(np.abs(p - s)))
    diff = np.abs(p - s)
    scale = np.maximum(np.abs(p), 1e-12)
    return float(np.mean(diff > rtol * scale)), float(np.mean(diff))
