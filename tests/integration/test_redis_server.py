"""The project's own redis-server: found without an OS package, private, and persistent when asked."""

from __future__ import annotations

from pathlib import Path

import redis

from ulak.redis_server import RedisServer, find_redis_server


def test_a_binary_is_available() -> None:
    assert Path(find_redis_server()).exists()


def test_fixture_instance_is_private_and_empty(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("ulak:test", "1")
    assert redis_client.get("ulak:test") == b"1"


def test_fixture_flushes_between_tests(redis_client: redis.Redis) -> None:
    assert redis_client.get("ulak:test") is None


def test_embedded_server_persists_with_aof(tmp_path: Path) -> None:
    with RedisServer(tmp_path, appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        client.set("ulak:job:1", "sending")
        client.close()
    assert (tmp_path / "appendonly.aof").exists()
    with RedisServer(tmp_path, appendonly=True) as again:
        client = redis.Redis.from_url(again.url)
        assert client.get("ulak:job:1") == b"sending"
        client.close()
