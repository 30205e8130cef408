"""Nested CV: inner folds choose the setting without seeing the outer test fold, and the report
carries tau, pair accuracy and calibration."""

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold

from predictor.config import PredictorConfig
from predictor.examples import Example
from predictor.metrics import log_error
from predictor.nested_cv import Setting, grid, inner_choice, nested_cv
from predictor.nested_report import SEEN, UNSEEN, auto_with, evaluate_nested, inner_splitter

DIM = 8


def examples(n: int = 240, informative_layer: int = 2, seed: int = 0) -> list[Example]:
    """Two layers; only `informative_layer` carries the length (its last token, not its mean)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=DIM)
    out = []
    for i in range(n):
        signal, noise = rng.normal(size=DIM), rng.normal(size=DIM)
        length = int(np.clip(np.expm1(4 + 0.9 * signal @ w / np.sqrt(DIM) + rng.normal(0, 0.2)), 1, 512))
        last = [signal, noise] if informative_layer == 1 else [noise, signal]
        hidden = {"layers": [1, 2], "last": np.stack(last), "mean": rng.normal(size=(2, DIM))}
        out.append(
            Example(
                length, 512.0, length >= 512, 120.0, hidden, kind=f"k{i % 6}", id=str(i), prompt_tokens=20
            )
        )
    return out


def test_the_inner_folds_find_the_informative_layer_and_pooling():
    data = examples(informative_layer=1)
    settings = grid([1, 2], ["last", "mean"], cs=(0.03,))
    chosen = inner_choice(data, settings, inner_splitter(SEEN))
    assert (chosen.layer, chosen.pool) == (1, "last")


def test_the_outer_test_fold_never_reaches_the_choice():
    data = examples()
    seen = []

    def spying_inner(train):
        seen.append({e.id for e in train})
        return inner_splitter(UNSEEN)(train)

    outer = list(GroupKFold(3).split(np.zeros(len(data)), groups=[e.kind for e in data]))
    folds = nested_cv(data, outer, spying_inner, grid([1, 2], ["last"], cs=(0.03,)))
    for fold, train_ids in zip(folds, seen, strict=True):
        assert not train_ids & {data[i].id for i in fold.test_idx}
        assert fold.chosen.layer == 2 and len(fold.pred) == len(fold.test_idx)


def test_the_report_scores_every_predictor_with_pairs_and_calibration():
    data = examples()
    outer = list(GroupKFold(3).split(np.zeros(len(data)), groups=[e.kind for e in data]))
    config = PredictorConfig(use_seed_data=False)
    result = evaluate_nested(
        data, outer, inner_splitter(UNSEEN), grid([1, 2], ["last"], cs=(0.03,)), auto_with(config)
    )
    nested = result.scores["probe-hidden (nested)"]
    assert nested.kendall > 0.6 and nested.pair_acc > 0.85 and nested.log_err < 0.6
    assert result.scores["heuristic"].kendall == 0.0 and result.scores["heuristic"].log_err > nested.log_err
    assert len(result.chosen) == 3 and sum(result.auto_choices.values()) == 3


def test_log_error_is_over_uncapped_answers():
    pred, actual = np.array([200.0, 50.0, 10.0]), np.array([100.0, 100.0, 512.0])
    assert log_error(pred, actual, np.array([False, False, True])) == pytest.approx(np.log(2))


def test_settings_are_validated():
    with pytest.raises(ValueError):
        Setting(1, "last", "ordinal")
    with pytest.raises(ValueError):
        Setting(1, "last", "ridge", 0.1)
    with pytest.raises(ValueError):
        grid([], ["last"])
    with pytest.raises(ValueError):
        inner_splitter("all kinds")
