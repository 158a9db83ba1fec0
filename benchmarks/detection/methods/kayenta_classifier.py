"""Port of Kayenta's NetflixACAJudge metric classifier and weighted-sum scorer.

Ported (logic, not code) from spinnaker/kayenta ``kayenta-judge`` (MannWhitneyClassifier,
WeightedSumScorer, NetflixACAJudge) and ``kayenta-mannwhitney`` (MannWhitney.scala, itself the
asymptotic two-sample confidence interval of R's ``wilcox.test`` with continuity correction):

* Mann-Whitney confidence interval for the shift ``experiment - control`` at ``conf_level``
  (0.98 in the judge); the interval ends are the roots of the standardised rank statistic
  ``(dz(mu) - 0.5 sign(dz)) / sigma(mu) -/+ z``, clamped to ``[min x - max y, max x - min y]``.
* Tolerance band ``+/- tolerance * |estimate|`` (tolerance 0.25); High when the whole interval
  is above the band and the effect size (mean ratio) is ``>= allowed_increase``; Low when below
  the band and ``<= allowed_decrease``; a NaN effect size skips the effect-size gate.
* No data after NaN handling: ``Nodata`` (``NodataFailMetric`` if ``must_have_data``) with the
  "remove" NaN strategy, ``Pass`` with "replace". Identical data, or a single distinct value,
  is ``Pass``. An all-tied sample the interval cannot be computed for is ``Error``.
* Scores: per group ``100 * Pass / (Pass + High + Low + NodataFailMetric)``; a group with only
  Nodata metrics is left out; unweighted groups share ``100 - sum(weights)``; score 0 when at
  least half of the metrics are Nodata.

Where the stored Kayenta sources differ between versions (outlier removal always on in early
versions, optional later), the later behaviour is the default and the other is a flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from rayrollout._compat import StrEnum

_Z_CACHE: dict[float, float] = {}


class Label(StrEnum):
    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "Nodata"
    NODATA_FAIL = "NodataFailMetric"
    ERROR = "Error"


@dataclass(frozen=True)
class MWResult:
    lower: float
    upper: float
    estimate: float


@dataclass(frozen=True)
class MetricClassification:
    label: Label
    effect_size: float
    reason: str = ""


def _tie_term(v: np.ndarray) -> float:
    _, c = np.unique(v, return_counts=True)
    return float(np.sum(c.astype(float) ** 3 - c))


def _stat_at(x: np.ndarray, y: np.ndarray, mu: float) -> tuple[float, float]:
    """(dz, sigma) of the shifted rank-sum statistic at mu, ties handled exactly (average
    ranks of the pooled sample ``x - mu``, ``y``, as R and Kayenta compute them)."""
    nx, ny = x.size, y.size
    comb = np.concatenate((x - mu, y))
    _, inv, cnt = np.unique(comb, return_inverse=True, return_counts=True)
    avg = np.cumsum(cnt) - (cnt - 1) / 2.0  # average rank of each distinct value
    dz = float(avg[inv[:nx]].sum()) - nx * (nx + 1) / 2 - nx * ny / 2
    n = nx + ny
    c = cnt.astype(float)
    sig2 = (nx * ny / 12) * ((n + 1) - float(np.sum(c**3 - c)) / (n * (n - 1)))
    return dz, math.sqrt(max(sig2, 0.0))


def _f(dz: float, sigma: float, q: float) -> float:
    return (dz - 0.5 * float(np.sign(dz))) / sigma - q


def mann_whitney(control: np.ndarray, experiment: np.ndarray, conf_level: float = 0.98) -> MWResult:
    """Asymptotic Mann-Whitney CI for the location shift experiment - control (R wilcox.test)."""
    x, y = np.asarray(experiment, float), np.asarray(control, float)
    nx, ny = x.size, y.size
    d = np.sort((x[:, None] - y[None, :]).ravel())
    mu_min, mu_max = float(d[0]), float(d[-1])
    n = nx + ny
    # between two distinct pairwise differences only within-arm ties remain
    sig_open2 = (nx * ny / 12) * ((n + 1) - (_tie_term(x) + _tie_term(y)) / (n * (n - 1)))
    if sig_open2 <= 0:
        raise ValueError("cannot compute confidence interval when all observations are tied")
    sig_open = math.sqrt(sig_open2)
    u, cnt = np.unique(d, return_counts=True)
    above = d.size - np.cumsum(cnt)  # #differences > u_k, i.e. U on the interval (u_k, u_k+1)
    dz_open = above[:-1] - nx * ny / 2

    dz0, s0 = _stat_at(x, y, mu_min)
    dz1, s1 = _stat_at(x, y, mu_max)

    def root(q: float) -> float:
        if s0 == 0 or _f(dz0, s0, q) <= 0:
            return mu_min
        if s1 == 0 or _f(dz1, s1, q) >= 0:
            return mu_max
        # the statistic is a non-increasing step function of mu: the root is the jump point
        vals = (dz_open - 0.5 * np.sign(dz_open)) / sig_open - q
        k = int(np.argmax(vals <= 0)) if np.any(vals <= 0) else u.size - 1
        return float(u[k])

    z = _Z_CACHE.get(conf_level)
    if z is None:
        z = _Z_CACHE[conf_level] = float(stats.norm.ppf(1 - (1 - conf_level) / 2))
    return MWResult(lower=root(z), upper=root(-z), estimate=float(np.median(d)))


def _remove_outliers(v: np.ndarray, factor: float = 3.0) -> np.ndarray:
    """Kayenta IQRDetector(factor, reduceSensitivity=true)."""
    if v.size < 2:
        return v
    q1, q3, p1, p99 = np.percentile(v, [25, 75, 1, 99])
    iqr = q3 - q1
    lo, hi = min(p1, q1 - factor * iqr), max(p99, q3 + factor * iqr)
    return v[(v >= lo) & (v <= hi)]


def _transform(v: np.ndarray, nan_strategy: str, outliers: bool) -> np.ndarray:
    v = np.asarray(v, float)
    v = v[~np.isnan(v)] if nan_strategy == "remove" else np.nan_to_num(v, nan=0.0)
    return _remove_outliers(v) if outliers else v


def _effect(control: np.ndarray, experiment: np.ndarray, measure: str) -> float:
    if measure == "cles":
        diff = experiment[:, None] - control[None, :]
        return float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))
    mc, me = float(np.mean(control)), float(np.mean(experiment))
    return me / mc if mc != 0 and me != 0 else math.nan


def classify(control: np.ndarray, experiment: np.ndarray, direction: str = "either",
             nan_strategy: str = "remove", allowed_increase: float = 1.0,
             allowed_decrease: float = 1.0, tolerance: float = 0.25, conf_level: float = 0.98,
             must_have_data: bool = False, outliers: bool = False,
             effect_measure: str = "meanRatio") -> MetricClassification:
    """Kayenta MannWhitneyClassifier.classify for one metric (canary = experiment)."""
    c = _transform(control, nan_strategy, outliers)
    e = _transform(experiment, nan_strategy, outliers)
    if c.size == 0 or e.size == 0:
        if nan_strategy == "remove":
            lab = Label.NODATA_FAIL if must_have_data else Label.NODATA
            return MetricClassification(lab, 1.0, "Missing data")
        return MetricClassification(Label.PASS, 1.0)
    if c.size == e.size and np.array_equal(np.sort(c), np.sort(e)):
        return MetricClassification(Label.PASS, 1.0, "The canary and baseline data are identical")
    if np.unique(np.concatenate((c, e))).size == 1:
        return MetricClassification(Label.PASS, 1.0)
    try:
        mw = mann_whitney(c, e, conf_level)
    except ValueError as exc:
        return MetricClassification(Label.ERROR, math.nan, str(exc))
    bound = tolerance * abs(mw.estimate)
    eff = _effect(c, e, effect_measure)
    # the two interval conditions exclude each other (lower <= upper), as in Kayenta's if/else
    if (direction in ("increase", "either") and mw.lower > bound
            and (math.isnan(eff) or eff >= allowed_increase)):
        return MetricClassification(Label.HIGH, eff, "classified as High")
    if (direction in ("decrease", "either") and mw.upper < -bound
            and (math.isnan(eff) or eff <= allowed_decrease)):
        return MetricClassification(Label.LOW, eff, "classified as Low")
    return MetricClassification(Label.PASS, eff)


def weighted_sum_score(labels: dict[str, tuple[str, Label]], weights: dict[str, float]) -> float:
    """Kayenta WeightedSumScorer: ``labels`` maps metric -> (group, label)."""
    if labels and sum(lab == Label.NODATA for _, lab in labels.values()) >= 0.5 * len(labels):
        return 0.0
    groups: dict[str, list[Label]] = {}
    for g, lab in labels.values():
        groups.setdefault(g, []).append(lab)
    unweighted = [g for g in groups if g not in weights]
    rest = (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    score = 0.0
    for g, labs in groups.items():
        n_pass = sum(lab == Label.PASS for lab in labs)
        total = sum(lab in (Label.PASS, Label.HIGH, Label.LOW, Label.NODATA_FAIL) for lab in labs)
        if total == 0:
            continue
        score += 100.0 * n_pass / total * weights.get(g, rest) / 100.0
    return score


def score_class(score: float, pass_threshold: float = 95.0, marginal: float = 75.0) -> str:
    if score >= pass_threshold:
        return "Pass"
    return "Marginal" if score >= marginal else "Fail"
