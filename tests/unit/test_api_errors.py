"""What the API answers when Redis, or one shard of a Redis Cluster, cannot serve a request."""

from __future__ import annotations

import pytest
import redis.exceptions
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors

UNAVAILABLE = [
    redis.exceptions.ConnectionError("Connection refused"),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    redis.exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
    # Not a RedisError: raised by the cluster client when no node it knows serves the key's slot.
    redis.exceptions.SlotNotCoveredError("Command # 1 (GET) of pipeline caused error: slot 42 not covered"),
]


def _answer(exc: Exception) -> tuple[int, dict[str, object]]:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    return response.status_code, response.json()


@pytest.mark.parametrize("exc", UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_redis_that_cannot_serve_is_a_503_saying_try_again(exc: Exception) -> None:
    status, body = _answer(exc)
    assert (status, body["code"]) == (503, "redis_unavailable"), body


def test_a_bug_in_a_redis_call_is_a_500_not_an_outage() -> None:
    status, body = _answer(redis.exceptions.CrossSlotTransactionError("keys in different slots"))
    assert status == 500, body
