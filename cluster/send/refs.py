"""How the bind pool names a bind (``BindRef``), the errors a call to one raises, and how long a
call may take."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ray

from ulak.dispatch.part import OutboundPart


class BindDied(Exception):
    """A bind's process died under a call: ``BindPool.replace_dead`` settles it and makes a new one."""


class BindUnreachable(BindDied):
    """A bind did not answer a call: its node, the node's raylet or the network to it went away, or
    the process is stuck. It may still be alive (a network that comes back), so what it holds is
    neither sent elsewhere nor settled until Ray says it died (``BindPool.recover``)."""


# What Ray raises when an actor's process, its node, that node's raylet or the network to it goes
# away. A real machine that dies or drops off the network shows first as ActorUnavailableError, RPC
# errors and timeouts, and only once Ray's health checks give up on the node as ActorDiedError (issue
# 30: the runner treated the first kind as its own bug, and failed the job).
ACTOR_LOST: tuple[type[Exception], ...] = (
    ray.exceptions.RayActorError,  # ActorDiedError, ActorUnavailableError
    ray.exceptions.NodeDiedError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.LocalRayletDiedError,
    ray.exceptions.ObjectLostError,  # and OwnerDiedError
    ray.exceptions.RpcError,
    ray.exceptions.GetTimeoutError,
    ray.exceptions.RaySystemError,
)
CALL_TIMEOUT = 10.0  # seconds a bind may take to answer a call before it counts as unreachable
DESCRIBE_TIMEOUT = 0.75  # the API's look at every bind, all asked at once: it answers within ~1 s


@dataclass(frozen=True)
class BindRef:
    """One bind of the pool, as its callers name it."""

    operator: str
    bind: str

    @property
    def actor_name(self) -> str:
        """The name of its SmppConnectionActor (Ray runs one live actor per name)."""
        return f"bind:{self.operator}:{self.bind}"


def throttle_actor_name(operator: str) -> str:
    """The name of *operator*'s ThrottleActor, which every bind of it finds by."""
    return f"throttle:{operator}"


Take = Callable[[str], list[OutboundPart]]
