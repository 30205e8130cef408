"""The honest numbers of `skipjoin predictor-eval`: every predictor scored on outer folds whose
settings were chosen without them (predictor.nested_cv), with the settings each fold chose."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedKFold

from predictor.calibrator import GuessCalibrator
from predictor.config import PredictorConfig
from predictor.examples import Example
from predictor.features import FeatureSpec
from predictor.fit import MIN_GUESSES, candidate_predictions, fit_and_rank
from predictor.metrics import Scores, mean_scores, score
from predictor.nested_cv import Setting, Split, Splitter, nested_cv

SEEN, UNSEEN = "seen kinds", "unseen kinds"
AutoFn = Callable[[list[Example], list[Example], Setting], tuple[np.ndarray, str]]


def inner_splitter(split_name: str, folds: int = 3, seed: int = 1) -> Splitter:
    """Inner folds split like the outer ones: stratified by kind, or whole kinds held out."""
    if split_name not in (SEEN, UNSEEN):
        raise ValueError(f"split must be {SEEN!r} or {UNSEEN!r}")

    def split(train: Sequence[Example]) -> Split:
        kinds = np.array([e.kind for e in train])
        idx = np.zeros(len(train))
        if split_name == SEEN:
            return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(idx, kinds))
        return list(GroupKFold(folds).split(idx, groups=kinds))

    return split


def baselines(train: Sequence[Example], test: Sequence[Example]) -> dict[str, np.ndarray]:
    """Predictors with nothing to choose: prompt length, the heuristic, the calibrated guess."""
    heuristic = np.array([e.heuristic for e in test], float)
    out = {"prompt-length": np.array([e.prompt_tokens or 0 for e in test], float), "heuristic": heuristic}
    guessed = [e for e in train if e.guess is not None]
    if len(guessed) >= MIN_GUESSES:
        cal = GuessCalibrator.fit(
            np.array([e.guess for e in guessed]), np.array([e.output_tokens for e in guessed])
        )
        pred = heuristic.copy()
        has = [i for i, e in enumerate(test) if e.guess is not None]
        if has:
            pred[has] = cal.predict(np.array([test[i].guess for i in has]))[0]
        out["probe-text"] = pred
    return out


@dataclass(frozen=True)
class NestedResult:
    scores: dict[str, Scores]  # mean over outer folds, per predictor
    chosen: list[str]  # the setting each outer fold's inner folds chose
    auto_choices: dict[str, int]  # what auto served, counted over outer folds


def evaluate_nested(
    examples: Sequence[Example],
    outer: Split,
    inner: Splitter,
    settings: Sequence[Setting],
    auto: AutoFn | None = None,
) -> NestedResult:
    per: dict[str, list[Scores]] = {}
    choices: dict[str, int] = {}
    folds = nested_cv(examples, outer, inner, settings)
    for fold, (train_idx, _) in zip(folds, outer, strict=True):
        train = [examples[i] for i in train_idx]
        test = [examples[i] for i in fold.test_idx]
        preds = baselines(train, test) | {"probe-hidden (nested)": fold.pred}
        if auto is not None:
            preds["auto"], choice = auto(train, test, fold.chosen)
            choices[choice] = choices.get(choice, 0) + 1
        actual = np.array([e.output_tokens for e in test], float)
        capped = np.array([e.capped for e in test], bool)
        for name, p in preds.items():
            per.setdefault(name, []).append(score(p, actual, capped))
    return NestedResult(
        {k: mean_scores(v) for k, v in per.items()}, [f.chosen.label() for f in folds], choices
    )


def auto_with(config: PredictorConfig) -> AutoFn:
    """auto as the trainer runs it, on the layer and pooling the inner folds chose."""
    return lambda train, test, chosen: auto_predictions(train, test, chosen.spec, config)


def auto_predictions(
    train: list[Example], test: list[Example], spec: FeatureSpec, config: PredictorConfig
) -> tuple[np.ndarray, str]:
    """auto chooses on a held-out quarter of the training fold, as the trainer does live."""
    order = np.random.default_rng(0).permutation(len(train))
    cut = int(len(train) * 0.75)
    auto = fit_and_rank([train[i] for i in order[:cut]], [train[i] for i in order[cut:]], spec, config)
    return candidate_predictions(auto, test)[auto.choice], auto.choice
