"""Scenario = simulator knobs + which guards are active + run counts, loaded from YAML.

A scenario file is data only::

    name: err-x2-med
    truth: effect            # or "null"
    primary: errors          # metric the oracle sample size is computed for
    seeds: 300
    guards: [errors, latency, tail]
    warmup_s: 0
    sim: {rate: 100, weight: 0.1, err_ratio: 2.0}

Unknown keys are errors (never silently ignored), in the file and in ``sim``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GUARDS = ("errors", "latency", "tail", "drift", "disagreement", "accuracy")


@dataclass(frozen=True)
class SimConfig:
    """Knobs of the request-stream simulator (section 2.1 of STATISTICS.md)."""

    horizon_s: float = 3600.0
    pre_canary_s: float = 300.0  # stable-only traffic before the canary starts (t < 0)
    rate: float = 100.0  # total requests per second
    weight: float | tuple[tuple[float, float], ...] = 0.1  # constant, or steps ((t_s, w), ...)
    diurnal_amp: float = 0.0  # load multiplier 1 + amp * sin(2 pi t / period)
    diurnal_latency_amp: float = 0.0  # latency multiplier, same phase, both arms
    diurnal_error_amp: float = 0.0  # stable error-probability multiplier, both arms
    diurnal_period_s: float = 3600.0
    bursts: tuple[tuple[float, float, float], ...] = ()  # (start_s, duration_s, rate factor)
    # shared load spikes: onsets at Poisson times (mean gap spike_every_s, 0 = none), load
    # x spike_load at onset decaying exp(-dt / spike_decay_s); both arms' latency level is
    # load ** load_latency_power (bursts and spikes: more load, higher level)
    spike_every_s: float = 0.0
    spike_decay_s: float = 5.0
    spike_load: float = 1.0
    load_latency_power: float = 0.0
    lat_dist: str = "lognormal"  # or "pareto" (classic Pareto, median lat_median_ms)
    pareto_shape: float = 2.0  # tail index (< 2: infinite variance)
    unit: str = "request"  # "request" or "session" (sticky routing)
    sticky: str = "draw"  # "draw": arm drawn once per session; "hash": the router's rendezvous
    #                       hashing (RoutingTable.choose(u, key=...)), keys move when w changes
    session_mean: float = 20.0  # mean requests per session (geometric)
    session_gap_s: float = 2.0  # mean gap between requests of a session
    session_latency_sd: float = 0.3  # per-session log-latency random effect
    session_error_shape: float = 2.0  # per-session error multiplier ~ Gamma(k, 1/k)
    p_err: float = 0.005
    lat_median_ms: float = 100.0
    lat_sigma: float = 0.6
    score_a: float = 2.0
    score_b: float = 5.0
    accuracy: float = 0.9
    label_frac: float = 0.2
    label_delay_s: float = 300.0
    prob_kappa: float = 10.0  # predicted-label probability ~ Beta(k acc, k (1 - acc)), calibrated
    ml: bool = False  # generate predictions, labels, shadow disagreement
    # canary deltas (ground truth)
    err_ratio: float = 1.0
    lat_mult: float = 1.0
    lat_add_ms: float = 0.0
    tail_frac: float = 0.0
    tail_mult: float = 1.0
    warmup_amp: float = 0.0
    warmup_tau_s: float = 60.0
    drift_s: float = 0.0
    acc_drop: float = 0.0
    disagree_rate: float = 0.05
    # deployed event path: requests complete at arrival + latency on one of ``replicas``
    # routers, which record at completion; judges get events released below the watermark
    deployed: bool = False
    tick_s: float = 1.0
    replicas: int = 2
    # trace replay
    trace: str | None = None
    trace_synth: tuple[tuple[str, Any], ...] | None = None  # synthesise a trace once (kwargs)
    resample: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    truth: str = "null"  # "null" or "effect"
    primary: str = "errors"
    seeds: int = 500
    guards: tuple[str, ...] = ("errors", "latency", "tail")
    warmup_s: float = 0.0
    description: str = ""
    sim: SimConfig = field(default_factory=SimConfig)
    path: str = ""

    def with_horizon(self, horizon_s: float) -> Scenario:
        return dataclasses.replace(self, sim=dataclasses.replace(self.sim, horizon_s=horizon_s))


def _freeze(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple((k, _freeze(x)) for k, x in v.items())
    return v


def _check_keys(what: str, given: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ValueError(f"{what}: unknown keys {unknown}")


def scenario_from_dict(d: dict[str, Any], path: str = "") -> Scenario:
    top = {f.name for f in dataclasses.fields(Scenario)} - {"path"}
    _check_keys(f"scenario {path or d.get('name')}", d, top)
    sim_d = dict(d.get("sim") or {})
    sim_keys = {f.name for f in dataclasses.fields(SimConfig)}
    _check_keys(f"scenario {d.get('name')}.sim", sim_d, sim_keys)
    sim = SimConfig(**{k: _freeze(v) for k, v in sim_d.items()})
    guards = tuple(d.get("guards", ("errors", "latency", "tail")))
    bad = [g for g in guards if g not in GUARDS]
    if bad:
        raise ValueError(f"scenario {d.get('name')}: unknown guards {bad}; known {list(GUARDS)}")
    if d.get("truth", "null") not in ("null", "effect"):
        raise ValueError(f"scenario {d.get('name')}: truth must be null|effect, got {d['truth']!r}")
    rest = {k: v for k, v in d.items() if k not in ("sim", "guards")}
    return Scenario(sim=sim, guards=guards, path=path, **rest)


def load_scenario(path: str | Path) -> Scenario:
    with open(path) as fh:
        d = yaml.safe_load(fh)
    return scenario_from_dict(d, str(path))


def scenario_dir() -> Path:
    return Path(__file__).parent / "scenarios"


def all_scenarios() -> list[Scenario]:
    return [load_scenario(p) for p in sorted(scenario_dir().glob("*.yaml"))]
