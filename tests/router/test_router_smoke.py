import httpx
from gw_helpers import gateway, upstream


def test_chat_roundtrip(redis_server, redis_client):
    with upstream() as up, gateway(redis_server.url, up.url) as gw:
        r = httpx.post(
            gw.url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
        )
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "t0 t1 t2 "
        with httpx.stream(
            "POST", gw.url + "/v1/completions", json={"prompt": "hi", "max_tokens": 3, "stream": True}
        ) as s:
            lines = [line for line in s.iter_lines() if line]
        assert lines[-1] == "data: [DONE]"
        assert len(lines) == 5
