"""`skipjoin engine`: the built-in engine's OpenAI-compatible HTTP server.

Routes: POST /v1/chat/completions, POST /v1/completions (streamed or not), GET /v1/models,
/health, /load (what the gateway's dispatcher sizes its window from), /metrics (Prometheus),
GET/PUT /policy (the scheduler's knobs, live). The runner is built in `main` and handed to
`create_app`, which starts and stops it with the app; tests pass their own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from engine import errors
from engine import openai_format as fmt
from engine.errors import ApiError
from engine.generate import GenerationError, text_pieces
from engine.metrics import ServerMetrics
from engine.openai_format import Envelope, Outcome
from engine.prompts import chat_prompt_ids, completion_prompt_ids, generation_fields
from engine.streaming import CleanupStreamingResponse, sse_events
from engine.textstream import TextStream
from router.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields


@dataclass(frozen=True)
class ServerConfig:
    max_tokens_default: int = 256  # when the body gives neither max_tokens nor max_completion_tokens
    max_context_tokens: int = 8192  # prompt plus answer
    disconnect_poll_s: float = 0.1  # how often a non-streamed request checks for a vanished client

    def __post_init__(self) -> None:
        if self.max_tokens_default < 0 or self.max_context_tokens < 1:
            raise ValueError("max_tokens_default must be >= 0 and max_context_tokens >= 1")
        if self.disconnect_poll_s <= 0:
            raise ValueError("disconnect_poll_s must be > 0")


class _CountRequests:
    """ASGI middleware: requests by route template and status (leaves streaming untouched)."""

    def __init__(self, app, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            self.metrics.requests.labels(getattr(route, "path", "unmatched"), str(status)).inc()


class Completions:
    """Turns a validated body into a runner request and answers it, streamed or whole."""

    def __init__(self, runner: Any, config: ServerConfig, metrics: ServerMetrics):
        self.runner, self.config, self.metrics = runner, config, metrics

    def _request(self, body: SamplingFields, ids: list[int]):
        from engine.hf.runner import GenerationRequest  # torch/transformers only once serving

        room = self.config.max_context_tokens - len(ids)
        if room <= 0:
            raise ApiError(413, f"prompt is {len(ids)} tokens; the context holds "
                           f"{self.config.max_context_tokens}", code="context_length_exceeded")
        fields = generation_fields(body, ids, min(self.config.max_tokens_default, room))
        if fields["max_new_tokens"] > room:
            raise ApiError(400, f"max_tokens {fields['max_new_tokens']} + prompt {len(ids)} tokens exceed "
                           f"the context of {self.config.max_context_tokens}", param="max_tokens",
                           code="context_length_exceeded")
        return GenerationRequest(**fields)

    def _submit(self, body: SamplingFields, ids: list[int]) -> str:
        try:
            return self.runner.submit(self._request(body, ids))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc

    async def _timed(self, pieces: AsyncIterator[tuple[str, Outcome | None]]):
        start, first = time.monotonic(), True
        async for text, out in pieces:
            if first and (text or out is not None):
                self.metrics.ttft.observe(time.monotonic() - start)
                first = False
            if out is not None:
                self.metrics.latency.observe(time.monotonic() - start)
            yield text, out

    async def answer(self, request: Request, body: SamplingFields, ids: list[int], env: Envelope,
                     echo: str = "") -> Response:
        rid = self._submit(body, ids)
        text = TextStream(self.runner.tokenizer, body.stop_list(), ids)
        pieces = self._timed(text_pieces(self.runner, rid, len(ids), text))
        if body.stream:
            return CleanupStreamingResponse(sse_events(env, pieces, body.include_usage(), echo),
                                            on_close=lambda: self.runner.cancel(rid))
        try:
            return await self._whole(request, pieces, env, echo)
        finally:
            self.runner.cancel(rid)

    async def _whole(self, request: Request, pieces, env: Envelope, echo: str) -> Response:
        async def drain() -> tuple[str, Outcome]:
            parts, out = [echo], Outcome()
            async for piece, final in pieces:
                parts.append(piece)
                out = final or out
            return "".join(parts), out

        task = asyncio.ensure_future(drain())
        while not task.done():
            await asyncio.wait({task}, timeout=self.config.disconnect_poll_s)
            if not task.done() and await request.is_disconnected():
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
                return Response(status_code=499)
        try:
            content, out = task.result()
        except GenerationError as exc:
            raise ApiError(500, str(exc), type_="server_error") from exc
        return JSONResponse(fmt.full_response(env, content, out))


def _routes(app: FastAPI, runner: Any, completions: Completions, metrics: ServerMetrics) -> None:
    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionRequest, request: Request) -> Response:
        ids = chat_prompt_ids(runner.tokenizer, body)
        return await completions.answer(request, body, ids, Envelope("chat", runner.model_name))

    @app.post("/v1/completions")
    async def complete(body: CompletionRequest, request: Request) -> Response:
        ids = completion_prompt_ids(runner.tokenizer, body)
        echo = body.prompt_text() if body.echo else ""
        return await completions.answer(request, body, ids, Envelope("text", runner.model_name), echo)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": runner.model_name, "object": "model", "created": int(app.state.started),
                "owned_by": "skipjoin", "max_model_len": completions.config.max_context_tokens}
        return {"object": "list", "data": [card]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/load")
    async def load() -> dict[str, Any]:
        return runner.load()

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/policy")
    async def get_policy() -> dict[str, Any]:
        return runner.get_policy()

    @app.put("/policy")
    async def put_policy(request: Request) -> dict[str, Any]:
        try:
            changes = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, "request body is not valid JSON", code="invalid_json") from exc
        if not isinstance(changes, dict):
            raise ApiError(400, "body must be a JSON object of policy knobs")
        try:
            return runner.set_policy(changes)
        except ValueError as exc:
            raise ApiError(400, str(exc), code="invalid_policy") from exc


def create_app(runner: Any, config: ServerConfig | None = None) -> FastAPI:
    """The engine's app around `runner` (an EngineRunner), which the app's lifespan starts and stops."""
    config = config or ServerConfig()
    metrics = ServerMetrics(runner)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runner.start()
        try:
            yield
        finally:
            runner.stop()

    app = FastAPI(title="skipjoin engine", lifespan=lifespan)
    app.state.started = time.time()
    app.state.metrics = metrics
    errors.install(app)
    _routes(app, runner, Completions(runner, config, metrics), metrics)
    app.add_middleware(_CountRequests, metrics=metrics)
    return app


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skipjoin engine", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--model", default="smollm2", help='"smollm2", "tiny", "random-7b" or a local folder')
    p.add_argument("--device", default="cpu")
    p.add_argument("--scheduler", default="mlfq", help="mlfq, fcfs, priority, sjf or srpt")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--num-blocks", type=int, default=None)
    p.add_argument("--block-size", type=int, default=32)
    p.add_argument("--host-pool-blocks", type=int, default=None)
    p.add_argument("--max-tokens-default", type=int, default=256)
    p.add_argument("--max-context", type=int, default=8192)
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from engine.hf.runner import EngineConfig, EngineRunner

    args = parse_args(argv)
    engine_config = EngineConfig(
        model=args.model, device=args.device, max_batch=args.max_batch, num_blocks=args.num_blocks,
        block_size=args.block_size, host_pool_blocks=args.host_pool_blocks,
        max_tokens_default=args.max_tokens_default, scheduler=args.scheduler)
    server_config = ServerConfig(max_tokens_default=args.max_tokens_default,
                                 max_context_tokens=args.max_context)
    app = create_app(EngineRunner(engine_config), server_config)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
