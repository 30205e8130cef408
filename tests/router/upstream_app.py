"""A small real OpenAI-compatible server standing in for an engine in gateway tests.

Deterministic tokens ("t0 t1 ..."), a configurable per-token delay, a max_batch with the engine's
own FIFO queue beyond it, `/load`, cancel-on-disconnect, and a record of every request it received
(order of arrival and `priority`). A prompt containing "[hold]" waits for `POST /control
{"release": true}` before generating. Run alone: `python tests/router/upstream_app.py --port N`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

MODEL = "upstream-model"
MAX_MODEL_LEN = 8192  # reported in /v1/models, as vLLM does


@dataclass
class UpstreamState:
    token_delay: float = 0.0
    max_batch: int = 16
    default_tokens: int = 8
    received: list[dict[str, Any]] = field(default_factory=list)  # in order of arrival
    cancelled: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    running: int = 0
    waiting: int = 0
    max_running_seen: int = 0
    max_concurrent_seen: int = 0
    # asyncio primitives bind to a loop on first use (Python >= 3.10), not at construction.
    release: asyncio.Event = field(default_factory=asyncio.Event)
    hang: bool = False  # accept connections, answer nothing (load polls included) until cleared
    unhung: asyncio.Event = field(default_factory=asyncio.Event)
    slots: asyncio.Condition = field(default_factory=asyncio.Condition)

    def prompt_of(self, body: dict[str, Any]) -> str:
        if "messages" in body:
            return "\n".join(str(m.get("content", "")) for m in body["messages"])
        p = body.get("prompt", "")
        return p if isinstance(p, str) else str(p[0])


def _n_tokens(body: dict[str, Any], state: UpstreamState) -> int:
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    return state.default_tokens if limit is None else int(limit)


async def _acquire(state: UpstreamState) -> None:
    async with state.slots:
        state.waiting += 1
        try:
            await state.slots.wait_for(lambda: state.running < state.max_batch)
        finally:
            state.waiting -= 1
        state.running += 1
        state.max_running_seen = max(state.max_running_seen, state.running)


async def _release_slot(state: UpstreamState) -> None:
    async with state.slots:
        state.running -= 1
        state.slots.notify_all()


def _chunk(rid: str, kind: str, model: str, i: int, text: str | None, finish: str | None) -> dict:
    if kind == "chat":
        delta = {"content": text} if text is not None else {}
        if i == 0 and text is not None:
            delta["role"] = "assistant"
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text or "", "finish_reason": finish}
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": [choice]}


def _usage(prompt: str, n: int) -> dict[str, int]:
    p = max(1, len(prompt.split()))
    return {"prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n}


def create_upstream_app(token_delay: float = 0.0, max_batch: int = 16) -> tuple[FastAPI, UpstreamState]:
    state = UpstreamState(token_delay=token_delay, max_batch=max_batch)
    app = FastAPI()

    async def answering() -> None:
        while state.hang:
            await state.unhung.wait()

    async def generate(body: dict[str, Any], kind: str, request: Request):
        await answering()
        if "x_refuse" in body:  # answer as vLLM refuses a request (tests of relaying)
            err = {"message": str(body["x_refuse"]), "type": "BadRequestError", "param": None, "code": 400}
            return JSONResponse({"error": err}, status_code=400)
        rid = f"up-{len(state.received)}"
        prompt = state.prompt_of(body)
        state.received.append(
            {
                "id": rid,
                "priority": body.get("priority"),
                "prompt": prompt,
                "body": body,
                "request_id": request.headers.get("x-request-id"),
                "t": time.monotonic(),
            }
        )
        concurrent = sum(1 for r in state.received if "done" not in r)
        state.max_concurrent_seen = max(state.max_concurrent_seen, concurrent)
        model = body.get("model") or MODEL
        n = _n_tokens(body, state)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def tokens():
            await _acquire(state)
            try:
                if "[hold]" in prompt:
                    await state.release.wait()
                for i in range(n):
                    if state.token_delay:
                        await asyncio.sleep(state.token_delay)
                    yield i, f"t{i} "
            finally:
                await _release_slot(state)

        def mark_done(cancelled: bool) -> None:
            state.received[int(rid[3:])]["done"] = True
            (state.cancelled if cancelled else state.finished).append(rid)

        if body.get("stream"):

            async def sse():
                done = False
                try:
                    async for i, text in tokens():
                        yield "data: " + json.dumps(_chunk(rid, kind, model, i, text, None)) + "\n\n"
                    final = _chunk(rid, kind, model, n, None, "length")
                    yield "data: " + json.dumps(final) + "\n\n"
                    if include_usage:
                        u = {
                            **_chunk(rid, kind, model, n, None, None),
                            "choices": [],
                            "usage": _usage(prompt, n),
                        }
                        yield "data: " + json.dumps(u) + "\n\n"
                    yield "data: [DONE]\n\n"
                    done = True
                finally:
                    mark_done(cancelled=not done)

            return StreamingResponse(sse(), media_type="text/event-stream")

        parts: list[str] = []
        try:
            async for _, text in tokens():
                parts.append(text)
                if state.token_delay and await request.is_disconnected():
                    mark_done(cancelled=True)
                    return JSONResponse({}, status_code=499)
        except asyncio.CancelledError:
            mark_done(cancelled=True)
            raise
        mark_done(cancelled=False)
        text = "".join(parts)
        if kind == "chat":
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length",
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": "length"}
            obj = "text_completion"
        return {
            "id": rid,
            "object": obj,
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": _usage(prompt, n),
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await generate(await request.json(), "chat", request)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await generate(await request.json(), "text", request)

    @app.get("/v1/models")
    async def models():
        entry = {"id": MODEL, "object": "model", "owned_by": "test", "max_model_len": MAX_MODEL_LEN}
        return {"object": "list", "data": [entry]}

    @app.get("/load")
    async def load():
        await answering()
        return {"running": state.running, "waiting": state.waiting, "max_batch": state.max_batch}

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/control")
    async def control(request: Request):
        cmd = await request.json()
        if "token_delay" in cmd:
            state.token_delay = float(cmd["token_delay"])
        if "max_batch" in cmd:
            state.max_batch = int(cmd["max_batch"])
            async with state.slots:
                state.slots.notify_all()
        if cmd.get("release"):
            state.release.set()
        if "hang" in cmd:
            state.hang = bool(cmd["hang"])
            if state.hang:
                state.unhung.clear()
            else:
                state.unhung.set()
        if cmd.get("reset"):
            state.received.clear()
            state.cancelled.clear()
            state.finished.clear()
            state.release = asyncio.Event()
            state.max_running_seen = state.max_concurrent_seen = 0
        return {"ok": True}

    @app.get("/received")
    async def received():
        return {
            "received": [{k: v for k, v in r.items() if k != "body"} for r in state.received],
            "cancelled": state.cancelled,
            "finished": state.finished,
            "max_running_seen": state.max_running_seen,
        }

    return app, state


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--max-batch", type=int, default=16)
    args = ap.parse_args()
    app, _ = create_upstream_app(args.delay, args.max_batch)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
