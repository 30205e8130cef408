"""Noisy length predictions with a target rank quality (Kendall's tau against the true length).

    predicted = output_len * exp(sigma * Z),  Z ~ N(0, 1)

sigma is found by bisection so that tau(predicted, output_len) on the workload hits the target:
tau = 1 is the exact length, tau = 0 a prediction independent of the truth (a shuffle of the
true lengths, so its distribution stays right while its ranking carries no information).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau

from bench.workloads import Workload

_SAMPLE = 4000


def _tau(out: np.ndarray, sigma: float, z: np.ndarray) -> float:
    return float(kendalltau(out, out * np.exp(sigma * z)).statistic)


def sigma_for_tau(out: np.ndarray, tau: float, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    sample = rng.choice(out, min(len(out), _SAMPLE), replace=False).astype(float)
    z = rng.standard_normal(len(sample))
    lo, hi = 0.0, 1.0
    while _tau(sample, hi, z) > tau and hi < 1e3:
        hi *= 2
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _tau(sample, mid, z) > tau else (lo, mid)
    return (lo + hi) / 2


def with_predictions(w: Workload, tau: float | None, seed: int = 0) -> Workload:
    """Attach predictions of quality `tau` (None: no prediction at all, size-blind)."""
    if tau is None:
        return w.replace(predicted=np.full(len(w), np.nan))
    if not 0.0 <= tau <= 1.0:
        raise ValueError("tau must be in [0, 1]")
    out = w.output_len.astype(float)
    rng = np.random.default_rng(seed + 1)
    if tau >= 1.0:
        return w.replace(predicted=out.copy())
    if tau <= 0.0:
        return w.replace(predicted=rng.permutation(out))
    sigma = sigma_for_tau(w.output_len, tau, seed)
    return w.replace(predicted=np.maximum(out * np.exp(sigma * rng.standard_normal(len(w))), 1.0))


def measured_tau(w: Workload) -> float:
    ok = ~np.isnan(w.predicted)
    idx = np.flatnonzero(ok)[:_SAMPLE]
    return float(kendalltau(w.output_len[idx], w.predicted[idx]).statistic) if len(idx) > 1 else float("nan")
