"""Start Ulak's stack for one process to drive: Redis (embedded unless configured), Ray, actors, binds."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import ray

from actors.factories import RayBinds
from cluster.send.pool import BindPool
from ulak.redis_server import RedisServer, default_state_dir
from ulak.runtime import ray_init_args
from ulak.settings import Settings


class Cluster:
    """Ulak's running pieces. Use as a context manager; ``stop()`` unbinds and stops what it started."""

    def __init__(
        self, settings: Settings, *, namespace: str | None = None, redis_dir: Path | None = None
    ) -> None:
        self.settings = settings
        self.namespace = namespace or f"{settings.ray.namespace}-{uuid.uuid4().hex[:8]}"
        self._redis_dir = redis_dir
        self._redis: RedisServer | None = None
        self._started_ray = False
        self.redis_url = ""
        self.pool: BindPool | None = None

    def start(self, *, bind_timeout: float = 30.0, binds: bool = True) -> Cluster:
        """Start Redis (or use the configured one), Ray, and unless *binds* is false the operators'
        throttle and connection actors (a dry run needs none)."""
        if self.settings.redis.url:
            self.redis_url = self.settings.redis.url
        else:
            data_dir = self._redis_dir or self.settings.redis.data_dir or default_state_dir() / "redis"
            self._redis = RedisServer.embedded(self.settings.redis, Path(data_dir)).start()
            self.redis_url = self._redis.url
        if not ray.is_initialized():
            ray.init(**ray_init_args(self.settings.ray))
            self._started_ray = True
        if binds:
            # Not detached: they end with this process (the namespace is this stack's own).
            self.pool = BindPool(
                self.settings,
                redis_url=self.redis_url,
                namespace=self.namespace,
                maker=RayBinds(),
                detached=False,
            )
            self.pool.ensure(bind_timeout=bind_timeout)
        return self

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        return self.pool.describe(timeout=30.0) if self.pool is not None else {}

    def throttle(self, operator: str) -> Any:
        """The operator's ThrottleActor (for benchmarks that read its figures)."""
        assert self.pool is not None, "the stack was started without binds, so without throttles"
        return self.pool.throttle(operator)

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.stop()
            self.pool.close()
            self.pool = None
        if self._started_ray:
            ray.shutdown()
        if self._redis is not None:
            self._redis.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
