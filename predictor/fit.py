"""Fit the candidate models on examples and rank them on held-out ones (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from predictor.bundle import ModelBundle
from predictor.calibrator import GuessCalibrator
from predictor.choose import choose
from predictor.config import PredictorConfig
from predictor.examples import Example
from predictor.features import FeatureSpec
from predictor.metrics import kendall
from predictor.ordinal import OrdinalLength
from predictor.ridge import RidgeLength

MIN_HIDDEN = 20  # fewer examples with a hidden state: no hidden-state model
MIN_GUESSES = 20


def matrix(examples: Sequence[Example], spec: FeatureSpec) -> tuple[np.ndarray | None, np.ndarray]:
    """Feature rows for the examples that have this layer, and their indices."""
    rows, keep = [], []
    for i, e in enumerate(examples):
        v = spec.vector(e.hidden) if e.hidden is not None else None
        if v is not None:
            rows.append(v)
            keep.append(i)
    if not rows or len({len(r) for r in rows}) != 1:
        return None, np.array([], int)
    return np.vstack(rows), np.array(keep)


def _targets(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.array([e.output_tokens for e in examples], float),
        np.array([e.cap for e in examples], float),
        np.array([e.capped for e in examples], bool),
    )


def fit_models(
    examples: Sequence[Example],
    spec: FeatureSpec,
    ordinal_c: float = 0.01,
    weights: np.ndarray | None = None,
    alphas: np.ndarray | None = None,
) -> ModelBundle:
    """Ridge, ordinal and guess calibrator, each where there is enough data for it. `weights`
    (one per example) lets recent records count more; `alphas` fixes ridge's candidates."""
    bundle = ModelBundle(feature=spec, trained_on=len(examples))
    x, idx = matrix(examples, spec)
    if x is not None and len(idx) >= MIN_HIDDEN:
        y, cap, capped = _targets([examples[i] for i in idx])
        w = None if weights is None else np.asarray(weights, float)[idx]
        extra = {} if alphas is None else {"alphas": alphas}
        bundle.ridge = RidgeLength.fit(x, y, capped, weight=w, **extra)
        bundle.ordinal = OrdinalLength.fit(x, y, cap, capped, c=ordinal_c, weight=w)
    guessed = [e for e in examples if e.guess is not None]
    if len(guessed) >= MIN_GUESSES:
        y, _, _ = _targets(guessed)
        bundle.guess = GuessCalibrator.fit(np.array([e.guess for e in guessed]), y)
    asked = [e for e in examples if e.asked]
    bundle.guess_parse_rate = len([e for e in asked if e.guess is not None]) / len(asked) if asked else 0.0
    return bundle


def candidate_predictions(bundle: ModelBundle, examples: Sequence[Example]) -> dict[str, np.ndarray]:
    """What each candidate would answer for each example; where its input is missing, the heuristic
    answers (as it does live)."""
    base = np.array([e.heuristic for e in examples], float)
    out = {"heuristic": base}
    x, idx = matrix(examples, bundle.feature)
    for model in (bundle.ridge, bundle.ordinal):
        if model is not None and x is not None and x.shape[1] == len(model.mu):
            pred = base.copy()
            pred[idx] = model.predict(x)[0]
            out[model.kind] = pred
    if bundle.guess is not None:
        pred = base.copy()
        has = [i for i, e in enumerate(examples) if e.guess is not None]
        if has:
            pred[has] = bundle.guess.predict(np.array([examples[i].guess for i in has]))[0]
        out["guess"] = pred
    return out


def rank_candidates(
    bundle: ModelBundle, held_out: Sequence[Example], config: PredictorConfig, incumbent: str = "heuristic"
) -> ModelBundle:
    """Scores every candidate by Kendall's tau on `held_out`; `bundle.choice` becomes the incumbent
    unless a challenger beats it clearly (predictor.choose)."""
    actual = np.array([e.output_tokens for e in held_out], float)
    preds = candidate_predictions(bundle, held_out)
    # The guess gate reads the held-out tau, so score everything first.
    bundle.scores = {k: kendall(p, actual) for k, p in preds.items()}
    usable = bundle.guess_usable(config.question_min_parse_rate, config.question_min_kendall)
    eligible = {k: p for k, p in preds.items() if k != "guess" or usable}
    picked = choose(eligible, actual, incumbent, config.switch_margin, config.switch_confidence)
    bundle.choice, bundle.confidence, bundle.holdout_n = picked.choice, picked.confidence, picked.n
    return bundle


def fit_and_rank(
    train: Sequence[Example],
    held_out: Sequence[Example],
    spec: FeatureSpec,
    config: PredictorConfig,
    incumbent: str = "heuristic",
    weights: np.ndarray | None = None,
) -> ModelBundle:
    """Choose on held-out examples, then refit the same families on everything for serving.
    `weights`: one per example of `train + held_out`."""
    w_train = None if weights is None else np.asarray(weights, float)[: len(train)]
    ranked = rank_candidates(fit_models(train, spec, weights=w_train), held_out, config, incumbent)
    final = fit_models(list(train) + list(held_out), spec, weights=weights)
    final.scores, final.choice = ranked.scores, ranked.choice
    final.confidence, final.holdout_n = ranked.confidence, ranked.holdout_n
    return final
