import os

import pytest

from router.redis_server import RedisServer

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a free loopback port for the whole test session."""
    with RedisServer() as server:
        yield server


@pytest.fixture
async def redis_client(redis_server):
    """An asyncio client on a flushed database."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_server.url, decode_responses=False)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def vllm_engine(tmp_path_factory, redis_server):
    """skipjoin's engine (vLLM-CPU, SmolLM2, MLFQ, control port), started once per session.

    Tests change knobs through `engine.policy(...)` and must restore what they change."""
    from tests.vllm_engine import start_engine, stop_engine

    url = os.environ.get("SKIPJOIN_TEST_ENGINE_URL")
    if url:  # an engine someone started already (its control port in SKIPJOIN_TEST_ENGINE_CONTROL)
        from tests.vllm_engine import Engine

        yield Engine(url, os.environ.get("SKIPJOIN_TEST_ENGINE_CONTROL", ""), None, "")
        return
    log = str(tmp_path_factory.mktemp("engine") / "vllm.log")
    # 256 blocks of 32 tokens: 8,192 KV tokens, so a few long requests run it short.
    # Its own Redis database: tests that flush or read database 0 see no stray engine.
    control = redis_server.url.rsplit("/", 1)[0] + "/15"
    engine = start_engine(log, "--redis-url", control, extra=("--num-gpu-blocks-override", "256"))
    try:
        yield engine
    finally:
        stop_engine(engine)
