"""SmppConnectionActor: one per bind, an async actor that holds the bind for the life of the cluster.

All the logic lives in ``ulak.dispatch.bind.BindClient``; this actor only gives it a Redis client for
the ledger and a handle to the operator's ThrottleActor, and takes work in batches.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import ray

from actors.throttle import RayTokenSource
from ulak import keys, redisclient
from ulak.dispatch.batch import PartBatch, unpack_parts
from ulak.dispatch.bind import BindClient, OutboundPart
from ulak.dispatch.fence import FencedWrites
from ulak.dispatch.sendrecord import RedisSendRecord
from ulak.logging import configure_logging
from ulak.refusals import Follower, Scope
from ulak.replies.mo import RedisMoStore
from ulak.runtime import relax_gc
from ulak.settings import BindConfig, OperatorConfig


class SmppConnectionActor:
    def __init__(self, bind: BindConfig, operator: OperatorConfig, redis_url: str, throttle: Any) -> None:
        configure_logging(json=True)
        relax_gc()
        self._redis = redisclient.async_client(redis_url, retries=3)  # short: the bind retries (redisclient)
        # The send record is this process's own, registered under the bind's name: the pool that
        # finds the process dead reads it there (cluster.send.pool), whatever bind has since taken the name.
        actor_id = ray.get_runtime_context().get_actor_id() or "driver"
        fence = keys.bind_fence(operator.name, bind.name, ledger=operator.ledger_name)
        self._record = RedisSendRecord(
            self._redis,
            keys.bind_sends(operator.name, bind.name, actor_id, ledger=operator.ledger_name),
            registry=keys.bind_records(operator.name, bind.name, ledger=operator.ledger_name),
            fence=fence,  # nothing is staged, so nothing sent, once a later process holds the name
            generation=lambda: self._writes.generation,
        )
        # Receipts are durable in the bind's inbox before they are answered; the ledger trims it as
        # it applies them. Named by the bind, not the process: the next actor of this name (Ray
        # never runs two at once) applies what a dead one left.
        # Both go through the bind's fence: what a Redis that lost its last seconds lost, the bind
        # writes again (ulak.dispatch.fence).
        self._writes = FencedWrites(
            self._redis,
            ledger=operator.ledger_name,  # its slot: shared with the operators of the same account
            fence=fence,
            inbox=keys.bind_inbox(operator.name, bind.name, ledger=operator.ledger_name),
            log_context={"operator": operator.name, "bind": bind.name},
            replies=RedisMoStore(self._redis, keys.MO_PARTS),
        )
        self.client = BindClient(
            bind,
            operator,
            tokens=RayTokenSource(throttle),
            sink=self._writes.apply,
            record=self._record,
            inbox=self._writes.inbox,
            claim=self._writes.claim,
            replies=self._writes.replies,
            refusals=functools.partial(Follower().aread, self._redis),
        )
        self._started = False
        self._watch: asyncio.Task[None] | None = None
        self._node = ray.get_runtime_context().get_node_id()  # where the bind's connection leaves from

    async def start(self, bind_timeout: float = 30.0) -> dict[str, Any]:
        """Start holding the bind; with a *bind_timeout*, wait that long for it to be bound (a
        ``TimeoutError`` saying why not). With none, return at once: binding goes on in here, and
        nothing is raised for a caller that does not wait (each such error was a traceback in the
        log at every start of the stack: issue 14, item 5)."""
        if not self._started:
            self._started = True
            await self.client.start()
            # Referenced here: asyncio keeps only a weak reference to a task.
            self._watch = asyncio.create_task(self._writes.watch(), name="fence-watch")
        if bind_timeout > 0:
            try:
                await self.client.wait_bound(bind_timeout)
            except TimeoutError:
                d = self.client.describe()
                raise TimeoutError(
                    f"bind {self.client.bind.name} of {self.client.operator.name} not bound after "
                    f"{bind_timeout:g} s: {d['state']}, {d['last_error'] or 'no answer'}"
                ) from None
        return self.client.describe()

    async def enqueue(
        self, parts: PartBatch | list[OutboundPart], weight: float = 1.0, scope: Scope | None = None
    ) -> int:
        """Queue a batch (its job's share of the bind: *weight*; whose refusals stop its rows:
        *scope*); returns how many parts now wait here (the caller's back-pressure signal). Callers
        send ``ulak.dispatch.batch.pack_parts(parts)``."""
        self.client.enqueue(unpack_parts(parts), weight=weight, scope=scope)
        return self.client.queued

    async def withdraw(self, job: str) -> list[OutboundPart]:
        """Take back *job*'s queued parts and write the ledger events so far, so that afterwards the
        ledger holds every part of *job* this bind has sent."""
        parts = self.client.withdraw(job)
        with redisclient.unavailable():  # the runner waits for Redis, then asks again
            await self.client.flush()
            await self._writes.verify()  # and none of it lost by a Redis that crashed since
        return parts

    async def pending(self, job: str) -> int:
        return self.client.pending_of(job)

    async def queued(self, job: str) -> int:
        return self.client.queued_of(job)

    async def backlog(self) -> int:
        return self.client.queued + self.client.in_flight

    async def drain(self, timeout: float) -> dict[str, Any]:
        with redisclient.unavailable():
            await self.client.drain(timeout)
        return self.client.describe()

    async def describe(self) -> dict[str, Any]:
        writes = self._writes
        return {
            **self.client.describe(),
            "send_record": self._record.key,
            "node": self._node,
            "replayed_writes": writes.replayed_writes,
            "lost_writes": writes.lost_writes,
            "superseded": writes.superseded,
        }

    async def stop(self) -> dict[str, Any]:
        if self._watch is not None:
            self._watch.cancel()
        await self.client.stop()
        await self._redis.aclose()
        return self.client.describe()
