"""`skipjoin bench` against a real OpenAI-compatible server on loopback."""

import asyncio
import json
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from bench.load import main


def make_app(seen: dict) -> FastAPI:
    app = FastAPI()

    @app.put("/policy")
    async def put_policy(request: Request):
        body = await request.json()
        seen["policies"].append(body["name"])
        return body

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        seen["bodies"].append(body)

        async def stream():
            for _ in range(body["max_tokens"]):
                await asyncio.sleep(0.001)
                chunk = {"choices": [{"index": 0, "delta": {"content": "t"}, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


def _serve(app: FastAPI) -> tuple[uvicorn.Server, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, port


def test_bench_flips_policies_and_reports_streamed_latency(tmp_path):
    seen = {"policies": [], "bodies": []}
    server, port = _serve(make_app(seen))
    try:
        out = tmp_path / "r.json"
        rc = main(["--url", f"http://127.0.0.1:{port}", "-n", "12", "--rate", "40", "--max-output", "8",
                   "--tau", "0.8", "--policies", "fcfs,mlfq", "--out", str(out),
                   "--plot", str(tmp_path / "p.png")])
    finally:
        server.should_exit = True
    assert rc == 0
    runs = json.loads(out.read_text())["runs"]
    assert [r["policy"] for r in runs] == ["fcfs", "mlfq"] == seen["policies"]
    assert all(r["completed"] == 12 and r["ttft_mean"] <= r["mean"] for r in runs)
    assert all(b["ignore_eos"] and "priority" in b and b["max_tokens"] <= 8 for b in seen["bodies"])
    assert (tmp_path / "p.png").stat().st_size > 0
