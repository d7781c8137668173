"""``ulak.pipelined`` against a real redis-server (with its password): many tasks' commands on one
connection each get their own answer; an error is its command's alone; a lost or stopped Redis fails
the commands in flight with a ConnectionError and the next command connects again."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
import redis
import redis.exceptions

from ulak.pipelined import PipelinedRedis, _Protocol, supports
from ulak.redis_server import RedisServer


def test_which_urls_it_reaches() -> None:
    assert supports("redis://:pw@10.0.0.1:6380/3")
    assert supports("rediss://user:pw@redis.example:6380/0")
    assert supports("unix:///run/redis.sock?db=2")
    assert not supports("redis+cluster://10.0.0.1:7000,10.0.0.2:7000")
    assert not supports("redis://10.0.0.1:6380/0?socket_timeout=3")  # an option it would ignore
    with pytest.raises(ValueError, match="cannot reach"):
        PipelinedRedis("redis+cluster://10.0.0.1:7000")


def test_concurrent_commands_each_get_their_own_answer(redis_server: RedisServer) -> None:
    url = redis_server.url.rsplit("/", 1)[0] + "/3"  # AUTH and SELECT on connecting
    plain = redis.Redis.from_url(url)
    plain.flushdb()

    async def run() -> list[object]:
        connection = PipelinedRedis(url)
        try:
            await asyncio.gather(*(connection.execute("SET", f"k{i}", i) for i in range(500)))
            return await asyncio.gather(
                *(connection.execute("GET", f"k{i}") for i in range(500)),
                connection.execute("NOSUCHCOMMAND"),
                connection.execute("EVALSHA", "0" * 40, 0),
                connection.execute("GET", "missing"),
                return_exceptions=True,
            )
        finally:
            await connection.close()

    answers = asyncio.run(run())
    assert answers[:500] == [str(i).encode() for i in range(500)]
    assert isinstance(answers[500], redis.exceptions.ResponseError) and "unknown command" in str(answers[500])
    assert isinstance(answers[501], redis.exceptions.NoScriptError)
    assert answers[502] is None
    assert plain.dbsize() == 500 and redis.Redis.from_url(redis_server.url).get("k1") is None  # db 3's
    plain.close()


def test_a_wrong_password_is_said(redis_server: RedisServer) -> None:
    url = f"redis://:wrong@127.0.0.1:{redis_server.port}/0"

    async def run() -> None:
        connection = PipelinedRedis(url)
        try:
            await connection.execute("PING")
        finally:
            await connection.close()

    with pytest.raises(redis.exceptions.AuthenticationError):
        asyncio.run(run())


def test_a_lost_or_stopped_redis_fails_what_was_in_flight_and_comes_back(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, appendonly=False).start()
    try:

        async def run() -> list[object]:
            connection = PipelinedRedis(server.url, timeout=1.0)
            outcomes: list[object] = [await connection.execute("SET", "a", "1")]
            # Stopped (SIGSTOP): a command in flight fails once it has waited the timeout.
            assert server.process is not None
            server.process.send_signal(signal.SIGSTOP)
            try:
                await connection.execute("GET", "a")
            except redis.exceptions.ConnectionError as exc:
                outcomes.append(type(exc))
            server.process.send_signal(signal.SIGCONT)
            outcomes.append(await connection.execute("GET", "a"))  # connected again
            # Killed: in flight fails, and so does the next until it is back.
            pending = asyncio.ensure_future(connection.execute("BLPOP", "nothing", 0))
            await asyncio.sleep(0)  # it is written
            server.kill()
            outcomes.append(type((await asyncio.gather(pending, return_exceptions=True))[0]))
            try:
                await connection.execute("GET", "a")
            except redis.exceptions.ConnectionError as exc:
                outcomes.append(type(exc))
            server.start()
            outcomes.append(await connection.execute("SET", "b", "2"))
            await connection.close()
            return outcomes

        assert asyncio.run(run()) == [
            b"OK",
            redis.exceptions.ConnectionError,
            b"1",
            redis.exceptions.ConnectionError,
            redis.exceptions.ConnectionError,
            b"OK",
        ]
    finally:
        server.stop()


def test_a_command_on_a_connection_lost_while_connecting_fails_at_once() -> None:
    """Not left waiting for an answer that cannot come (the connection went during AUTH/SELECT)."""

    async def run() -> list[object]:
        protocol = _Protocol()
        protocol.connection_lost(ConnectionResetError())
        connection = PipelinedRedis("redis://127.0.0.1:1/0")
        answers: list[object] = await asyncio.gather(
            connection._send(protocol, ("PING",)), return_exceptions=True
        )
        return answers

    [answer] = asyncio.run(run())
    assert isinstance(answer, redis.exceptions.ConnectionError)
