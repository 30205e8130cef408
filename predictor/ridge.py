"""Ridge regression on log length from a hidden-state vector, with a Tobit-style fix for capped answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.linear_model import Ridge, RidgeCV

from predictor.arrays import decode_array, encode_array

_Z90 = 1.2816
_ALPHAS = np.logspace(-1, 4, 11)


@dataclass
class RidgeLength:
    """log1p(length) = w·(x - mu)/sd + b; capped answers are imputed as E[z | z > log1p(cap)]."""

    mu: np.ndarray
    sd: np.ndarray
    w: np.ndarray
    b: float
    sigma: float  # residual spread in log space (uncapped answers), for the p90
    kind = "ridge"

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        capped: np.ndarray,
        em_rounds: int = 3,
        weight: np.ndarray | None = None,
        alphas: np.ndarray = _ALPHAS,
    ) -> RidgeLength:
        mu, sd = x.mean(0), x.std(0) + 1e-6
        xs = (x - mu) / sd
        z = np.log1p(np.asarray(y, float))
        capped = np.asarray(capped, bool)
        alpha = float(RidgeCV(alphas=np.atleast_1d(alphas)).fit(xs, z, sample_weight=weight).alpha_)
        target = z.copy()
        reg = Ridge(alpha=alpha).fit(xs, target, sample_weight=weight)
        sigma = _spread(reg.predict(xs), z, capped)
        for _ in range(em_rounds if capped.any() else 0):
            pred = reg.predict(xs)
            a = (z[capped] - pred[capped]) / sigma
            # Mean of a normal truncated below at the cap: the answer ran at least that long.
            target[capped] = np.maximum(
                z[capped], pred[capped] + sigma * norm.pdf(a) / np.maximum(norm.sf(a), 1e-9)
            )
            reg = Ridge(alpha=alpha).fit(xs, target, sample_weight=weight)
            sigma = _spread(reg.predict(xs), z, capped)
        return cls(mu, sd, reg.coef_.astype(float), float(reg.intercept_), sigma)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = ((np.atleast_2d(x) - self.mu) / self.sd) @ self.w + self.b
        return np.expm1(z).clip(min=1.0), np.expm1(z + _Z90 * self.sigma).clip(min=1.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "mu": encode_array(self.mu),
            "sd": encode_array(self.sd),
            "w": encode_array(self.w),
            "b": self.b,
            "sigma": self.sigma,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RidgeLength:
        return cls(
            decode_array(d["mu"]),
            decode_array(d["sd"]),
            decode_array(d["w"]),
            float(d["b"]),
            float(d["sigma"]),
        )


def _spread(pred: np.ndarray, z: np.ndarray, capped: np.ndarray) -> float:
    free = ~capped
    resid = (z - pred)[free] if free.sum() > 2 else z - pred
    return float(max(resid.std(), 0.1))
