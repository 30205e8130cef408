"""Predictors chosen by name (settings.predictor)."""

from __future__ import annotations

from typing import Any

from predictor.base import Predictor
from predictor.cache import CachedPredictor
from predictor.config import PredictorConfig
from predictor.heuristic import HeuristicPredictor
from predictor.inline_predictor import INLINE, InlinePredictor
from predictor.prefix_memory import PrefixMemory
from predictor.probe_predictor import MODES, ProbePredictor
from predictor.probes import ProbeClient
from predictor.store import ModelStore, load_seed

NAMES = ("heuristic", *MODES, INLINE)


def build_predictor(name: str, **deps: Any) -> Predictor:
    """`deps`: `redis` (redis.asyncio client: model pick-up, the prediction cache, the per-prefix
    memory), `http` (httpx.AsyncClient for the probes), `settings` (router Settings), optionally
    `config` (a PredictorConfig, overriding what settings give) and `queue_depth` (an async callable:
    requests waiting in the gateway's queue; with it, nothing is probed while the queue is empty)."""
    if name == "heuristic":
        return HeuristicPredictor()
    if name == INLINE:  # no probe and no cache: the engine's newest prediction per prefix answers
        config = deps.get("config") or PredictorConfig.from_settings(deps.get("settings"))
        redis = deps.get("redis")
        memory = PrefixMemory(redis, config.cache_ttl_s) if redis is not None else None
        return InlinePredictor(ModelStore(redis, config.refresh_s, seed=load_seed()), config, memory)
    if name not in MODES:
        raise ValueError(f"unknown predictor {name!r}; known: {', '.join(NAMES)}")
    http, redis = deps.get("http"), deps.get("redis")
    if http is None:
        raise ValueError(f"predictor {name!r} needs an http client (build_predictor(..., http=...))")
    config = deps.get("config") or PredictorConfig.from_settings(deps.get("settings"))
    store = ModelStore(redis, config.refresh_s, seed=load_seed())
    memory = PrefixMemory(redis, config.cache_ttl_s) if redis is not None else None
    predictor: Predictor = ProbePredictor(
        name,
        ProbeClient(http, config),
        store,
        config,
        queue_depth=None if config.probe_when_idle else deps.get("queue_depth"),
        memory=memory,
    )
    return CachedPredictor(predictor, redis, config.cache_ttl_s, store) if redis is not None else predictor
