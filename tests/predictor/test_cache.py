import asyncio
import json

import pytest

from predictor.base import Prediction, PredictRequest
from predictor.cache import CachedPredictor, prompt_hash


class CountingPredictor:
    """A real (if trivial) predictor that counts how often it is asked."""

    name = "counting"

    def __init__(self):
        self.calls = 0

    async def predict(self, req: PredictRequest) -> Prediction:
        self.calls += 1
        return Prediction(
            300.0, 700.0, self.name, {"hidden": {"layers": [14]}, "max_tokens_seen": req.max_tokens}
        )


async def test_identical_prompts_are_answered_from_redis(redis_client):
    inner = CountingPredictor()
    cached = CachedPredictor(inner, redis_client, ttl_s=60)
    req = PredictRequest("hello", [{"role": "user", "content": "hello"}], max_tokens=100, model="m")
    first = await cached.predict(req)
    second = await cached.predict(PredictRequest("hello", [{"role": "user", "content": "hello"}], 1000, "m"))
    assert inner.calls == 1
    # Cached uncapped, capped per request.
    assert (first.length, first.p90) == (100, 100) and (second.length, second.p90) == (300, 700)
    assert first.features["max_tokens_seen"] is None and second.features["cache_hit"] is True
    ttl = await redis_client.pttl(await cached.key(req))
    assert 0 < ttl <= 60_000
    assert json.loads(await redis_client.get(await cached.key(req)))["source"] == "counting"


async def test_different_prompt_or_model_misses(redis_client):
    inner = CountingPredictor()
    cached = CachedPredictor(inner, redis_client, ttl_s=60)
    await cached.predict(PredictRequest("a", model="m"))
    await cached.predict(PredictRequest("b", model="m"))
    await cached.predict(PredictRequest("a", model="other"))
    assert inner.calls == 3


async def test_entries_expire(redis_client):
    inner = CountingPredictor()
    cached = CachedPredictor(inner, redis_client, ttl_s=0.05)
    await cached.predict(PredictRequest("a"))
    await asyncio.sleep(0.1)
    await cached.predict(PredictRequest("a"))
    assert inner.calls == 2


def test_prompt_hash_depends_on_conversation_not_on_max_tokens():
    a = PredictRequest("x", [{"role": "user", "content": "x"}], 10)
    assert prompt_hash(a) == prompt_hash(PredictRequest("x", [{"role": "user", "content": "x"}], 99))
    assert prompt_hash(a) != prompt_hash(PredictRequest("x", [{"role": "user", "content": "y"}], 10))
    with pytest.raises(ValueError):
        CachedPredictor(CountingPredictor(), None, ttl_s=0)


class FailingProbePredictor(CountingPredictor):
    async def predict(self, req: PredictRequest) -> Prediction:
        self.calls += 1
        return Prediction(120.0, 300.0, "heuristic", {"prefill_error": "ConnectTimeout"})


async def test_fallbacks_after_a_failed_probe_are_not_cached(redis_client):
    inner = FailingProbePredictor()
    cached = CachedPredictor(inner, redis_client, ttl_s=60)
    await cached.predict(PredictRequest("a"))
    await cached.predict(PredictRequest("a"))
    assert inner.calls == 2


async def test_a_newly_published_model_version_misses_the_cache(redis_client):
    from predictor.bundle import ModelBundle
    from predictor.features import FeatureSpec
    from predictor.store import ModelStore, publish

    inner = CountingPredictor()
    store = ModelStore(redis_client, refresh_s=0.001)
    cached = CachedPredictor(inner, redis_client, ttl_s=3600, store=store)
    await publish(redis_client, ModelBundle(FeatureSpec()))
    await cached.predict(PredictRequest("a"))
    await cached.predict(PredictRequest("a"))
    assert inner.calls == 1
    await publish(redis_client, ModelBundle(FeatureSpec()))
    await asyncio.sleep(0.01)
    await cached.predict(PredictRequest("a"))
    assert inner.calls == 2 and store.version == 2


class SkippingPredictor(CountingPredictor):
    async def predict(self, req: PredictRequest) -> Prediction:
        self.calls += 1
        return Prediction(120.0, 300.0, "heuristic", {"probe_skipped": "idle"})


async def test_answers_without_a_probe_are_not_cached(redis_client):
    inner = SkippingPredictor()
    cached = CachedPredictor(inner, redis_client, ttl_s=60)
    await cached.predict(PredictRequest("a"))
    await cached.predict(PredictRequest("a"))
    assert inner.calls == 2
