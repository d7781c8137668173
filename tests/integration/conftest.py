"""Integration fixtures: a private redis-server, the simulator over TCP, and one local Ray per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import SimProcess
from ulak.redis_server import RedisServer
from ulak.runtime import RAY_WORKER_POOL


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session, on a free port, in a temp dir: never a shared instance."""
    with RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False) as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()  # our own instance: tests start from an empty database
    yield client
    client.close()


@pytest.fixture
def sim(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SimProcess]:
    """The SMSC simulator; pass extra arguments with @pytest.mark.sim_args("--tps", "50")."""
    marker = request.node.get_closest_marker("sim_args")
    args: tuple[str, ...] = marker.args if marker else ()
    process = SimProcess(tmp_path, "--account", "test:secret", "--seed", "7", *args)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    """A local Ray, started once per test session with an explicit CPU count."""
    import ray

    ray.init(
        address="local",  # never a cluster an earlier `ray start` left its address for
        num_cpus=2,
        include_dashboard=False,
        namespace="ulak-tests",
        log_to_driver=False,
        _system_config=dict(RAY_WORKER_POOL),  # as a Ray of the product's own (actors.local)
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def redis_server_url(redis_server: RedisServer) -> str:
    """The session's private Redis URL (for tests that flush it themselves, e.g. under hypothesis)."""
    return redis_server.url
