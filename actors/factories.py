"""One factory per actor: all placement and restart policy for Ray actors, visible in one place."""

from __future__ import annotations

from typing import Any

import ray

from actors.connection import SmppConnectionActor
from actors.throttle import ThrottleActor
from ulak.settings import BindConfig, OperatorConfig


def throttle_actor(operator: OperatorConfig, *, namespace: str) -> Any:
    """The operator's ThrottleActor: named so every bind finds the same one; restarted if it dies
    (a restart forgets outstanding leases, which errs on the side of sending less for a second)."""
    cls: Any = ray.remote(num_cpus=0, max_restarts=-1)(ThrottleActor)
    options = {"name": f"throttle:{operator.name}", "namespace": namespace, "get_if_exists": True}
    return cls.options(max_concurrency=1, **options).remote(operator.name, operator.tps)


def connection_actor(
    bind: BindConfig, operator: OperatorConfig, *, redis_url: str, throttle: Any, namespace: str
) -> Any:
    """The bind's SmppConnectionActor: an async actor (one event loop holds the socket), not restarted
    automatically: a dead bind's in-flight parts are accounted by the ledger, and the runner makes a
    new actor."""
    cls: Any = ray.remote(num_cpus=0, max_restarts=0)(SmppConnectionActor)
    options = {"name": f"bind:{operator.name}:{bind.name}", "namespace": namespace, "get_if_exists": True}
    return cls.options(max_concurrency=64, **options).remote(bind, operator, redis_url, throttle)
