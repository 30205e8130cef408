"""Online distribution of finished output lengths, for expected remaining work.

The mean residual life E[L - a | L > a] tells whether age predicts a long answer: it grows with age
for heavy-tailed traffic (old requests are the long ones: preempting them pays) and shrinks for
light-tailed traffic (old requests are nearly done: leave them alone). Estimating it from what the
engine really served is what lets a size-blind MLFQ do no harm.
"""

from __future__ import annotations

import bisect
import math

_EDGES = [0.0] + [round(2 ** (i / 4), 3) for i in range(0, 4 * 17)]  # 1 .. ~100k tokens, 4 bins/octave
_MIDS = [(a + b) / 2 for a, b in zip(_EDGES, _EDGES[1:], strict=False)]


class LengthStats:
    def __init__(self, prior_mean: float = 256.0, prior_weight: float = 4.0, max_count: float = 5000.0):
        self.prior_mean = prior_mean
        self.prior_weight = prior_weight  # pseudo-observations of a memoryless prior
        self.max_count = max_count  # older observations decay once this many are held
        self.counts = [0.0] * len(_MIDS)
        self.total = 0.0
        self._suffix: tuple[list[float], list[float]] | None = None  # (mass, mass*mid) from bin i on
        self._memo: dict[float, float] = {}  # mean_residual by age, until the next observation

    def observe(self, length: int) -> None:
        i = min(bisect.bisect_right(_EDGES, length) - 1, len(_MIDS) - 1)
        self.counts[max(i, 0)] += 1.0
        self.total += 1.0
        self._suffix = None
        self._memo.clear()
        if self.total > self.max_count:
            self.counts = [c / 2 for c in self.counts]
            self.total /= 2

    def mean_residual(self, age: float) -> float:
        """E[L - age | L > age], blended with a memoryless prior while data are few."""
        # Bins whose midpoint lies below age + 0.5 count half a token each; the rest come from
        # suffix totals (recomputed after an observation), so a call costs O(1), not O(bins).
        hit = self._memo.get(age)
        if hit is not None:
            return hit
        if self._suffix is None:
            self._suffix = self._suffix_sums()
        smass, swork = self._suffix
        i = max(bisect.bisect_right(_EDGES, age) - 1, 0)
        mass = work = 0.0
        while i < len(_MIDS) and _MIDS[i] < age + 0.5:
            mass += self.counts[i]
            work += self.counts[i] * 0.5
            i += 1
        mass += smass[i]
        work += swork[i] - age * smass[i]
        prior = self.prior_weight * math.exp(-age / self.prior_mean)
        out = (work + prior * self.prior_mean) / (mass + prior) if mass + prior > 0 else self.prior_mean
        self._memo[age] = out
        return out

    def _suffix_sums(self) -> tuple[list[float], list[float]]:
        mass = [0.0] * (len(_MIDS) + 2)
        work = [0.0] * (len(_MIDS) + 2)
        for i in range(len(_MIDS) - 1, -1, -1):
            mass[i] = mass[i + 1] + self.counts[i]
            work[i] = work[i + 1] + self.counts[i] * _MIDS[i]
        return mass, work
