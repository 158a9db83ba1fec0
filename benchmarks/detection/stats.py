"""Summary statistics of one (scenario, method) cell: rates with Wilson intervals, exposure."""

from __future__ import annotations

import dataclasses
import math
import platform
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy

if TYPE_CHECKING:
    from benchmarks.detection.methods import Method
    from benchmarks.detection.runner import RunResult
    from benchmarks.detection.scenario import Scenario


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def _q(x: np.ndarray, q: float) -> float | None:
    """Quantile where misses are +inf; None if the quantile is a miss."""
    if x.size == 0:
        return None
    v = float(np.quantile(x, q, method="inverted_cdf"))
    return None if math.isinf(v) else round(v, 1)


def versions() -> dict[str, str]:
    try:
        from importlib.metadata import version

        rr = version("rayrollout")
    except Exception:  # not installed: the source tree is what ran
        rr = "source"
    return {"python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "rayrollout": rr}


def summarise(sc: Scenario, m: Method, rs: list[RunResult], suite_seed: int,
              oracle: float | None, oracle_total_alpha: float | None) -> dict[str, Any]:
    n = len(rs)
    k = sum(r.t_decision is not None for r in rs)
    exp = np.array([r.exposure if r.t_decision is not None else math.inf for r in rs])
    sec = np.array([r.t_decision if r.t_decision is not None else math.inf for r in rs])
    det = exp[np.isfinite(exp)]
    lo, hi = wilson(k, n)
    out: dict[str, Any] = {
        "scenario": sc.name, "method": m.name, "truth": sc.truth, "n_runs": n,
        "rollbacks": k, "rollback_rate": round(k / n, 4),
        "rollback_wilson95": [round(lo, 4), round(hi, 4)],
    }
    if sc.truth == "null":
        out["false_rollback"] = {"rate": round(k / n, 4), "wilson95": [round(lo, 4), round(hi, 4)]}
    else:
        med, p90 = _q(exp, 0.5), _q(exp, 0.9)
        p_c_minus_p_s = sc.sim.p_err * (sc.sim.err_ratio - 1.0)
        out.update({
            "miss_rate": round(1 - k / n, 4),
            "exposure": {"median": med, "p90": p90,
                         "median_detected": float(np.median(det)) if det.size else None},
            "seconds": {"median": _q(sec, 0.5), "p90": _q(sec, 0.9)},
            "excess_bad_events": {
                "median": None if med is None else round(med * p_c_minus_p_s, 2),
                "p90": None if p90 is None else round(p90 * p_c_minus_p_s, 2),
            } if sc.primary == "errors" else None,
            "oracle_n": None if oracle is None else round(oracle, 1),
            "efficiency": None if (med is None or not oracle) else round(med / oracle, 3),
            "oracle_n_alpha_total": None if oracle_total_alpha is None
            else round(oracle_total_alpha, 1),
            "efficiency_alpha_total": None if (med is None or not oracle_total_alpha)
            else round(med / oracle_total_alpha, 3),
        })
    guards: dict[str, int] = {}
    for r in rs:
        if r.guard:
            guards[r.guard] = guards.get(r.guard, 0) + 1
    if guards:
        out["fired_by"] = guards
    out["config"] = {"method": m.config(), "scenario": {
        "file": sc.path, "guards": list(sc.guards), "warmup_s": sc.warmup_s,
        "primary": sc.primary, "sim": dataclasses.asdict(sc.sim)}}
    out["seeds"] = {"suite_seed": suite_seed, "run_indices": [rs[0].run_index, rs[-1].run_index],
                    "seed_sequence": "SeedSequence([suite_seed, crc32(name), run_index])"}
    out["versions"] = versions()
    return out
