"""The `inline` predictor: no probe; the real request is flagged, the engine's feature and
prediction come back through Redis into the training record and the prefix memory (real Redis)."""

import numpy as np
import redis as sync_redis

from engine.vllm.hidden_predict import InlineResult, write
from predictor.base import PredictRequest
from predictor.config import PredictorConfig
from predictor.examples import example_from_record
from predictor.inline_predictor import InlinePredictor, inline_xargs
from predictor.prefix_memory import PrefixMemory
from predictor.registry import build_predictor
from predictor.store import ModelStore
from router import keys
from router.acker import Acker
from router.job import Job
from router.queue import QueueConfig, RedisQueue
from router.records import Outcome
from router.tenants import TenantUsage, UsageConfig
from wire.xargs import PREDICT, PREDICT_PREFIX, PROBE_LAYER, inline_key

SYSTEM = "You are a helpful assistant who writes for a cycling magazine. " * 6  # > the 256-char prefix
PROMPT = SYSTEM + "Write a long essay about the history of bicycles."


def _predictor(redis_client) -> InlinePredictor:
    memory = PrefixMemory(redis_client, 60)
    return InlinePredictor(ModelStore(redis_client, seed=None), PredictorConfig(), memory)


def _engine_writes(redis_url: str, job_id: str, prefix: str | None, x: np.ndarray, result: InlineResult):
    """What skipjoin's engine writes for a flagged request (engine/vllm/hidden_predict.py)."""
    client = sync_redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    write(pipe, {PREDICT: job_id, PREDICT_PREFIX: prefix}, {"layers": [19], "last": [x.tolist()]}, result)
    pipe.execute()
    client.close()


async def test_without_memory_the_heuristic_answers_and_the_request_is_flagged(redis_client):
    pred = await _predictor(redis_client).predict(PredictRequest(PROMPT, max_tokens=300))
    assert pred.source == "inline:heuristic" and pred.length <= 300
    flags = inline_xargs("job1", pred.features)
    assert flags == {PREDICT: "job1", PROBE_LAYER: 19, PREDICT_PREFIX: PrefixMemory(None, 1).prefix(PROMPT)}
    assert inline_xargs("job1", {"heuristic": 3.0}) == {}  # other predictors flag nothing


async def test_the_engine_fills_the_prefix_memory_the_next_request_reads(redis_client, redis_server):
    predictor = _predictor(redis_client)
    first = await predictor.predict(PredictRequest(PROMPT))
    prefix = inline_xargs("j", first.features)[PREDICT_PREFIX]
    _engine_writes(redis_server.url, "j", prefix, np.ones(4), InlineResult(420.0, 900.0, -1))
    again = await predictor.predict(PredictRequest(PROMPT + " Mention Amsterdam.", max_tokens=500))
    assert again.source == "inline:prefix" and (again.length, again.p90) == (420.0, 500.0)


def _job(job_id: str, features: dict) -> Job:
    body = {"messages": [{"role": "user", "content": PROMPT}], "stream": True}
    return Job(id=job_id, kind="chat", body=body, stream=True, include_usage=False, predicted=120.0,
               p90=300.0, predictor="inline:heuristic", cls="interactive", tenant="t", prompt_hash="h",
               prefix_key="p", front="f1", enqueued_at=0.0, enqueued_wall=1.0, score=1.0, bucket="all",
               features=features)


async def test_a_streamed_inline_request_is_recorded_with_the_engines_feature(redis_client, redis_server):
    q = RedisQueue(redis_client, QueueConfig(lease_s=5))
    await q.heartbeat("f1")
    features = dict((await _predictor(redis_client).predict(PredictRequest(PROMPT))).features)
    await q.push(_job("j1", features))
    [job] = (await q.pop(["all"], owner="d", count=1)).jobs
    x = np.linspace(-1, 1, 8)
    _engine_writes(redis_server.url, "j1", None, x, InlineResult(210.0, 400.0, 3))
    acker = Acker(redis_client, q, TenantUsage(redis_client, UsageConfig(cache_s=0)), clock=lambda: 1000.0)
    acker.add(job, Outcome(12, 250, "stop", 1.0, 1.5, 2.0, "http://e"))
    await acker.close()
    [(_, fields)] = await redis_client.xrange(keys.RECORDS)
    example = example_from_record(fields)
    assert example is not None and example.output_tokens == 250
    np.testing.assert_allclose(example.hidden["last"][0], x, atol=1e-3)  # float16 on the way
    assert b'"inline_result":{"predicted":210.0' in fields[b"features"]
    assert not await redis_client.exists(inline_key("j1"))  # taken, not left to expire


async def test_the_registry_builds_it_without_an_http_client(redis_client):
    assert build_predictor("inline", redis=redis_client).name == "inline"
