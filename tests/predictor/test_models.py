"""The learned predictors on the shipped SmolLM2 measurements (predictor/data)."""

import numpy as np
import pytest

from predictor.examples import Example, load_prompt_set
from predictor.features import FeatureSpec
from predictor.fit import candidate_predictions, fit_models
from predictor.metrics import kendall, pair_accuracy, score
from predictor.ordinal import OrdinalLength
from predictor.ridge import RidgeLength


@pytest.fixture(scope="module")
def prompt_set() -> list[Example]:
    examples = load_prompt_set()
    assert len(examples) >= 300 and len({e.kind for e in examples}) >= 15
    return examples


def _split(examples, seed=0):
    order = np.random.default_rng(seed).permutation(len(examples))
    cut = int(len(examples) * 0.75)
    return [examples[i] for i in order[:cut]], [examples[i] for i in order[cut:]]


def test_hidden_state_models_rank_held_out_prompts(prompt_set):
    train, test = _split(prompt_set)
    preds = candidate_predictions(fit_models(train, FeatureSpec()), test)
    actual = np.array([e.output_tokens for e in test])
    for kind in ("ridge", "ordinal"):
        assert kendall(preds[kind], actual) > 0.4, kind
        assert kendall(preds[kind], actual) > kendall(preds["heuristic"], actual)


def test_predictions_are_lengths_with_p90_above(prompt_set):
    bundle = fit_models(prompt_set[:200], FeatureSpec())
    from predictor.fit import matrix

    x, _ = matrix(prompt_set[200:], FeatureSpec())
    for model in (bundle.ridge, bundle.ordinal):
        length, p90 = model.predict(x)
        assert (length >= 1).all() and (p90 >= length * 0.999).all()


def test_ridge_treats_capped_answers_as_at_least_the_cap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    true = np.expm1(4.5 + 1.5 * x[:, 0])
    capped = true >= 300
    y = np.minimum(true, 300)
    naive = RidgeLength.fit(x, y, np.zeros(len(y), bool), em_rounds=0)
    tobit = RidgeLength.fit(x, y, capped)
    long_ones = x[capped]
    # Ignoring censoring squeezes the long tail under the cap; the Tobit-style fit does not.
    assert np.median(tobit.predict(long_ones)[0]) > np.median(naive.predict(long_ones)[0])
    assert np.median(tobit.predict(long_ones)[0]) > 300


def test_ordinal_uses_a_capped_answer_only_for_edges_below_its_cap():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = np.where(x[:, 0] > 0, 400.0, 10.0)
    cap = np.where(x[:, 0] > 0, 50.0, 512.0)  # the long ones were all cut at 50 tokens
    capped = y > cap
    model = OrdinalLength.fit(x, np.minimum(y, cap), cap, capped, c=1.0)
    s = model.survival(np.array([[2.0, 0, 0], [-2.0, 0, 0]]))
    edges = list(model.edges)
    assert s[0, edges.index(32)] > 0.9 and s[1, edges.index(32)] < 0.1  # known: above/below 32
    length, _ = model.predict(np.array([[2.0, 0, 0], [-2.0, 0, 0]]))
    assert length[0] > 4 * length[1]


def test_metrics():
    a = np.array([1, 10, 100, 1000])
    assert kendall(a, a) == pytest.approx(1) and kendall(-a, a) == pytest.approx(-1)
    assert pair_accuracy(np.array([1, 2, 4, 3]), a) == pytest.approx(5 / 6)
    s = score(np.array([2, 10, 100, 100]), a, capped=np.array([False, False, False, True]))
    assert s.mae == pytest.approx(1 / 3) and s.n == 4
