"""Nested cross-validation for the hidden-state predictor (pure, no I/O).

Layer 19 and the ordinal's C were once picked on the very folds that reported tau, so that tau was
optimistic. Here the inner folds (inside each outer training fold) choose the setting — layer,
pooling, model family and the ordinal's C — and only the outer folds, never seen while choosing,
report. Ridge's alpha is chosen inside each fit by efficient leave-one-out on that fit's own data
(RidgeCV), which is nested too. Inner folds are split like the outer ones: by kind for "unseen
kinds", so the choice favours settings that carry over to kinds the model never saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from predictor.examples import Example
from predictor.features import FeatureSpec
from predictor.fit import matrix
from predictor.metrics import kendall
from predictor.ordinal import OrdinalLength
from predictor.ridge import RidgeLength

Split = list[tuple[np.ndarray, np.ndarray]]
Splitter = Callable[[Sequence[Example]], Split]
ORDINAL_CS = (0.01, 0.03)


@dataclass(frozen=True)
class Setting:
    layer: int
    pool: str
    family: str  # "ridge" or "ordinal"
    c: float | None = None  # the ordinal's C (ridge: None, its alpha is chosen in the fit)

    def __post_init__(self):
        if self.family not in ("ridge", "ordinal"):
            raise ValueError("family must be 'ridge' or 'ordinal'")
        if (self.family == "ordinal") != (self.c is not None) or (self.c is not None and self.c <= 0):
            raise ValueError("an ordinal setting needs C > 0; a ridge setting takes none")

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec(self.layer, self.pool)

    def label(self) -> str:
        return f"L{self.layer} {self.pool} {self.family}" + ("" if self.c is None else f" C={self.c:g}")


def grid(layers: Sequence[int], pools: Sequence[str], cs: Sequence[float] = ORDINAL_CS) -> list[Setting]:
    if not layers or not pools:
        raise ValueError("the grid needs at least one layer and one pooling")
    return [
        s
        for layer in layers
        for pool in pools
        for s in [Setting(layer, pool, "ridge"), *(Setting(layer, pool, "ordinal", c) for c in cs)]
    ]


def fit_predict(setting: Setting, train: Sequence[Example], test: Sequence[Example]) -> np.ndarray:
    """The setting's model fit on `train`, predicting `test` (the heuristic where a feature is missing)."""
    out = np.array([e.heuristic for e in test], float)
    x, idx = matrix(train, setting.spec)
    x_test, idx_test = matrix(test, setting.spec)
    if x is None or x_test is None or len(idx) < 3:
        return out
    y = np.array([train[i].output_tokens for i in idx], float)
    cap = np.array([train[i].cap for i in idx], float)
    capped = np.array([train[i].capped for i in idx], bool)
    if setting.family == "ridge":
        model: RidgeLength | OrdinalLength = RidgeLength.fit(x, y, capped)
    else:
        model = OrdinalLength.fit(x, y, cap, capped, c=float(setting.c or 0.0))
    out[idx_test] = model.predict(x_test)[0]
    return out


def inner_choice(train: Sequence[Example], settings: Sequence[Setting], inner: Splitter) -> Setting:
    """The setting with the best mean tau over the inner folds of `train` (first listed on ties)."""
    folds = inner(train)
    mean_tau = []
    for s in settings:
        taus = []
        for fit_idx, val_idx in folds:
            val = [train[i] for i in val_idx]
            pred = fit_predict(s, [train[i] for i in fit_idx], val)
            taus.append(kendall(pred, np.array([e.output_tokens for e in val], float)))
        mean_tau.append(float(np.mean(taus)))
    return settings[int(np.argmax(mean_tau))]


@dataclass(frozen=True)
class OuterFold:
    test_idx: np.ndarray
    chosen: Setting
    pred: np.ndarray  # the chosen setting's predictions for the outer test examples


def nested_cv(
    examples: Sequence[Example], outer: Split, inner: Splitter, settings: Sequence[Setting]
) -> list[OuterFold]:
    """Per outer fold: inner folds of its training part choose, its test part is predicted."""
    folds = []
    for train_idx, test_idx in outer:
        train = [examples[i] for i in train_idx]
        chosen = inner_choice(train, settings, inner)
        pred = fit_predict(chosen, train, [examples[i] for i in test_idx])
        folds.append(OuterFold(np.asarray(test_idx), chosen, pred))
    return folds
