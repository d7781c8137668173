"""Start Ulak's stack for one process to drive: Redis (embedded unless configured), Ray, actors, binds."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import ray

from actors.factories import connection_actor, throttle_actor
from ulak.redis_server import RedisServer, default_state_dir
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
        self.throttles: dict[str, Any] = {}
        self.binds: dict[str, list[Any]] = {}

    def start(self, *, bind_timeout: float = 30.0, binds: bool = True) -> Cluster:
        """Start Redis (or use the configured one), Ray, and unless *binds* is false the operators'
        throttle and connection actors (a dry run needs none)."""
        if self.settings.redis.url:
            self.redis_url = self.settings.redis.url
        else:
            data_dir = self._redis_dir or self.settings.redis.data_dir or default_state_dir() / "redis"
            self._redis = RedisServer(Path(data_dir), appendonly=self.settings.redis.appendonly).start()
            self.redis_url = self._redis.url
        if not ray.is_initialized():
            ray.init(
                address=self.settings.ray.address,
                num_cpus=self.settings.ray.num_cpus,
                include_dashboard=False,
                log_to_driver=False,
            )
            self._started_ray = True
        for op in self.settings.operators if binds else ():
            self.throttles[op.name] = throttle_actor(op, namespace=self.namespace)
            self.binds[op.name] = [
                connection_actor(
                    b,
                    op,
                    redis_url=self.redis_url,
                    throttle=self.throttles[op.name],
                    namespace=self.namespace,
                )
                for b in op.binds
            ]
        ray.get([h.start.remote(bind_timeout) for hs in self.binds.values() for h in hs])
        return self

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        return {op: ray.get([h.describe.remote() for h in hs]) for op, hs in self.binds.items()}

    def stop(self) -> None:
        handles = [h for hs in self.binds.values() for h in hs]
        if handles:
            ray.get([h.stop.remote() for h in handles])
        for h in [*handles, *self.throttles.values()]:
            ray.kill(h)
        self.binds.clear()
        self.throttles.clear()
        if self._started_ray:
            ray.shutdown()
        if self._redis is not None:
            self._redis.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
