"""Is the length prediction worth using? Rank correlation of recent predictions with the truth.

An uninformative prediction is worse than none: it scatters requests across levels at random
and orders them by noise, which costs tail latency for no mean gain. So the policy checks, from
the requests it finished, how well predicted lengths rank the real ones (Spearman's rho over a
sliding window) and ignores predictions while that is below `min_rho`.
"""

from __future__ import annotations

from collections import deque


def _ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=xs.__getitem__)
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):  # ties share their mean rank
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(xs: list[float], ys: list[float]) -> float:
    rx, ry = _ranks(xs), _ranks(ys)
    n = len(xs)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / (vx * vy) ** 0.5 if vx > 0 and vy > 0 else 0.0


class PredictionTrust:
    def __init__(self, min_rho: float = 0.2, window: int = 512, min_pairs: int = 64, every: int = 32):
        self.min_rho, self.min_pairs, self.every = min_rho, min_pairs, every
        self.pairs: deque[tuple[float, float]] = deque(maxlen=window)
        self.rho: float | None = None  # None until `min_pairs` finished requests had a prediction
        self.trusted = True  # use predictions until shown uninformative (read every key: a field)
        self._since = 0

    def observe(self, predicted: float, actual: int) -> None:
        self.pairs.append((predicted, float(actual)))
        self._since += 1
        if len(self.pairs) >= self.min_pairs and (self.rho is None or self._since >= self.every):
            xs, ys = zip(*self.pairs, strict=True)
            self.rho = spearman(list(xs), list(ys))
            self.trusted = self.rho >= self.min_rho
            self._since = 0

    def retune(self, min_rho: float) -> None:
        """A new threshold (a live knob change), judged at once on the correlation measured so far."""
        self.min_rho = min_rho
        if self.rho is not None:
            self.trusted = self.rho >= min_rho
