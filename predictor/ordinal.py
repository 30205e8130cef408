"""Ordinal length model: one logistic classifier per bucket edge, P(length > edge | hidden state).

Capped answers are censored, and this shape handles them exactly: an answer cut at `cap` is known
to exceed every edge below the cap and says nothing about the edges above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from predictor.arrays import decode_array, encode_array

EDGES = (8, 16, 32, 64, 128, 256, 384, 512)


@dataclass
class OrdinalLength:
    edges: np.ndarray  # bucket edges in tokens, increasing
    mu: np.ndarray
    sd: np.ndarray
    w: np.ndarray  # (len(edges), dim)
    b: np.ndarray  # (len(edges),)
    reps: np.ndarray  # representative length of each of the len(edges)+1 buckets
    kind = "ordinal"

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        cap: np.ndarray,
        capped: np.ndarray,
        c: float = 0.01,
        edges: tuple[int, ...] = EDGES,
        weight: np.ndarray | None = None,
    ) -> OrdinalLength:
        y, cap, capped = np.asarray(y, float), np.asarray(cap, float), np.asarray(capped, bool)
        mu, sd = x.mean(0), x.std(0) + 1e-6
        xs = (x - mu) / sd
        w, b = np.zeros((len(edges), x.shape[1])), np.zeros(len(edges))
        for k, edge in enumerate(edges):
            known = ~capped | (cap > edge)  # a capped answer is known to exceed the edges below its cap
            above = y[known] > edge
            if above.all() or not above.any():
                b[k] = 20.0 if above.all() else -20.0  # constant classifier
                continue
            w_known = None if weight is None else np.asarray(weight, float)[known]
            clf = LogisticRegression(C=c, max_iter=2000).fit(xs[known], above, sample_weight=w_known)
            w[k], b[k] = clf.coef_[0], clf.intercept_[0]
        return cls(np.asarray(edges, float), mu, sd, w, b, _bucket_reps(y, np.asarray(edges, float)))

    def survival(self, x: np.ndarray) -> np.ndarray:
        """P(length > edge_k), made non-increasing in k."""
        logits = ((np.atleast_2d(x) - self.mu) / self.sd) @ self.w.T + self.b
        s = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
        return np.minimum.accumulate(s, axis=1)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self.survival(x)
        ones, zeros = np.ones((len(s), 1)), np.zeros((len(s), 1))
        probs = np.hstack([ones, s]) - np.hstack([s, zeros])  # bucket probabilities
        length = np.exp(probs @ np.log(self.reps))  # geometric mean over buckets: a smooth ranking score
        p90_bucket = (s > 0.1).sum(axis=1)  # first bucket whose upper tail is below 10 %
        return length, self.reps[p90_bucket] if len(self.reps) else length

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            **{k: encode_array(getattr(self, k)) for k in ("edges", "mu", "sd", "w", "b", "reps")},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OrdinalLength:
        return cls(*(decode_array(d[k]) for k in ("edges", "mu", "sd", "w", "b", "reps")))


def _bucket_reps(y: np.ndarray, edges: np.ndarray) -> np.ndarray:
    bounds = np.concatenate([[0.0], edges, [edges[-1] * 2]])
    reps = []
    for k in range(len(edges) + 1):
        inside = y[(y > bounds[k]) & (y <= bounds[k + 1])] if k < len(edges) else y[y > edges[-1]]
        # Empty buckets get their geometric middle; the top bucket at least its lower edge.
        mid = np.sqrt(max(bounds[k], 1.0) * bounds[k + 1])
        reps.append(float(np.median(inside)) if len(inside) else mid)
    reps[-1] = max(reps[-1], float(edges[-1]))
    return np.asarray(reps)
