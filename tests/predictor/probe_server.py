"""A real loopback server answering the predictor's probes like an engine: hidden states (a vector
drawn from the prompt's hash) for a prefill probe, a digit answer otherwise; it counts what it got."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI

from router.redis_server import free_port


def prompt_vector(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).normal(size=dim)


def create_probe_app(layer: int, dim: int) -> tuple[FastAPI, Counter]:
    app, seen = FastAPI(), Counter()

    def answer(body: dict[str, Any], text: str) -> dict[str, Any]:
        usage = {"prompt_tokens": len(text.split()), "completion_tokens": 0}
        if "vllm_xargs" in body or body.get("max_tokens") == 0:  # the prefill probe, either engine
            seen["prefill"] += 1
            v = prompt_vector(text, dim).tolist()
            return {
                "choices": [],
                "usage": usage,
                "hidden_states": {"layers": [layer], "last": [v], "mean": [v]},
            }
        seen["question"] += 1
        return {"choices": [{"text": "42", "message": {"content": "42"}}], "usage": usage}

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        return answer(body, "\n".join(m["content"] for m in body["messages"]))

    @app.post("/v1/completions")
    async def completions(body: dict[str, Any]) -> dict[str, Any]:
        return answer(body, body["prompt"])

    return app, seen


class ProbeServer:
    """`with ProbeServer(layer, dim) as srv:` — `srv.url`, `srv.seen` (Counter of probe kinds)."""

    def __init__(self, layer: int, dim: int):
        app, self.seen = create_probe_app(layer, dim)
        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        self.server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ProbeServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("probe server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(5)
