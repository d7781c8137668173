"""One factory per actor: all placement and restart policy for Ray actors, visible in one place."""

from __future__ import annotations

import functools
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.connection import SmppConnectionActor
from actors.job import JobActor
from actors.replies import RepliesActor
from actors.throttle import ThrottleActor
from actors.webhooks import WebhookActor
from cluster.plane import ControlPlane
from cluster.send.pool import BindRef, throttle_actor_name
from ulak.settings import BindConfig, OperatorConfig, Settings, WebhooksConfig

# Ray keeps an event record of every actor call in the GCS for its dashboard's task table (up to
# 100,000 of them, ~2.6 KB each here): 120,000 calls to one actor grew gcs_server by 315 MiB, and the
# 30-minute soak by 8.6 MiB a minute (BENCHMARKS.md). Our actors are called for every lease and every
# feed; nothing of ours reads those records. Without them the same calls grew it by 3 MiB.
NO_TASK_EVENTS = {"enable_task_events": False}


def throttle_actor(operator: OperatorConfig, *, namespace: str, detached: bool = False) -> Any:
    """The operator's ThrottleActor: named so every bind finds the same one; restarted if it dies
    (a restart forgets outstanding leases, which errs on the side of sending less for a second)."""
    cls: Any = ray.remote(num_cpus=0, max_restarts=-1)(ThrottleActor)
    options: dict[str, Any] = {
        "name": throttle_actor_name(operator.name),
        "namespace": namespace,
        "get_if_exists": True,
    }
    if detached:
        options["lifetime"] = "detached"
    return cls.options(max_concurrency=1, **NO_TASK_EVENTS, **options).remote(operator.name, operator.tps)


NODE_RESOURCE_SHARE = 0.001  # of a bind's node_resource: a thousand binds to a node advertising 1


def connection_actor(
    bind: BindConfig,
    operator: OperatorConfig,
    *,
    redis_url: str,
    throttle: Any,
    namespace: str,
    detached: bool = False,
    node: str | None = None,
) -> Any:
    """The bind's SmppConnectionActor: an async actor (one event loop holds the socket). Not restarted
    by Ray: a new process could not tell which of the dead one's sends reached the SMSC. The bind
    pool settles a dead one's send record and makes a new one (``cluster.send.pool.BindPool``, the only
    caller: a job's runner that meets a dead bind, and the stack when it starts)."""
    cls: Any = ray.remote(num_cpus=0, max_restarts=0)(SmppConnectionActor)
    options: dict[str, Any] = {
        "name": BindRef(operator.name, bind.name).actor_name,
        "namespace": namespace,
        "get_if_exists": True,
    }
    if bind.node_resource:
        # Only a node that advertises the resource may hold the bind (the operator whitelists its IP
        # address). A sliver of it, so that any number of binds fit on one such node; with none
        # left, the actor waits to be placed and the pool shows the bind missing.
        options["resources"] = {bind.node_resource: NODE_RESOURCE_SHARE}
    if node is not None:
        # The node the pool chose to spread the operator's binds (``BindPool._spread``); soft, so a
        # node lost before the actor is placed sends it to another that offers the resource.
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node, soft=True)
    if detached:  # the control plane's binds outlive the process that created them (an API restart)
        options["lifetime"] = "detached"
    return cls.options(max_concurrency=64, **NO_TASK_EVENTS, **options).remote(
        bind, operator, redis_url, throttle
    )


def job_actor(job_id: str, *, settings: Settings, redis_url: str, namespace: str) -> Any:
    """The job's actor: detached (it outlives the API process that created it) and restarted by Ray
    whenever its process dies (it resumes from Redis). It takes no CPU: its ingest runs as Ray Data
    tasks, its sending is waiting on binds."""
    cls: Any = ray.remote(num_cpus=0, max_restarts=-1)(JobActor)
    return cls.options(
        name=f"job:{job_id}",
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
        max_concurrency=4,
        **NO_TASK_EVENTS,
    ).remote(job_id, settings, redis_url, namespace, RayBinds())


def replies_actor(*, redis_url: str, settings: Settings, namespace: str) -> Any:
    """The cluster's replies processor: one, detached, restarted if its process dies (it reads its
    unacknowledged parts again)."""
    cls: Any = ray.remote(num_cpus=0, max_restarts=-1)(RepliesActor)
    return cls.options(
        name="replies", namespace=namespace, lifetime="detached", get_if_exists=True, **NO_TASK_EVENTS
    ).remote(
        redis_url,
        settings,
        functools.partial(control_plane, settings, redis_url=redis_url, namespace=namespace),
    )


def webhook_actor(
    *,
    redis_url: str,
    config: WebhooksConfig,
    ledgers: list[str],
    namespace: str,
    secrets: dict[str, str] | None = None,
) -> Any:
    """The cluster's webhook deliverer: one, detached, restarted if its process dies (it resumes from
    the outbox cursors in Redis). It reads the outbox of each of *ledgers*."""
    cls: Any = ray.remote(num_cpus=0, max_restarts=-1)(WebhookActor)
    return cls.options(
        name="webhooks", namespace=namespace, lifetime="detached", get_if_exists=True, **NO_TASK_EVENTS
    ).remote(redis_url, config, ledgers, secrets)


class RayBinds:
    """The bind pool's maker (``cluster.send.keeper.BindMaker``): throttles and binds as above."""

    throttle = staticmethod(throttle_actor)
    connection = staticmethod(connection_actor)


class RayActors(RayBinds):
    """The control plane's maker (``cluster.plane.ActorMaker``): the binds', and the job, replies
    and webhook actors as above."""

    job = staticmethod(job_actor)
    replies = staticmethod(replies_actor)
    webhooks = staticmethod(webhook_actor)


def control_plane(settings: Settings, *, redis_url: str, namespace: str | None = None) -> ControlPlane:
    """The control plane over this cluster's Ray actors (the API process's, and the replies
    actor's for the follow-ups it submits)."""
    return ControlPlane(settings, redis_url=redis_url, namespace=namespace, actors=RayActors())
