"""The official openai client against the gateway (real Redis, real HTTP upstream)."""

import asyncio

import httpx
import openai
import pytest
from gw_helpers import gateway, upstream

from router.records import RECORD_FIELDS

MSG = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def gw(redis_server, redis_client):
    with upstream() as up, gateway(redis_server.url, up.url) as gw:
        gw.upstream = up
        yield gw


def test_sync_client_chat_and_completions(gw):
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    chat = client.chat.completions.create(
        model="upstream-model", messages=MSG, max_tokens=4, temperature=0.5, top_p=0.9, stop=["zz"]
    )
    assert chat.choices[0].message.content == "t0 t1 t2 t3 "
    assert chat.usage.completion_tokens == 4 and chat.usage.prompt_tokens > 0
    comp = client.completions.create(model="upstream-model", prompt="Say hi", max_tokens=2)
    assert comp.choices[0].text == "t0 t1 " and comp.usage.total_tokens > 2
    stream = client.chat.completions.create(
        model="upstream-model", messages=MSG, max_completion_tokens=3, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "t0 t1 t2 "
    sent = gw.upstream.state.received
    assert sent[0]["body"]["temperature"] == 0.5 and sent[0]["body"]["stop"] == ["zz"]
    assert sent[2]["body"]["max_completion_tokens"] == 3
    assert all(isinstance(r["priority"], int) for r in sent)
    assert [m.id for m in client.models.list().data] == ["upstream-model"]


async def test_async_client_streams_with_and_without_usage(gw, redis_client):
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    chunks = [
        c
        async for c in await client.chat.completions.create(
            model="upstream-model",
            messages=MSG,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    ]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    plain = [
        c
        async for c in await client.completions.create(
            model="upstream-model", prompt="x", max_tokens=2, stream=True
        )
    ]
    assert all(c.usage is None for c in plain)
    assert "".join(c.choices[0].text for c in plain if c.choices) == "t0 t1 "
    chat = await client.chat.completions.create(model="upstream-model", messages=MSG, max_tokens=1)
    assert chat.choices[0].message.content == "t0 "
    for _ in range(200):  # records are written in batches, just after the answers
        if await redis_client.xlen("skipjoin:records") == 3:
            break
        await asyncio.sleep(0.01)
    records = await redis_client.xrange("skipjoin:records")
    assert len(records) == 3
    fields = {k.decode(): v.decode() for k, v in records[0][1].items()}
    assert tuple(fields) == RECORD_FIELDS
    assert fields["output_tokens"] == "5" and fields["max_tokens"] == "5" and fields["class"] == "interactive"
    assert float(fields["total_s"]) >= float(fields["ttft_s"]) >= float(fields["queue_wait_s"]) >= 0
    assert (
        fields["predictor"] == "heuristic" and fields["features"] == "{}" and len(fields["prompt_hash"]) == 64
    )
    await client.close()


def test_health_and_metrics(gw):
    assert httpx.get(gw.url + "/health").json() == {"status": "ok"}
    httpx.post(gw.url + "/v1/completions", json={"prompt": "x", "max_tokens": 1})
    text = httpx.get(gw.url + "/metrics").text
    for name in (
        "skipjoin_queue_depth",
        "skipjoin_inflight",
        "skipjoin_queue_wait_seconds_bucket",
        "skipjoin_ttft_seconds_bucket",
        "skipjoin_predictor_fallbacks_total",
    ):
        assert name in text
    assert 'skipjoin_requests_total{cls="interactive",status="200"} 1.0' in text


class SlowPredictor:
    name = "slow"

    async def predict(self, req):
        await asyncio.sleep(5)


class BrokenPredictor:
    name = "broken"

    async def predict(self, req):
        raise RuntimeError("probe failed")


@pytest.mark.parametrize("predictor", [SlowPredictor(), BrokenPredictor()])
def test_predictor_timeout_or_error_falls_back_to_heuristic(redis_server, redis_client, predictor):
    with upstream() as up, gateway(redis_server.url, up.url, predictor=predictor, probe_timeout_s=0.1) as gw:
        r = httpx.post(gw.url + "/v1/completions", json={"prompt": "Write 42 tokens", "max_tokens": 50})
        assert r.status_code == 200
        assert up.state.received[0]["priority"] == 42  # the heuristic read "42 tokens"
        assert "skipjoin_predictor_fallbacks_total 1.0" in httpx.get(gw.url + "/metrics").text
