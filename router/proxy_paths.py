"""Engine paths the gateway does not schedule, passed through to one replica of the model asked for:
`/tokenize`, `/detokenize`, `/v1/embeddings`, `/v1/responses` (POST) and `/version` (GET).

They skip the queue (none of them decodes in the engine's batch except `/v1/responses`, which vLLM
serves apart from the chat path). The caller's API key is still checked, the body size still
bounded; the replica's answer (status, body, streams included) comes back as it wrote it. A model
no replica serves gets the engines' own 404; an unreachable replica is skipped for the next one.
"""

from __future__ import annotations

import json
import random

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from router.auth import resolve_caller
from router.body import read_body
from router.errors import ApiError
from router.observe import request_id

POST_PATHS = ("/tokenize", "/detokenize", "/v1/embeddings", "/v1/responses")
GET_PATHS = ("/version",)
_KEEP = ("content-type", "cache-control")  # answer headers worth passing back


def _candidates(gw) -> list[str]:
    """Replicas taking work: the dispatcher's healthy, unpaused ones first, then the rest."""
    if gw.dispatcher is None:
        return list(gw.settings.engine_urls)
    live = [r for r in gw.dispatcher.replicas if not r.paused]
    return [r.url for r in live if r.healthy] + [r.url for r in live if not r.healthy]


async def _targets(gw, model: str | None) -> list[str]:
    urls = _candidates(gw)
    serving = await gw.models.serving(model)
    if serving is not None:
        if model is not None and not serving:
            raise gw.models.unknown_model(model)
        urls = [u for u in urls if u in serving] or serving
    random.shuffle(urls)  # spread, not pile onto the first replica
    return urls


def _headers(request: Request) -> dict[str, str]:
    out = {"x-request-id": request_id.get()}
    if ctype := request.headers.get("content-type"):
        out["content-type"] = ctype
    return out


async def _forward(request: Request, method: str, path: str) -> Response:
    gw = request.app.state.gateway
    h = request.headers
    resolve_caller(gw.api_keys, gw.class_weights, gw.settings.default_class, h.get("authorization"),
                   h.get("x-skipjoin-class"), h.get("x-skipjoin-tenant"), None)
    body = await read_body(request, gw.settings.max_body_bytes) if method == "POST" else b""
    model, stream = None, False
    if body:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from exc
        if isinstance(data, dict):
            model = data.get("model") if isinstance(data.get("model"), str) else None
            stream = data.get("stream") is True
    http: httpx.AsyncClient = gw.models.http
    for url in await _targets(gw, model):
        req = http.build_request(method, url + path, content=body, headers=_headers(request),
                                 params=request.query_params)
        try:
            resp = await http.send(req, stream=True)
        except httpx.TransportError:
            continue  # this replica is down: the next one
        headers = {k: v for k, v in resp.headers.items() if k.lower() in _KEEP}
        if stream and resp.status_code == 200:
            async def relay(resp=resp):
                try:
                    async for chunk in resp.aiter_raw():
                        yield chunk
                finally:
                    await resp.aclose()

            return StreamingResponse(relay(), status_code=200, headers=headers)
        try:
            content = await resp.aread()
        finally:
            await resp.aclose()
        return Response(content, status_code=resp.status_code, headers=headers)
    raise ApiError(503, f"no engine reachable for {path}", code="engine_unavailable",
                   headers={"Retry-After": "1"})


def _route(method: str, path: str):
    async def endpoint(request: Request) -> Response:
        return await _forward(request, method, path)

    return endpoint


def install_proxy_paths(app: FastAPI) -> None:
    for path in POST_PATHS:
        app.add_api_route(path, _route("POST", path), methods=["POST"], include_in_schema=False)
    for path in GET_PATHS:
        app.add_api_route(path, _route("GET", path), methods=["GET"], include_in_schema=False)
