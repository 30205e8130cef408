"""Which candidate `auto` serves: the incumbent, unless a challenger ranks the held-out slice better
by a margin, and does so in most paired bootstrap resamples (pure, no I/O).

Ten held-out records let noise decide (a coin-flip candidate often "wins" on them); resampling the
same slice for every candidate measures how sure the win is, and the margin keeps the choice from
flapping between near-equal models at every refit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictor.metrics import kendall


@dataclass(frozen=True)
class Choice:
    choice: str
    # Share of bootstrap resamples in which `choice` ranks at least as well as its closest rival
    # (the incumbent when a challenger won; 1.0 when no challenger even led by the margin).
    confidence: float
    scores: dict[str, float]  # tau per candidate on the whole held-out slice
    n: int  # held-out records


def bootstrap_taus(
    preds: dict[str, np.ndarray], actual: np.ndarray, rounds: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Tau of every candidate on the same `rounds` resamples of the held-out records."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(actual), size=(rounds, len(actual)))
    return {k: np.array([kendall(p[i], actual[i]) for i in picks]) for k, p in preds.items()}


def choose(
    preds: dict[str, np.ndarray],
    actual: np.ndarray,
    incumbent: str,
    margin: float,
    min_confidence: float,
    rounds: int = 200,
) -> Choice:
    """`preds`: each eligible candidate's predictions for the held-out records."""
    actual = np.asarray(actual, float)
    scores = {k: kendall(np.asarray(p, float), actual) for k, p in preds.items()}
    if incumbent not in preds:
        incumbent = "heuristic" if "heuristic" in preds else max(scores, key=scores.__getitem__)
    challengers = [k for k in preds if k != incumbent and scores[k] >= scores[incumbent] + margin]
    if not challengers:
        return Choice(incumbent, 1.0, scores, len(actual))
    boot = bootstrap_taus({k: preds[k] for k in [incumbent, *challengers]}, actual, rounds)
    wins = {k: float(np.mean(boot[k] > boot[incumbent])) for k in challengers}
    best = max(challengers, key=lambda k: (wins[k], scores[k]))
    if wins[best] >= min_confidence:
        return Choice(best, wins[best], scores, len(actual))
    return Choice(incumbent, 1.0 - wins[best], scores, len(actual))
