"""Paths the gateway does not schedule (/tokenize, /detokenize, /v1/embeddings, /v1/responses,
/version) reach a replica of the model asked for, and so do scheduled completions, against real
servers: Redis, two small engines on loopback that serve different models, and the gateway."""

import asyncio
import contextlib
import json

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from gw_helpers import ServerThread, gateway

from router.redis_server import free_port


def engine_app(model: str) -> tuple[FastAPI, list[dict]]:
    """An engine answering the pass-through paths with its model's name and what it was sent."""
    app, seen = FastAPI(), []

    async def echo(request: Request, path: str) -> dict:
        body = await request.body()
        seen.append({"path": path, "request_id": request.headers.get("x-request-id"),
                     "body": json.loads(body) if body else None})
        return {"engine": model, "path": path}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model, "object": "model", "max_model_len": 2048}]}

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        seen.append({"path": "/v1/completions", "model": body.get("model")})
        if body.get("model") not in (None, model):  # vLLM's answer to a model it does not serve
            err = {"message": f"The model `{body['model']}` does not exist.", "type": "NotFoundError",
                   "param": "model", "code": 404}
            return JSONResponse({"error": err}, status_code=404)
        await asyncio.sleep(0.05)  # long enough for several to be in flight at once
        return {"id": "cmpl-1", "object": "text_completion", "model": model,
                "choices": [{"index": 0, "text": model, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    @app.get("/version")
    async def version(request: Request):
        return await echo(request, "/version")

    @app.post("/tokenize")
    async def tokenize(request: Request):
        return {**await echo(request, "/tokenize"), "tokens": [1, 2, 3], "count": 3}

    @app.post("/detokenize")
    async def detokenize(request: Request):
        return {**await echo(request, "/detokenize"), "prompt": "a b c"}

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        data = await echo(request, "/v1/embeddings")
        if seen[-1]["body"].get("input") == "":
            err = {"message": "input is empty", "type": "BadRequestError", "param": "input", "code": 400}
            return JSONResponse({"error": err}, status_code=400)
        return {**data, "object": "list", "data": [{"object": "embedding", "embedding": [0.1, 0.2]}]}

    @app.post("/v1/responses")
    async def responses(request: Request):
        data = await echo(request, "/v1/responses")
        if not seen[-1]["body"].get("stream"):
            return data

        async def events():
            for i in range(3):
                yield f"event: delta\ndata: {json.dumps({'i': i, 'engine': model})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app, seen


@contextlib.contextmanager
def two_engines():
    (app_a, seen_a), (app_b, seen_b) = engine_app("model-a"), engine_app("model-b")
    with ServerThread(app_a) as a, ServerThread(app_b) as b:
        a.seen, b.seen = seen_a, seen_b  # type: ignore[attr-defined]
        yield a, b


def test_each_path_reaches_a_replica_of_the_model_asked_for(redis_server):
    with two_engines() as (a, b), gateway(redis_server.url, f"{a.url},{b.url}") as gw:
        for model, engine in (("model-a", a), ("model-b", b)):
            for path, body in (("/tokenize", {"prompt": "a b c"}), ("/detokenize", {"tokens": [1, 2]}),
                               ("/v1/embeddings", {"input": "hello"}), ("/v1/responses", {"input": "hi"})):
                resp = httpx.post(gw.url + path, json={**body, "model": model},
                                  headers={"X-Request-Id": f"{model}{path}"}, timeout=30)
                assert resp.status_code == 200, (path, resp.text)
                assert resp.json()["engine"] == model and resp.json()["path"] == path
                assert resp.headers["x-request-id"] == f"{model}{path}"
                assert engine.seen[-1]["request_id"] == f"{model}{path}"  # forwarded to the engine
                assert engine.seen[-1]["body"] == {**body, "model": model}  # the body, untouched
        version = httpx.get(gw.url + "/version", timeout=30)
        assert version.status_code == 200 and version.json()["path"] == "/version"


def test_a_model_no_replica_serves_gets_the_engines_404(redis_server):
    with two_engines() as (a, b), gateway(redis_server.url, f"{a.url},{b.url}") as gw:
        resp = httpx.post(gw.url + "/tokenize", json={"model": "nope", "prompt": "x"}, timeout=30)
        assert resp.status_code == 404
        err = resp.json()["error"]
        assert err["type"] == "NotFoundError" and "model-a" in err["message"] and "model-b" in err["message"]
        assert not a.seen and not b.seen


def test_engine_errors_and_streams_come_back_as_the_engine_wrote_them(redis_server):
    with two_engines() as (a, _b), gateway(redis_server.url, a.url) as gw:
        bad = httpx.post(gw.url + "/v1/embeddings", json={"model": "model-a", "input": ""}, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"
        body = {"model": "model-a", "input": "hi", "stream": True}
        with httpx.stream("POST", gw.url + "/v1/responses", json=body, timeout=30) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            events = [json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: ")]
        assert [e["i"] for e in events] == [0, 1, 2]


def test_keys_and_bad_bodies_are_checked_and_a_dead_replica_is_skipped(redis_server):
    dead = f"http://127.0.0.1:{free_port()}"
    keys = "k:t:interactive"
    with two_engines() as (a, _b), gateway(redis_server.url, f"{dead},{a.url}", api_keys=keys) as gw:
        assert httpx.post(gw.url + "/tokenize", json={"prompt": "x"}).status_code == 401
        auth = {"Authorization": "Bearer k"}
        bad = httpx.post(gw.url + "/tokenize", content=b"{oops", headers=auth)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
        for _ in range(4):  # whichever replica is tried first, the live one answers
            resp = httpx.post(gw.url + "/tokenize", json={"prompt": "x"}, headers=auth, timeout=30)
            assert resp.status_code == 200 and resp.json()["tokens"] == [1, 2, 3]


def test_with_every_replica_down_the_answer_is_503_with_retry_after(redis_server):
    dead = f"http://127.0.0.1:{free_port()}"
    with gateway(redis_server.url, dead) as gw:
        resp = httpx.get(gw.url + "/version", timeout=30)
        assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
        assert resp.json()["error"]["code"] == "engine_unavailable"


def test_completions_go_to_a_replica_of_their_model(redis_server):
    with two_engines() as (a, b), gateway(redis_server.url, f"{a.url},{b.url}", window_max=2) as gw:
        async def burst():
            async with httpx.AsyncClient(timeout=60) as client:
                url = gw.url + "/v1/completions"
                return await asyncio.gather(*(client.post(url, json={"model": m, "prompt": "hi"})
                                              for m in ["model-a", "model-b"] * 8))

        answers = asyncio.run(burst())
    assert [r.status_code for r in answers] == [200] * 16, [r.text for r in answers if r.status_code != 200]
    assert [r.json()["choices"][0]["text"] for r in answers] == ["model-a", "model-b"] * 8
    assert {x["model"] for x in a.seen} == {"model-a"} and {x["model"] for x in b.seen} == {"model-b"}
