"""The engine gets the client's own JSON (every parameter the gateway does not use, as sent) plus
the gateway's `priority` and `vllm_xargs.skipjoin_predicted`;
the engine's answers come back as the engine wrote them; models and
context limits are the engines' own (fake upstream on loopback, echoing what it received)."""

import time

import httpx
import pytest
from gw_helpers import gateway, upstream, wait_for
from upstream_app import MAX_MODEL_LEN, MODEL

from wire.xargs import PREDICT, PREDICT_PREFIX, PREDICTED

CHAT = "/v1/chat/completions"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
BODY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "hi", "name": "ann"}],
    "max_tokens": 3,
    "n": 2,
    "logprobs": True,
    "top_logprobs": 3,
    "tools": TOOLS,
    "tool_choice": {"type": "function", "function": {"name": "weather"}},
    "response_format": {"type": "json_object"},
    "seed": 7,
    "stop": "zz",
    "temperature": 1,  # an int stays an int
    "presence_penalty": 0.5,
    "some_engine_extension": {"nested": [1, 2.5, None]},
    "priority": -1000,  # the client's own: dropped, the gateway decides
}


@pytest.fixture
def up():
    with upstream() as up:
        yield up


def test_every_parameter_passes_through_and_the_answer_is_relayed(redis_server, redis_client, up):
    with gateway(redis_server.url, up.url) as gw:
        resp = httpx.post(gw.url + CHAT, json=BODY, timeout=10)
    assert resp.status_code == 200
    [got] = up.state.received
    sent = got["body"]
    expected = {k: v for k, v in BODY.items() if k != "priority"}
    assert {k: v for k, v in sent.items() if k not in ("priority", "vllm_xargs")} == expected
    assert type(sent["temperature"]) is int
    assert isinstance(sent["priority"], int) and sent["priority"] >= 0  # the predicted length
    assert sent["vllm_xargs"] == {PREDICTED: float(sent["priority"])}  # the engine reads it from here
    answer = resp.json()
    assert answer["id"] == got["id"] and answer["choices"][0]["message"]["content"] == "t0 t1 t2 "


def test_streaming_adds_only_the_usage_request(redis_server, redis_client, up):
    body = {**BODY, "stream": True}
    with gateway(redis_server.url, up.url) as gw:
        with httpx.stream("POST", gw.url + CHAT, json=body, timeout=10) as resp:
            lines = [x for x in resp.iter_lines() if x]
    sent = up.state.received[0]["body"]
    assert sent["stream_options"] == {"include_usage": True}  # the gateway counts tokens
    assert {k: v for k, v in sent.items() if k not in ("priority", "stream_options", "vllm_xargs")} == {
        k: v for k, v in body.items() if k != "priority"
    }
    assert lines[-1] == "data: [DONE]" and all('"usage"' not in x for x in lines)  # not asked for


def test_no_priority_when_the_engine_does_not_take_it(redis_server, redis_client, up):
    with gateway(redis_server.url, up.url, engine_priority=False) as gw:
        assert httpx.post(gw.url + CHAT, json=BODY, timeout=10).status_code == 200
    assert "priority" not in up.state.received[0]["body"]
    assert "vllm_xargs" not in up.state.received[0]["body"]


def test_a_client_cannot_set_the_gateways_extension_fields(redis_server, redis_client, up):
    """`skipjoin_predicted: 0` would put any request on the engine's top level; `skipjoin_predict` and
    `skipjoin_prefix` would name Redis keys the engine writes. The gateway drops every `skipjoin_*`
    field a client sends (vLLM's `vllm_xargs`, SGLang's `custom_params`); the client's others pass."""
    theirs = {PREDICTED: 0, PREDICT: "someone-elses-job", PREDICT_PREFIX: "0" * 24, "skipjoin_x": 1,
              "their_own": "kept"}
    body = {**BODY, "vllm_xargs": theirs, "custom_params": {**theirs, "top_k": 3}}
    with gateway(redis_server.url, up.url) as gw:
        assert httpx.post(gw.url + CHAT, json=body, timeout=10).status_code == 200
        for bad in ([1, 2], "x", 3):
            r = httpx.post(gw.url + CHAT, json={**BODY, "vllm_xargs": bad}, timeout=10)
            assert r.status_code == 400 and r.json()["error"]["param"] == "vllm_xargs", r.text
    [got] = up.state.received
    sent = got["body"]
    assert sent["vllm_xargs"] == {"their_own": "kept", PREDICTED: float(sent["priority"])}
    assert sent["vllm_xargs"][PREDICTED] > 0
    assert sent["custom_params"] == {"their_own": "kept", "top_k": 3}


def test_engine_refusal_is_relayed_as_is(redis_server, redis_client, up):
    with gateway(redis_server.url, up.url) as gw:
        resp = httpx.post(gw.url + CHAT, json={**BODY, "x_refuse": "bad grammar"}, timeout=10)
    assert resp.status_code == 400
    assert resp.json() == {
        "error": {"message": "bad grammar", "type": "BadRequestError", "param": None, "code": 400}
    }


def test_models_unknown_model_and_context_limit(redis_server, redis_client, up):
    with upstream() as other, gateway(redis_server.url, f"{up.url},{other.url}") as gw:
        listed = httpx.get(gw.url + "/v1/models").json()
        assert listed["object"] == "list"
        assert [(m["id"], m["max_model_len"]) for m in listed["data"]] == [(MODEL, MAX_MODEL_LEN)]
        unknown = httpx.post(gw.url + CHAT, json={**BODY, "model": "gpt-9"}, timeout=10)
        assert unknown.status_code == 404
        err = unknown.json()["error"]
        assert err["code"] == 404 and err["type"] == "NotFoundError" and err["param"] == "model"
        assert err["message"].startswith("The model `gpt-9` does not exist.")
        too_long = httpx.post(gw.url + CHAT, json={**BODY, "max_tokens": MAX_MODEL_LEN + 1}, timeout=10)
        assert too_long.status_code == 400
        err = too_long.json()["error"]
        assert err["param"] == "max_tokens" and str(MAX_MODEL_LEN) in err["message"]
        no_model = {k: v for k, v in BODY.items() if k != "model"}
        assert httpx.post(gw.url + CHAT, json=no_model, timeout=10).status_code == 200
    assert len(up.state.received) + len(other.state.received) == 1  # refusals never reached an engine


def test_a_forced_length_is_the_prediction_and_no_training_record(redis_server, up):
    """`ignore_eos` with a token limit fixes the answer's length: the gateway sends exactly that as
    the priority and keeps no record (a forced length says nothing about the prompt)."""
    import redis

    from router import keys

    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    r = redis.Redis.from_url(redis_server.url)
    before = r.xlen(keys.RECORDS)
    with gateway(redis_server.url, up.url) as gw:
        forced = httpx.post(gw.url + CHAT, json={**body, "ignore_eos": True}, timeout=10)
        natural = httpx.post(gw.url + CHAT, json=body, timeout=10)
        wait_for(lambda: r.xlen(keys.RECORDS) > before)  # records are written in batches
        time.sleep(0.3)
    assert forced.status_code == natural.status_code == 200
    sent = [got["body"] for got in up.state.received]
    assert sent[0]["priority"] == 5 and sent[0]["ignore_eos"] is True
    assert r.xlen(keys.RECORDS) == before + 1  # the natural request's only
