"""``redisclient.read_many``: commands packed in C on a connection of the client's pool, against a real
redis-server: the answers a pipeline gives, and a connection never handed back with answers unread."""

from __future__ import annotations

import pytest
import redis

from ulak import redisclient

NUMBERS = [f"90532{i:07d}" for i in range(5_000)]


def test_many_numbers_answer_as_a_pipeline_does(redis_client: redis.Redis) -> None:
    redis_client.sadd("ulak:optouts", *NUMBERS[::7])
    redis_client.sadd("ulak:consent", *NUMBERS[::3], "İ-not-a-number")
    commands = [
        ("SMISMEMBER", "ulak:optouts", *NUMBERS),
        ("SMISMEMBER", "ulak:consent", *NUMBERS, "İ-not-a-number".encode()),
    ]
    pipe = redis_client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    assert redisclient.read_many(redis_client, commands) == pipe.execute()
    got = redisclient.read_many(redis_client, commands[1:])[0]
    assert sum(got) == len(NUMBERS[::3]) + 1 and got[-1] == 1


def test_an_error_answered_leaves_no_answer_for_the_next_call(redis_client: redis.Redis) -> None:
    redis_client.set("ulak:a-string", "x")
    redis_client.sadd("ulak:optouts", NUMBERS[0])
    commands = [("SMISMEMBER", "ulak:a-string", *NUMBERS[:3]), ("SMISMEMBER", "ulak:optouts", *NUMBERS[:3])]
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        redisclient.read_many(redis_client, commands)
    # The second command's answer was never read: its connection must not serve the next call.
    for _ in range(3):
        assert redisclient.read_many(redis_client, commands[1:]) == [[1, 0, 0]]
        assert redis_client.get("ulak:a-string") == b"x"


def test_a_connection_the_server_dropped_is_replaced(redis_client: redis.Redis) -> None:
    redis_client.sadd("ulak:optouts", NUMBERS[1])
    command = ("SMISMEMBER", "ulak:optouts", *NUMBERS[:2])
    assert redisclient.read_many(redis_client, [command]) == [[0, 1]]  # a connection now in the pool
    options = redis_client.connection_pool.connection_kwargs
    killer = redis.Redis(connection_pool=redis.ConnectionPool(**options))
    assert killer.client_kill_filter(_type="normal", skipme=True) >= 1
    killer.close()
    assert redisclient.read_many(redis_client, [command]) == [[0, 1]]
