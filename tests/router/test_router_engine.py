"""The whole path on real parts: openai client → gateway (auto predictor) → Redis → built-in engine."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest
from gw_helpers import ServerThread, gateway_settings
from live_engine import serve_engine

from router.app import create_app


@pytest.fixture(scope="module")
def engine():
    with serve_engine("tiny", max_batch=4, num_blocks=256, block_size=16) as live:
        yield live


async def wait_record(redis_client, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = await redis_client.xrange("skipjoin:records")
        if entries:
            return {k.decode(): v.decode() for k, v in entries[-1][1].items()}
        await asyncio.sleep(0.05)
    raise AssertionError("no calibration record")


async def test_chat_through_gateway_to_the_real_engine(redis_server, redis_client, engine):
    url, runner = engine
    settings = gateway_settings(redis_server.url, url, predictor="auto", predictor_layer=1)  # tiny: 2 layers
    with ServerThread(create_app(settings)) as gw:
        client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x")
        msgs = [{"role": "user", "content": "Name three colours in one line."}]
        whole = await client.chat.completions.create(model="m", messages=msgs, max_tokens=12, temperature=0)
        assert whole.choices[0].message.content and whole.usage.completion_tokens == 12
        stream = await client.chat.completions.create(model="m", messages=msgs, max_tokens=12, temperature=0,
                                                      stream=True, stream_options={"include_usage": True})
        text, usage = "", None
        async for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
            usage = chunk.usage or usage
        assert text == whole.choices[0].message.content  # greedy: same answer both ways
        # The prefill probe primed the prefix cache: the real request found its prompt there.
        assert usage.prompt_tokens_details.cached_tokens >= 16
        record = await wait_record(redis_client)
        features = json.loads(record["features"])
        assert "hidden" in features and int(record["output_tokens"]) == 12
        assert float(record["predicted"]) > 0 and record["replica"] == url
    runner.check_integrity()
