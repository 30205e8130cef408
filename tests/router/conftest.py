"""Fixtures of the gateway tests."""

import pytest

from router.redis_server import RedisServer, free_port


@pytest.fixture
def aof_redis(tmp_path):
    """A Redis of this test's own, with AOF on, that the test may stop and start again."""
    server = RedisServer(port=free_port(), persist_dir=str(tmp_path / "redis"), appendonly=True)
    server.start()
    yield server
    server.stop()
