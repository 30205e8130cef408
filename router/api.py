"""The OpenAI-compatible routes, plus /health and /metrics."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from router.auth import Caller, resolve_caller
from router.body import parse_json, read_body, validate
from router.errors import ApiError
from router.limits import limit_rate
from router.schemas import ChatCompletionRequest, CompletionRequest


def _gateway(request: Request):
    return request.app.state.gateway


async def _serve(request: Request, kind: str, model: type[ChatCompletionRequest] | type[CompletionRequest]):
    gw = _gateway(request)
    h = request.headers
    cls = "unknown"
    try:
        caller = resolve_caller(
            gw.api_keys,
            gw.class_weights,
            gw.settings.default_class,
            h.get("authorization"),
            h.get("x-skipjoin-class"),
            h.get("x-skipjoin-tenant"),
            None,
        )
        cls = caller.cls
        body = parse_json(await read_body(request, gw.settings.max_body_bytes))
        req = validate(body, model)
        await gw.models.check(req.model, req.token_limit())
        if req.user and not gw.api_keys and not h.get("x-skipjoin-tenant"):
            caller = Caller(req.user, caller.cls)
        await limit_rate(request, caller.tenant)
        return await gw.front.respond(request, kind, req, caller, body)
    except ApiError as exc:  # refused before or at queueing (the front counts the rest)
        gw.metrics.requests.labels(cls, str(exc.status)).inc()
        raise


def install_routes(app: FastAPI) -> None:
    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await _serve(request, "chat", ChatCompletionRequest)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _serve(request, "completions", CompletionRequest)

    @app.get("/v1/models")
    async def models(request: Request) -> JSONResponse:
        gw = _gateway(request)
        data = list((await gw.models.models()).values())
        if not data:  # no engine has answered yet: the gateway's own name
            name, now = gw.settings.served_model, int(time.time())
            data = [{"id": name, "object": "model", "created": now, "owned_by": "skipjoin"}]
        return JSONResponse({"object": "list", "data": data})

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        try:
            await _gateway(request).redis.ping()
        except Exception as exc:  # noqa: BLE001 - any Redis failure means unhealthy
            raise ApiError(503, f"redis unavailable: {exc}") from exc
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(_gateway(request).metrics.render(), media_type="text/plain; version=0.0.4")
