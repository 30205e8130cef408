import json

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


def _tampered(bundle: ModelBundle, model: str, name: str, value) -> str:
    """`bundle`'s JSON with one array of one model replaced (as a bad trainer or a person could)."""
    from predictor.arrays import encode_array

    d = json.loads(bundle.to_json())
    d["models"][model][name] = encode_array(np.asarray(value, float))
    return json.dumps(d)


@pytest.mark.parametrize("model,name,value", [
    ("ridge", "w", np.ones(7)),  # weight length differs from the mean's: predicting would raise
    ("ridge", "mu", np.full(8, np.nan)),
    ("ridge", "sd", np.zeros(8)),
    ("ordinal", "w", np.ones((8, 5))),
    ("ordinal", "reps", np.ones(3)),
])
def test_a_bundle_that_cannot_predict_is_refused(model, name, value):
    with pytest.raises(ValueError, match=model):
        ModelBundle.from_json(_tampered(_bundle(), model, name, value))


@pytest.mark.parametrize("raw", [b"[]", b'{"format": 1}', b'{"format": 1, "feature": 3}', b"null"])
def test_malformed_bundles_are_value_errors(raw):
    with pytest.raises(ValueError):
        ModelBundle.from_json(raw)


BAD_MODELS = [b"not json", b"[1, 2]", _tampered(_bundle(), "ridge", "w", np.ones(7)).encode()]


@pytest.mark.parametrize("raw", BAD_MODELS)
async def test_gateways_and_engines_keep_the_last_good_bundle_and_report_the_bad_one(
        raw, redis_client, redis_server):
    from engine.vllm.hidden_predict import EngineModel

    store = ModelStore(redis_client, refresh_s=0.0)
    engine = EngineModel(redis_server.url, seed=None)
    await publish(redis_client, _bundle())
    assert (await store.current()).version == 1 and engine.refresh() and engine.version == 1
    await redis_client.incr("skipjoin:predictor:model:version")
    await redis_client.set("skipjoin:predictor:model", raw)
    assert (await store.current()).version == 1 and store.rejected["version"] == 2
    assert not engine.refresh() and engine.version == 1 and engine.rejected["version"] == 2
    x = np.random.default_rng(3).normal(size=8)
    assert engine.predict({"layers": [3], "last": [x.tolist()]}, None).predicted >= 1  # still predicts
    await redis_client.set("skipjoin:predictor:model:version", b"garbage")
    assert (await store.current()).version == 1 and not engine.refresh() and engine.version == 1
    await redis_client.set("skipjoin:predictor:model:version", 2)
    assert await publish(redis_client, _bundle(2)) == 3
    assert (await store.current()).version == 3 and store.rejected is None
    assert engine.refresh() and engine.version == 3 and engine.rejected is None


def test_the_prefix_memory_keeps_the_uncapped_prediction(redis_server):
    """One `max_tokens: 1` request must not make every later request with its prefix look 1 token long."""
    import redis

    from engine.vllm.hidden_predict import EngineModel, write
    from predictor.prefix_memory import PrefixMemory, memory_key
    from wire.xargs import PREDICT, PREDICT_PREFIX

    engine = EngineModel(None, seed=_bundle())
    hidden = {"layers": [3], "last": [np.random.default_rng(4).normal(size=8).tolist()]}
    full = engine.predict(hidden, None)
    capped = engine.predict(hidden, 1)
    assert capped.predicted == 1 and full.predicted > 1  # the policy sees the cap; the memory must not
    prefix = PrefixMemory(None, 1).prefix("a shared system prompt")
    r = redis.Redis.from_url(redis_server.url)
    pipe = r.pipeline(transaction=False)
    write(pipe, {PREDICT: "job1", PREDICT_PREFIX: prefix}, hidden, capped)
    write(pipe, {PREDICT: "job2", PREDICT_PREFIX: "../../skipjoin:queue"}, hidden, capped)  # names no key
    pipe.execute()
    stored = json.loads(r.get(memory_key(prefix, capped.version)))
    assert stored["length"] == pytest.approx(full.predicted)
    assert r.keys("*skipjoin:queue*") == []
    r.close()
