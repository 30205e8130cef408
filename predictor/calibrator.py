"""Isotonic map from the question probe's raw guess to a length, and how far to trust it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

from predictor.arrays import decode_array, encode_array


@dataclass
class GuessCalibrator:
    x: np.ndarray  # isotonic knots: log1p(raw guess) ...
    z: np.ndarray  # ... -> log1p(length)
    q90: float  # 90th percentile of the log residual
    kind = "guess"

    @classmethod
    def fit(cls, guess: np.ndarray, y: np.ndarray) -> GuessCalibrator:
        gx, z = np.log1p(np.asarray(guess, float)), np.log1p(np.asarray(y, float))
        iso = IsotonicRegression(out_of_bounds="clip").fit(gx, z)
        resid = z - iso.predict(gx)
        return cls(
            iso.X_thresholds_.astype(float), iso.y_thresholds_.astype(float), float(np.quantile(resid, 0.9))
        )

    def predict(self, guess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = np.interp(np.log1p(np.asarray(guess, float)), self.x, self.z)
        return np.expm1(z).clip(min=1.0), np.expm1(z + max(self.q90, 0.0)).clip(min=1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "x": encode_array(self.x), "z": encode_array(self.z), "q90": self.q90}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GuessCalibrator:
        return cls(decode_array(d["x"]), decode_array(d["z"]), float(d["q90"]))
