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
