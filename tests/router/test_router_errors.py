"""Every malformed or refused request gets a 4xx/503 in OpenAI's error shape, never a 500."""

import asyncio

import httpx
import openai
import pytest
from gw_helpers import control, gateway, upstream, wait_for

from router.redis_server import free_port

CHAT = "/v1/chat/completions"


def assert_error(resp: httpx.Response, status: int, param: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param
    return err


@pytest.fixture
def gw(redis_server, redis_client):
    with (
        upstream() as up,
        gateway(redis_server.url, up.url, max_body_bytes=10_000, api_keys="good:t1:interactive") as gw,
    ):
        yield gw


AUTH = {"Authorization": "Bearer good"}


@pytest.mark.parametrize(
    "content, status, param",
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"model": "m"}', 400, "messages"),
        (b'{"messages": []}', 400, "messages"),
        (b'{"messages": "hi"}', 400, "messages"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "lots"}', 400, "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": 9}', 400, "temperature"),
        (b'{"messages": [{"role": "wizard", "content": "x"}]}', 400, None),
    ],
)
def test_bad_bodies(gw, content, status, param):
    resp = httpx.post(gw.url + CHAT, content=content, headers={**AUTH, "Content-Type": "application/json"})
    assert_error(resp, status, param)


def test_unknown_route_oversize_body_and_method(gw):
    assert_error(httpx.get(gw.url + "/v1/nothing"), 404)
    assert_error(httpx.get(gw.url + CHAT), 405)
    big = {"messages": [{"role": "user", "content": "x" * 20_000}]}
    assert_error(httpx.post(gw.url + CHAT, json=big, headers=AUTH), 413)

    def chunked():
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}]}'

    assert_error(httpx.post(gw.url + CHAT, content=chunked(), headers=AUTH), 413)


def test_api_keys_and_classes(gw):
    ok = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    assert_error(httpx.post(gw.url + CHAT, json=ok), 401)
    assert_error(httpx.post(gw.url + CHAT, json=ok, headers={"Authorization": "Bearer bad"}), 401)
    assert_error(httpx.post(gw.url + CHAT, json=ok, headers={**AUTH, "X-Skipjoin-Class": "vip"}), 400)
    assert (
        httpx.post(gw.url + CHAT, json=ok, headers={**AUTH, "X-Skipjoin-Class": "batch"}).status_code == 200
    )
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="bad", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="upstream-model", messages=ok["messages"])


async def test_full_queue_answers_429_with_retry_after(redis_server, redis_client):
    with upstream(max_batch=1) as up, gateway(redis_server.url, up.url, window_max=1, max_queue=2) as gw:
        async with httpx.AsyncClient(timeout=30) as client:
            held = asyncio.create_task(client.post(gw.url + "/v1/completions", json={"prompt": "[hold]"}))
            await asyncio.to_thread(wait_for, lambda: len(up.state.received) == 1)
            queued = [
                asyncio.create_task(client.post(gw.url + "/v1/completions", json={"prompt": f"q{i}"}))
                for i in range(2)
            ]
            while await redis_client.zcard("skipjoin:q:all") < 2:
                await asyncio.sleep(0.01)
            resp = await client.post(gw.url + "/v1/completions", json={"prompt": "one too many"})
            assert_error(resp, 429)
            assert resp.headers["retry-after"] == "1"
            control(up.url, release=True)
            assert all(r.status_code == 200 for r in await asyncio.gather(held, *queued))


def test_upstream_down_is_503(redis_server, redis_client):
    dead = f"http://127.0.0.1:{free_port()}"
    with gateway(redis_server.url, dead) as gw:
        for stream in (False, True):
            resp = httpx.post(gw.url + "/v1/completions", json={"prompt": "x", "stream": stream}, timeout=10)
            assert_error(resp, 503)
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            client.completions.create(model="upstream-model", prompt="x")
