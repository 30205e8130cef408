"""Ranking and error metrics of predicted vs actual lengths (pure functions over arrays)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau, spearmanr


@dataclass(frozen=True)
class Scores:
    kendall: float
    spearman: float
    mae: float  # over uncapped answers only: a capped answer's true length is unknown
    pair_acc: float  # order accuracy on pairs whose actual lengths differ by more than 2x
    n: int
    # Calibration: median |log(predicted / served)| over uncapped answers (0.69 = off by 2x).
    log_err: float = float("nan")


def kendall(pred: np.ndarray, actual: np.ndarray) -> float:
    if len(pred) < 3 or np.ptp(pred) == 0:
        return 0.0
    tau = kendalltau(pred, actual).statistic
    return 0.0 if np.isnan(tau) else float(tau)


def pair_accuracy(pred: np.ndarray, actual: np.ndarray, ratio: float = 2.0) -> float:
    a = np.maximum(np.asarray(actual, float), 1.0)
    p = np.asarray(pred, float)
    i, j = np.triu_indices(len(a), k=1)
    far = np.abs(np.log(a[i]) - np.log(a[j])) > np.log(ratio)
    if not far.any():
        return float("nan")
    right = np.sign(p[i] - p[j]) == np.sign(a[i] - a[j])
    ties = p[i] == p[j]
    return float((right[far].sum() + 0.5 * ties[far].sum()) / far.sum())


def log_error(pred: np.ndarray, actual: np.ndarray, capped: np.ndarray) -> float:
    """Median |log(predicted / served)| over answers that stopped on their own."""
    free = ~np.asarray(capped, bool)
    if not free.any():
        return float("nan")
    p, a = np.maximum(np.asarray(pred, float)[free], 1.0), np.maximum(np.asarray(actual, float)[free], 1.0)
    return float(np.median(np.abs(np.log(p / a))))


def score(pred: np.ndarray, actual: np.ndarray, capped: np.ndarray | None = None) -> Scores:
    pred, actual = np.asarray(pred, float), np.asarray(actual, float)
    capped = np.zeros(len(actual), bool) if capped is None else np.asarray(capped, bool)
    rho = spearmanr(pred, actual).statistic if len(pred) > 2 and np.ptp(pred) > 0 else 0.0
    free = ~capped
    mae = float(np.abs(pred[free] - actual[free]).mean()) if free.any() else float("nan")
    return Scores(
        kendall(pred, actual),
        float(np.nan_to_num(rho)),
        mae,
        pair_accuracy(pred, actual),
        len(pred),
        log_error(pred, actual, capped),
    )


def mean_scores(scores: list[Scores]) -> Scores:
    """Fold scores averaged (NaN folds skipped), `n` summed."""

    def avg(name: str) -> float:
        values = [getattr(s, name) for s in scores]
        return float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")

    return Scores(
        avg("kendall"), avg("spearman"), avg("mae"), avg("pair_acc"), sum(s.n for s in scores), avg("log_err")
    )
