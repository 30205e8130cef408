"""The real skipjoin engine on a loopback port, for probe tests (tiny random model, or SmolLM2)."""

from __future__ import annotations

import contextlib
import threading
import time

import uvicorn

from router.redis_server import free_port


@contextlib.contextmanager
def serve_engine(model: str, **engine_kw):
    from engine.hf.runner import EngineConfig, EngineRunner
    from engine.server import ServerConfig, create_app

    runner = EngineRunner(EngineConfig(model=model, **engine_kw))
    app = create_app(runner, ServerConfig(max_context_tokens=8192))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("engine server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", runner
    finally:
        server.should_exit = True
        thread.join(20)
