import redis

from router.cli import main as cli_main
from router.settings import Settings


def test_redis_fixture_is_a_real_server(redis_server):
    r = redis.Redis.from_url(redis_server.url)
    r.zadd("q", {"a": 2.0, "b": 1.0})
    assert r.zpopmin("q") == [(b"b", 1.0)]
    assert r.info("server")["redis_version"].startswith(("6.", "7."))


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("SKIPJOIN_ENGINES", "http://a:1/, http://b:2")
    monkeypatch.setenv("SKIPJOIN_AGING_RATE", "2.5")
    s = Settings()
    assert s.engine_urls == ["http://a:1", "http://b:2"]
    assert s.aging_rate == 2.5


def test_cli_help_lists_commands(capsys):
    assert cli_main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("serve", "engine", "bench", "simulate", "predictor-eval"):
        assert cmd in out
    assert cli_main(["nope"]) == 2
