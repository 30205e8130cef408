"""The engine side of the control plane against a real Redis: knobs in, stats out, outages survived."""

import json
import threading
import time

import redis as sync_redis

from engine.control import KnobWatcher, StatsPublisher
from router.redis_server import RedisServer
from wire import control


class Seen:
    def __init__(self):
        self.calls: list[tuple[dict, int]] = []
        self.event = threading.Event()

    def __call__(self, knobs, version):
        self.calls.append((knobs, version))
        self.event.set()

    def wait(self, n: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < n:
            assert time.monotonic() < deadline, f"only {len(self.calls)} calls"
            time.sleep(0.01)


def set_knobs(url: str, knobs: dict, version: int) -> None:
    r = sync_redis.Redis.from_url(url)
    r.hset(control.POLICY, mapping={"knobs": json.dumps(knobs), "version": version})
    r.close()


async def test_watcher_calls_once_at_start_then_on_each_version(redis_server, redis_client):
    set_knobs(redis_server.url, {"levels": 4}, 3)
    seen = Seen()
    watcher = KnobWatcher(redis_server.url, seen, poll_s=0.05).start()
    try:
        seen.wait(1)
        assert seen.calls == [({"levels": 4}, 3)]
        time.sleep(0.2)
        assert len(seen.calls) == 1  # an unmoved version is not reported again
        set_knobs(redis_server.url, {"levels": 4, "base_quantum": 8}, 4)
        seen.wait(2)
        assert seen.calls[1] == ({"levels": 4, "base_quantum": 8}, 4)
    finally:
        watcher.stop()


async def test_watcher_is_silent_while_nothing_is_set(redis_server, redis_client):
    seen = Seen()
    watcher = KnobWatcher(redis_server.url, seen, poll_s=0.05).start()
    time.sleep(0.3)
    watcher.stop()
    assert seen.calls == []


def test_watcher_survives_a_redis_outage_and_a_failing_callback(tmp_path):
    server = RedisServer(persist_dir=str(tmp_path)).start()
    port = server.port
    calls = []

    def on_change(knobs, version):
        calls.append(version)
        if version == 1:
            raise RuntimeError("scheduler refused it")

    set_knobs(server.url, {"levels": 2}, 1)
    watcher = KnobWatcher(server.url, on_change, poll_s=0.05).start()
    try:
        deadline = time.monotonic() + 5
        while calls != [1]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        server.stop()
        time.sleep(0.3)  # polls fail meanwhile; the thread must live on
        assert watcher._thread.is_alive()
        server = RedisServer(port=port, persist_dir=str(tmp_path)).start()
        set_knobs(server.url, {"levels": 3}, 2)
        deadline = time.monotonic() + 8
        while calls != [1, 2]:
            assert time.monotonic() < deadline, calls
            time.sleep(0.02)
    finally:
        watcher.stop()
        server.stop()


async def test_stats_publisher_writes_json_with_ttl_rate_limited(redis_server, redis_client):
    pub = StatsPublisher(redis_server.url, "engine-a", every_s=0.2, ttl_s=3)
    try:
        assert pub.publish({"running": 3, "waiting": 1, "levels": [2, 1, 0]})
        assert not pub.publish({"running": 9, "waiting": 9})  # within every_s: skipped
        raw = await redis_client.get(control.engine_stats("engine-a"))
        doc = json.loads(raw)
        assert (doc["running"], doc["waiting"], doc["levels"]) == (3, 1, [2, 1, 0])
        assert 0 < await redis_client.ttl(control.engine_stats("engine-a")) <= 3
        time.sleep(0.25)
        assert pub.publish({"running": 4, "waiting": 0})
        assert json.loads(await redis_client.get(control.engine_stats("engine-a")))["running"] == 4
    finally:
        pub.close()


def test_stats_publisher_never_raises_without_redis():
    from router.redis_server import free_port

    pub = StatsPublisher(f"redis://127.0.0.1:{free_port()}/0", "engine-b", every_s=0)
    assert pub.publish({"running": 1}) is False
    pub.close()


def test_bad_arguments_are_value_errors():
    import pytest

    with pytest.raises(ValueError, match="replica_id"):
        StatsPublisher("redis://127.0.0.1:1/0", "")
    with pytest.raises(ValueError, match="poll_s"):
        KnobWatcher("redis://127.0.0.1:1/0", lambda k, v: None, poll_s=0)
