"""Shared load and latency level over time: diurnal cycle, bursts, load spikes.

Both arms see the same load. Bursts and spikes raise the arrival rate and, through
``load_latency_power``, the latency level of both arms (more load, slower requests): the
level is ``(burst factor x spike factor) ** load_latency_power``. A spike starts at Poisson
onsets (mean gap ``spike_every_s``) with load ``x spike_load`` and decays as
``exp(-(t - onset) / spike_decay_s)``; the most recent onset sets the spike factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.detection.scenario import SimConfig


@dataclass(frozen=True)
class Load:
    cfg: SimConfig
    onsets: np.ndarray  # spike onset times, sorted (empty: no spikes)

    def spike(self, t: np.ndarray) -> np.ndarray:
        """Spike load factor at ``t`` (1 outside spikes)."""
        if self.onsets.size == 0:
            return np.ones(np.shape(t))
        k = np.searchsorted(self.onsets, t, side="right") - 1
        dt = t - self.onsets[np.clip(k, 0, None)]
        decay = np.exp(-np.maximum(dt, 0.0) / self.cfg.spike_decay_s)
        return np.where(k >= 0, 1.0 + (self.cfg.spike_load - 1.0) * decay, 1.0)

    def bursts(self, t: np.ndarray) -> np.ndarray:
        f = np.ones(np.shape(t))
        for start, dur, factor in self.cfg.bursts:
            f = np.where((t >= start) & (t < start + dur), f * factor, f)
        return f

    def factor(self, t: np.ndarray) -> np.ndarray:
        """Arrival-rate multiplier at ``t``."""
        cfg = self.cfg
        f = 1.0 + cfg.diurnal_amp * np.sin(2 * np.pi * t / cfg.diurnal_period_s)
        return f * self.bursts(t) * self.spike(t)

    def max_factor(self) -> float:
        cfg = self.cfg
        return ((1.0 + abs(cfg.diurnal_amp)) * max([1.0] + [b[2] for b in cfg.bursts])
                * max(1.0, cfg.spike_load if self.onsets.size else 1.0))

    def level(self, t: np.ndarray) -> np.ndarray:
        """Latency level multiplier (both arms) from bursts and spikes."""
        p = self.cfg.load_latency_power
        if p == 0.0:
            return np.ones(np.shape(t))
        return np.power(self.bursts(t) * self.spike(t), p)


def draw_load(rng: np.random.Generator, cfg: SimConfig) -> Load:
    """Spike onsets over the whole run (drawn only when spikes are on, so scenarios without
    them keep their random stream)."""
    if cfg.spike_every_s <= 0.0:
        return Load(cfg, np.zeros(0))
    span = cfg.horizon_s + cfg.pre_canary_s
    n = rng.poisson(span / cfg.spike_every_s)
    return Load(cfg, np.sort(rng.uniform(-cfg.pre_canary_s, cfg.horizon_s, n)))
