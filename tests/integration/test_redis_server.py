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


def test_the_server_needs_its_password_and_keeps_it_private_and_off_the_command_line(tmp_path: Path) -> None:
    import stat

    from ulak.redis_server import redacted

    with RedisServer(tmp_path, appendonly=False) as server:
        assert server.password and server.password in server.url
        stranger = redis.Redis(port=server.port)
        try:
            stranger.ping()
            raise AssertionError("a client without the password was let in")
        except redis.AuthenticationError:
            pass
        finally:
            stranger.close()
        assert server.process is not None
        cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()  # what ps shows every user
        assert server.password.encode() not in cmdline
        for name in ("requirepass", "redis.conf"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
        assert server.password not in redacted(server.url) and "***" in redacted(server.url)
        first = server.password
    with RedisServer(tmp_path, appendonly=False) as again:  # a restart on the same state keeps it
        assert again.password == first
