"""`inline`: no probe at all. The real request is flagged and skipjoin's vLLM engine predicts from
its own prefill (engine/vllm/hidden_predict.py), re-levelling it in its MLFQ; the gateway orders its
own queue with the last prediction the engine made for the same prompt prefix, else the heuristic.

The engine writes each flagged request's feature and prediction to Redis (`wire.xargs.inline_key`;
a streamed answer has no other way back); the gateway's acker takes them into the training record
(`take_engine_results`), so the trainer keeps learning without a probe. Needs skipjoin's vLLM
engine sharing the gateway's Redis: any other engine ignores or refuses `vllm_xargs`.
"""

from __future__ import annotations

import json
from typing import Any

from predictor.base import Prediction, PredictRequest
from predictor.config import PredictorConfig
from predictor.engine_input import engine_input
from predictor.heuristic import heuristic_length
from predictor.prefix_memory import PrefixMemory
from predictor.store import ModelStore
from wire.xargs import PREDICT, PREDICT_PREFIX, PROBE_LAYER, inline_key

INLINE = "inline"  # the features key that marks a request for inline prediction


class InlinePredictor:
    name = INLINE

    def __init__(self, store: ModelStore, config: PredictorConfig, memory: PrefixMemory | None = None):
        self.store, self.config, self.memory = store, config, memory

    async def predict(self, req: PredictRequest) -> Prediction:
        bundle = await self.store.current()
        version = -1 if bundle is None else bundle.version
        heuristic = heuristic_length(req.prompt_text)
        features: dict[str, Any] = {
            "heuristic": heuristic,
            "model_version": None if bundle is None else bundle.version,
            "input": engine_input(req).kind,
            **inline_features(req, self.config, self.memory),
        }
        known = None if self.memory is None else await self.memory.get(req.prompt_text, version)
        length, p90 = known if known is not None else (heuristic, heuristic * 2.5)
        if req.max_tokens is not None:
            length, p90 = min(length, req.max_tokens), min(p90, req.max_tokens)
        source = f"{INLINE}:{'prefix' if known is not None else 'heuristic'}"
        return Prediction(float(length), float(max(p90, length)), source, features)


def inline_features(req: PredictRequest, config: PredictorConfig, memory: PrefixMemory | None) -> dict:
    """The `features` entry that flags a request for inline prediction (see `inline_xargs`)."""
    prefix = None if memory is None else memory.prefix(req.prompt_text)
    return {INLINE: {"layer": config.feature.layer, "prefix": prefix}}


def inline_xargs(job_id: str, features: dict[str, Any]) -> dict[str, Any]:
    """The `vllm_xargs` that flag a request for inline prediction ({} when it is not)."""
    spec = features.get(INLINE)
    if not isinstance(spec, dict):
        return {}
    out: dict[str, Any] = {PREDICT: job_id, PROBE_LAYER: int(spec["layer"])}
    if spec.get("prefix"):
        out[PREDICT_PREFIX] = spec["prefix"]
    return out


def wants_engine_result(features: dict[str, Any]) -> bool:
    return isinstance(features.get(INLINE), dict) and "hidden" not in features


async def take_engine_results(redis: Any, jobs: list[tuple[str, dict[str, Any]]]) -> None:
    """For (job id, features) of finished inline requests: move what the engine wrote into
    `features` ("hidden" as the probe's records have it, "inline_result": its prediction)."""
    if not jobs:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for job_id, _ in jobs:
            pipe.hgetall(inline_key(job_id))
            pipe.delete(inline_key(job_id))
        replies = await pipe.execute()
    for (_, features), raw in zip(jobs, replies[::2], strict=True):
        merge_engine_result(features, raw or {})


def merge_engine_result(features: dict[str, Any], raw: dict[Any, Any]) -> None:
    got = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    if got.get("hidden"):
        features["hidden"] = json.loads(got["hidden"])
    if got.get("result"):
        features["inline_result"] = json.loads(got["result"])
