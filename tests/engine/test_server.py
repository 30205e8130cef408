"""The engine server over real HTTP: uvicorn on loopback, the tiny random model, the openai client."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from live_engine import serve_engine as serve

GREEDY = {"temperature": 0.0}
LONG = {"max_tokens": 4000, "extra_body": {"ignore_eos": True}}


@pytest.fixture(scope="module")
def engine():
    with serve("tiny", max_batch=4, num_blocks=512, block_size=16) as live:
        yield live


@pytest.fixture
def url(engine):
    return engine[0]


@pytest.fixture
def client(url):
    return openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)


@pytest.fixture
def aclient(url):
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0)


def wait_idle(url: str, runner, timeout: float = 15.0) -> dict:
    """Polls /load until nothing runs or waits, then checks the block accounting."""
    deadline = time.monotonic() + timeout
    while True:
        load = httpx.get(url + "/load").json()
        if load["running"] == 0 and load["waiting"] == 0 and load.get("swapped", 0) == 0:
            runner.check_integrity()
            return load
        if time.monotonic() > deadline:
            raise AssertionError(f"requests still in the engine: {load}")
        time.sleep(0.05)


def chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# --- completions through the openai client ----------------------------------------------------
def test_chat_completion_with_usage_and_priority(client):
    r = client.chat.completions.create(model="tiny", messages=chat("Hello there"), max_tokens=8,
                                       extra_body={"priority": 5, "ignore_eos": True}, **GREEDY)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 8 and r.usage.prompt_tokens > 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + 8
    assert r.usage.prompt_tokens_details.cached_tokens >= 0


def test_chat_stream_matches_the_whole_answer(client):
    whole = client.chat.completions.create(model="tiny", messages=chat("Stream me"), max_completion_tokens=12,
                                           extra_body={"ignore_eos": True}, **GREEDY)
    chunks = list(client.chat.completions.create(
        model="tiny", messages=chat("Stream me"), max_completion_tokens=12, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True}, **GREEDY))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    assert all(c.usage is None for c in chunks[:-1])


async def test_async_text_completion_stream_and_whole(aclient):
    whole = await aclient.completions.create(model="tiny", prompt="Once upon a time", max_tokens=10,
                                             extra_body={"ignore_eos": True}, **GREEDY)
    assert whole.object == "text_completion" and whole.choices[0].finish_reason == "length"
    assert whole.usage.completion_tokens == 10
    stream = await aclient.completions.create(model="tiny", prompt="Once upon a time", max_tokens=10,
                                              stream=True, extra_body={"ignore_eos": True}, **GREEDY)
    text = "".join([c.choices[0].text async for c in stream])
    assert text == whole.choices[0].text


async def test_async_chat_concurrent_requests_all_finish(aclient):
    import asyncio

    rs = await asyncio.gather(*(aclient.chat.completions.create(
        model="tiny", messages=chat(f"request {i}"), max_tokens=6 + i, extra_body={"ignore_eos": True,
                                                                                   "priority": 50 - i})
        for i in range(6)))
    assert [r.usage.completion_tokens for r in rs] == [6 + i for i in range(6)]


def test_stop_string_cuts_the_answer(client):
    base = client.completions.create(model="tiny", prompt="The stop test", max_tokens=30,
                                     extra_body={"ignore_eos": True}, **GREEDY).choices[0].text
    assert len(base) > 12
    stop = base[len(base) // 2:len(base) // 2 + 3]
    r = client.completions.create(model="tiny", prompt="The stop test", max_tokens=30,
                                  stop=[stop, "\x00never"], extra_body={"ignore_eos": True}, **GREEDY)
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == base[:base.index(stop)]


def test_echo_and_seeded_sampling(client):
    kw = dict(model="tiny", prompt="Seeded", max_tokens=8, temperature=1.0, seed=7,
              extra_body={"ignore_eos": True})
    a, b = client.completions.create(**kw), client.completions.create(**kw)
    assert a.choices[0].text == b.choices[0].text
    echoed = client.completions.create(echo=True, **kw)
    assert echoed.choices[0].text.startswith("Seeded")


def test_prefill_only_returns_hidden_states(url):
    prompt = "How long will the answer be? " * 8  # longer than a block, so the prefix cache holds some
    body = {"prompt": prompt, "max_tokens": 0, "return_hidden_states": True, "hidden_layers": [1]}
    r = httpx.post(url + "/v1/completions", json=body)
    assert r.status_code == 200
    data = r.json()
    assert data["choices"][0]["text"] == "" and data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 0 and data["usage"]["prompt_tokens"] > 0
    hs = data["hidden_states"]
    assert hs["layers"] == [1] and len(hs["last"]) == 1 and len(hs["last"][0]) == 64


def test_usage_reports_prefix_cache_hits(url):
    body = {"prompt": "A shared system prompt that spans blocks. " * 6, "max_tokens": 2}
    first = httpx.post(url + "/v1/completions", json=body).json()["usage"]
    again = httpx.post(url + "/v1/completions", json=body).json()["usage"]
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    assert again["prompt_tokens_details"]["cached_tokens"] >= 16


def test_real_request_reuses_its_probe_prefill(url):
    prompt = "Probe then answer, the gateway's path. " * 6
    probe = {"prompt": prompt, "max_tokens": 0, "return_hidden_states": True}
    assert httpx.post(url + "/v1/completions", json=probe).status_code == 200
    again = httpx.post(url + "/v1/completions", json={"prompt": prompt, "max_tokens": 2}).json()
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] >= 16


# --- disconnects free the request ---------------------------------------------------------------
def test_stream_disconnect_cancels_the_request(engine):
    url, runner = engine
    body = {"messages": chat("go on forever"), "stream": True, "max_tokens": 4000, "ignore_eos": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body) as r:
        lines = r.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
        assert httpx.get(url + "/load").json()["running"] == 1
    wait_idle(url, runner)


def test_whole_request_disconnect_cancels_the_request(engine):
    url, runner = engine
    body = {"prompt": "go on forever", "max_tokens": 4000, "ignore_eos": True}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/completions", json=body, timeout=httpx.Timeout(5.0, read=0.5))
    wait_idle(url, runner)


# --- control and observability -----------------------------------------------------------------
def test_load_models_health(url):
    load = httpx.get(url + "/load").json()
    assert set(load) >= {"running", "waiting", "swapped", "max_batch"} and load["max_batch"] == 4
    models = httpx.get(url + "/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["object"] == "model"
    assert httpx.get(url + "/health").json() == {"status": "ok"}


def test_metrics_expose_engine_counters_and_gauges(client, url):
    client.completions.create(model="tiny", prompt="count me", max_tokens=3, extra_body={"ignore_eos": True})
    text = httpx.get(url + "/metrics").text
    values = {line.split(" ")[0]: float(line.split(" ")[-1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    assert values["skipjoin_engine_running"] == 0 and values["skipjoin_engine_waiting"] == 0
    assert values["skipjoin_engine_generated_tokens_total"] >= 3
    assert any(k.startswith("skipjoin_engine_requests_by_level_total{") for k in values)
    for name in ("preemptions_total", "swap_out_bytes_total", "swap_in_bytes_total", "recomputes_total",
                 "prefix_hit_tokens_total", "tokens_per_second"):
        assert f"skipjoin_engine_{name}" in values
    assert 'skipjoin_engine_http_requests_total{route="/v1/completions",status="200"}' in values


def test_policy_get_put_and_invalid(url):
    policy = httpx.get(url + "/policy").json()
    assert policy["name"] == "mlfq"
    r = httpx.put(url + "/policy", json={"base_quantum": 16})
    assert r.status_code == 200 and r.json()["base_quantum"] == 16
    assert httpx.get(url + "/policy").json()["base_quantum"] == 16
    for bad in ({"no_such_knob": 1}, {"levels": 0}, [1, 2]):
        r = httpx.put(url + "/policy", json=bad)
        assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.put(url + "/policy", content=b"{nope").status_code == 400
    httpx.put(url + "/policy", json={"base_quantum": policy["base_quantum"]}).raise_for_status()


# --- errors in OpenAI's shape -------------------------------------------------------------------
@pytest.mark.parametrize(("path", "payload", "status"), [
    ("/v1/chat/completions", b"{not json", 400),
    ("/v1/chat/completions", b'{"messages": []}', 422),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "temperature": 9}', 422),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": -1}', 422),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": 9000}', 400),
    ("/v1/completions", b'{"prompt": "x", "hidden_layers": [99], "return_hidden_states": true}', 400),
    ("/v1/nothing", b"{}", 404),
])
def test_errors_have_openai_shape(url, path, payload, status):
    r = httpx.post(url + path, content=payload, headers={"content-type": "application/json"})
    assert r.status_code == status
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]


def test_prompt_longer_than_the_context_is_413(url):
    r = httpx.post(url + "/v1/completions", json={"prompt": "word " * 9000, "max_tokens": 1})
    assert r.status_code == 413 and r.json()["error"]["code"] == "context_length_exceeded"


def test_openai_client_raises_its_typed_errors(client):
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="tiny", messages=[], max_tokens=1)


def test_engine_is_idle_and_consistent_after_the_suite(engine):
    url, runner = engine
    wait_idle(url, runner)


# --- the real model ----------------------------------------------------------------------------
@pytest.mark.slow
def test_smollm2_answers_sensibly():
    with serve("smollm2", max_batch=2) as (url, _):
        c = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        r = c.chat.completions.create(model="smollm2", messages=chat("What is the capital of France?"),
                                      max_tokens=24, temperature=0.0)
    text = r.choices[0].message.content
    assert text.strip() and "Paris" in text
