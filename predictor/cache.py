"""Identical prompts are answered from Redis (key: predictor model version, hash of model and prompt;
expires after a TTL). The version is in the key so a refit takes effect at once, not a TTL later."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from predictor.base import Prediction, Predictor, PredictRequest
from predictor.store import ModelStore

CACHE_PREFIX = "skipjoin:predcache"


def prompt_hash(req: PredictRequest) -> str:
    """Stable hash of what the answer depends on: model and conversation (not max_tokens)."""
    content = req.messages if req.messages is not None else req.prompt_text
    blob = json.dumps([req.model, content], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class CachedPredictor:
    """Wraps a predictor; caches its uncapped prediction and caps it per request."""

    def __init__(self, inner: Predictor, redis: Any, ttl_s: float, store: ModelStore | None = None):
        """`store`: where the inner predictor's model comes from (None: a model-free predictor)."""
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.inner, self.redis, self.ttl_ms, self.store = inner, redis, int(ttl_s * 1000), store
        self.name = inner.name

    async def key(self, req: PredictRequest) -> str:
        version = "none"
        if self.store is not None:
            await self.store.current()  # picks up a newly published version (rate-limited)
            version = str(self.store.version)
        return f"{CACHE_PREFIX}:{self.name}:v{version}:{prompt_hash(req)}"

    async def predict(self, req: PredictRequest) -> Prediction:
        key = await self.key(req)
        raw = await self.redis.get(key)
        if raw is not None:
            d = json.loads(raw)
            pred = Prediction(d["length"], d["p90"], d["source"], d["features"] | {"cache_hit": True})
        else:
            pred = await self.inner.predict(
                PredictRequest(req.prompt_text, req.messages, None, req.model, req.replica_url)
            )
            # A fallback after a failed or skipped probe is not worth keeping: the next may probe.
            if not any(k.endswith("_error") or k == "probe_skipped" for k in pred.features):
                entry = {
                    "length": pred.length,
                    "p90": pred.p90,
                    "source": pred.source,
                    "features": pred.features,
                }
                await self.redis.set(key, json.dumps(entry), px=self.ttl_ms)
        if req.max_tokens is None:
            return pred
        return Prediction(
            min(pred.length, req.max_tokens), min(pred.p90, req.max_tokens), pred.source, pred.features
        )
