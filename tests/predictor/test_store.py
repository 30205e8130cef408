import numpy as np
import pytest

from predictor.bundle import ModelBundle
from predictor.examples import Example
from predictor.features import FeatureSpec
from predictor.fit import fit_models
from predictor.store import ModelStore, load_seed, publish


def _bundle(seed: int = 0) -> ModelBundle:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(60, 8))
    y = np.expm1(3 + x[:, 0]).clip(1, 600).astype(int)
    ex = [
        Example(int(v), 512.0, v >= 512, 100.0, {"layers": [3], "last": [row], "mean": [row]})
        for v, row in zip(y, x, strict=True)
    ]
    bundle = fit_models(ex, FeatureSpec(3, "last"))
    bundle.scores, bundle.choice = {"ridge": 0.6, "ordinal": 0.5, "heuristic": 0.1}, "ridge"
    return bundle


def test_bundle_round_trips_through_json():
    b = _bundle()
    again = ModelBundle.from_json(b.to_json())
    x = np.random.default_rng(1).normal(size=(5, 8))
    for kind in ("ridge", "ordinal"):
        np.testing.assert_allclose(getattr(again, kind).predict(x), getattr(b, kind).predict(x), rtol=1e-5)
    assert again.choice == "ridge" and again.hidden_model().kind == "ridge"


def test_bundle_rejects_unknown_format_and_bad_arrays():
    with pytest.raises(ValueError):
        ModelBundle.from_json('{"format": 99}')
    text = _bundle().to_json().replace('"dtype": "float32"', '"dtype": "object"', 1)
    with pytest.raises(ValueError):
        ModelBundle.from_json(text)


async def test_published_versions_reach_every_store_and_broken_ones_are_skipped(redis_client):
    store = ModelStore(redis_client, refresh_s=0.0)
    assert await store.current() is None and store.version == -1
    assert await publish(redis_client, _bundle()) == 1
    assert (await store.current()).version == 1
    await redis_client.incr("skipjoin:predictor:model:version")
    await redis_client.set("skipjoin:predictor:model", b"not json at all")
    assert (await store.current()).version == 1  # kept the last good one
    assert await publish(redis_client, _bundle(2)) == 3
    assert (await store.current()).version == 3


async def test_store_checks_redis_at_most_every_refresh_interval(redis_client):
    store = ModelStore(redis_client, refresh_s=3600)
    assert await store.current() is None
    await publish(redis_client, _bundle())
    assert await store.current() is None  # not yet looked again
    assert await store.refresh() and store.version == 1


def test_shipped_seed_model_loads_and_predicts():
    seed = load_seed()
    if seed is None:
        pytest.skip("predictor/data/initial_model.json not built yet")
    assert seed.version == 0 and seed.dim == 576 and seed.choice in ("ridge", "ordinal")
    length, p90 = seed.predict_hidden(np.zeros(576))
    assert 1 <= length <= p90
