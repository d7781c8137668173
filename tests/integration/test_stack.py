"""What ``ulak up`` keeps between runs: the local user's API key."""

from __future__ import annotations

import redis

from api.cli.stack import StackInfo, local_key
from api.keys import create_key, lookup


def test_a_restart_keeps_the_saved_key_whatever_port_the_redis_has_now(redis_client: redis.Redis) -> None:
    """The embedded Redis comes back on another port: the key saved last time still works (issue 14:
    every restart wrote ``"token": null`` and every CLI call then failed ``unauthorized``)."""
    token, _ = create_key(redis_client, name="local (ulak up)")
    saved = StackInfo("http://127.0.0.1:8000", token, "redis://:pw@127.0.0.1:1/0")  # the old port
    assert local_key(redis_client, saved=saved, may_create=False) == token


def test_a_lost_key_is_replaced_only_where_the_redis_is_ours(redis_client: redis.Redis) -> None:
    create_key(redis_client, name="someone else's")
    lost = StackInfo("http://127.0.0.1:8000", "not-a-key", "redis://127.0.0.1:1/0")
    assert local_key(redis_client, saved=lost, may_create=False) is None  # their Redis: no key of ours
    token = local_key(redis_client, saved=lost, may_create=True)  # our embedded one: a new key
    assert token is not None and lookup(redis_client, token) is not None
