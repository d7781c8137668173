"""What the API answers, and what an actor raises, when Redis, or one shard of a Redis Cluster,
cannot serve a request."""

from __future__ import annotations

import pickle

import pytest
import redis.exceptions
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors
from ulak import redisclient

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


@pytest.mark.parametrize("exc", UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_an_actor_says_redis_is_away_in_an_error_ray_can_carry(exc: Exception) -> None:
    """redis-py's cluster errors reached the runner as a bare RayError, and failed the job."""
    with pytest.raises(redisclient.RedisUnavailable) as raised, redisclient.unavailable():
        raise exc
    carried = pickle.loads(pickle.dumps(raised.value))
    assert isinstance(carried, redisclient.UNREACHABLE) and type(exc).__name__ in str(carried)


def test_other_errors_leave_an_actor_as_they_are() -> None:
    with pytest.raises(KeyError), redisclient.unavailable():
        raise KeyError("a bug")
