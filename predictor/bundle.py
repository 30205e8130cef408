"""The fitted models as one versioned, JSON-serialisable bundle, and which of them `auto` trusts."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import numpy as np

from predictor.calibrator import GuessCalibrator
from predictor.features import FeatureSpec
from predictor.ordinal import OrdinalLength
from predictor.ridge import RidgeLength

HIDDEN_KINDS = ("ridge", "ordinal")
CHOICES = ("heuristic", "ridge", "ordinal", "guess")


@dataclass
class ModelBundle:
    feature: FeatureSpec
    ridge: RidgeLength | None = None
    ordinal: OrdinalLength | None = None
    guess: GuessCalibrator | None = None
    # Held-out Kendall's tau per candidate ("heuristic", "ridge", "ordinal", "guess") and the
    # question probe's parse rate: what `auto` and the guess gate decide from.
    scores: dict[str, float] = field(default_factory=dict)
    guess_parse_rate: float = 0.0
    choice: str = "heuristic"
    # How sure the held-out slice is of `choice` (predictor.choose), and its size.
    confidence: float = 0.0
    holdout_n: int = 0
    version: int = 0
    trained_on: int = 0
    created_at: float = field(default_factory=time.time)

    def __post_init__(self):
        if self.choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}")
        self.check()

    def check(self) -> None:
        """Every array the right shape and finite, so predicting can never raise: a bundle is
        applied by every gateway and engine at once (ValueError names the fault)."""
        dims = set()
        if self.ridge is not None:
            dims.add(_check_ridge(self.ridge))
        if self.ordinal is not None:
            dims.add(_check_ordinal(self.ordinal))
        if self.guess is not None:
            _arrays("guess", self.guess.x, self.guess.z)
            if self.guess.x.shape != self.guess.z.shape or self.guess.x.ndim != 1 or len(self.guess.x) == 0:
                raise ValueError("guess: x and z lengths differ")
            _numbers("guess", self.guess.q90)
        if len(dims) > 1:
            raise ValueError(f"ridge and ordinal read different feature sizes {sorted(dims)}")
        if not all(isinstance(v, float) and math.isfinite(v) for v in self.scores.values()):
            raise ValueError("scores must be finite numbers")

    @property
    def dim(self) -> int | None:
        model = self.ridge or self.ordinal
        return None if model is None else len(model.mu)

    def hidden_model(self) -> RidgeLength | OrdinalLength | None:
        """The better-ranking hidden-state model (by held-out tau), or whichever exists."""
        models = [m for m in (self.ridge, self.ordinal) if m is not None]
        return max(models, key=lambda m: self.scores.get(m.kind, 0.0), default=None)

    def predict_hidden(self, x: np.ndarray) -> tuple[float, float] | None:
        model = self.hidden_model()
        if model is None or x.shape[-1] != self.dim:
            return None
        length, p90 = model.predict(x)
        return float(length[0]), float(p90[0])

    def guess_usable(self, min_parse_rate: float, min_kendall: float) -> bool:
        return (
            self.guess is not None
            and self.guess_parse_rate >= min_parse_rate
            and self.scores.get("guess", 0.0) >= min_kendall
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": 1,
                "feature": self.feature.to_dict(),
                "models": {
                    m.kind: m.to_dict() for m in (self.ridge, self.ordinal, self.guess) if m is not None
                },
                "scores": self.scores,
                "guess_parse_rate": self.guess_parse_rate,
                "choice": self.choice,
                "confidence": self.confidence,
                "holdout_n": self.holdout_n,
                "version": self.version,
                "trained_on": self.trained_on,
                "created_at": self.created_at,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelBundle:
        """The bundle `text` holds; ValueError for anything that is not a whole, usable bundle."""
        try:
            return cls._from_json(text)
        except (KeyError, TypeError, AttributeError, IndexError, OverflowError) as exc:
            raise ValueError(f"malformed model bundle: {exc!r}") from exc

    @classmethod
    def _from_json(cls, text: str | bytes) -> ModelBundle:
        d = json.loads(text)
        if d.get("format") != 1:
            raise ValueError(f"unknown model bundle format {d.get('format')!r}")
        models = d.get("models", {})
        return cls(
            feature=FeatureSpec(**d["feature"]),
            ridge=RidgeLength.from_dict(models["ridge"]) if "ridge" in models else None,
            ordinal=OrdinalLength.from_dict(models["ordinal"]) if "ordinal" in models else None,
            guess=GuessCalibrator.from_dict(models["guess"]) if "guess" in models else None,
            scores={k: float(v) for k, v in d.get("scores", {}).items()},
            guess_parse_rate=float(d.get("guess_parse_rate", 0.0)),
            choice=d.get("choice", "heuristic"),
            confidence=float(d.get("confidence", 0.0)),
            holdout_n=int(d.get("holdout_n", 0)),
            version=int(d.get("version", 0)),
            trained_on=int(d.get("trained_on", 0)),
            created_at=float(d.get("created_at", 0.0)),
        )


def _check_ridge(r: RidgeLength) -> int:
    _arrays("ridge", r.mu, r.sd, r.w)
    if r.mu.ndim != 1 or not r.mu.shape == r.sd.shape == r.w.shape or len(r.mu) == 0 or (r.sd <= 0).any():
        raise ValueError(f"ridge: mu, sd and w must be one length, sd > 0 (weight length {r.w.shape}, "
                         f"mean {r.mu.shape})")
    _numbers("ridge", r.b, r.sigma)
    return len(r.mu)


def _check_ordinal(o: OrdinalLength) -> int:
    _arrays("ordinal", o.edges, o.mu, o.sd, o.w, o.b, o.reps)
    k, d = len(o.edges), len(o.mu)
    shapes = (o.edges.shape, o.mu.shape, o.sd.shape, o.w.shape, o.b.shape, o.reps.shape)
    if shapes != ((k,), (d,), (d,), (k, d), (k,), (k + 1,)) or min(k, d) == 0 \
            or (o.reps <= 0).any() or (o.sd <= 0).any():
        raise ValueError(f"ordinal: shapes {shapes} must be edges (k,), mu and sd (d,), w (k, d), b (k,), "
                         "reps (k+1,), with sd and reps > 0")
    return d


def _arrays(name: str, *arrays: np.ndarray) -> None:
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu" or not np.isfinite(a).all():
            raise ValueError(f"{name}: arrays must be finite numbers")


def _numbers(name: str, *values: float) -> None:
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise ValueError(f"{name}: numbers must be finite")
