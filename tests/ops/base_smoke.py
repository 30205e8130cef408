"""Run by tests/ops/test_install.py with a fresh venv's Python that has only `pip install skipjoin`:
a real Redis, the fake upstream and a gateway on loopback; prints what it found as JSON."""

import importlib.util
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))

import httpx  # noqa: E402
from gw_helpers import gateway, upstream  # noqa: E402

import router  # noqa: E402
from router.redis_server import RedisServer  # noqa: E402

with RedisServer() as redis, upstream() as up, gateway(redis.url, up.url) as gw:
    resp = httpx.post(gw.url + "/v1/completions", json={"prompt": "hi", "max_tokens": 4}, timeout=60)
    status, text = resp.status_code, resp.json()["choices"][0]["text"]
print(json.dumps({
    "status": status,
    "text": text,
    "router_from": router.__file__,
    "imported": sorted(m for m in ("torch", "vllm", "openai", "matplotlib", "sglang") if m in sys.modules),
    "installed": sorted(m for m in ("torch", "vllm", "openai", "matplotlib") if importlib.util.find_spec(m)),
}))
