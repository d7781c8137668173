"""A receipt is answered only once it is durable, and a bind that dies leaves its receipts to the next
(issue 14, item 9): BindClient against the simulator over TCP, the inbox and ledger in a real Redis."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import redis
import redis.asyncio

from tests.helpers import SimProcess, async_wait_for
from tests.integration.binds import campaign, counters, operator_for
from ulak import keys
from ulak.dispatch.bind import BindClient
from ulak.dispatch.fence import FencedWrites
from ulak.dispatch.inbox import RedisInbox
from ulak.dispatch.ledger import Event, ReceiptSeen, RedisLedger
from ulak.dispatch.throttle import LocalTokenSource, SlidingWindowLimiter

KEY = keys.bind_inbox("op", "b1", ledger="op")


def _bind(op: Any, client: Any, sink: Any, inbox: Any, claim: Any = None) -> BindClient:
    return BindClient(
        op.binds[0],
        op,
        tokens=LocalTokenSource(SlidingWindowLimiter(op.tps)),
        sink=sink,
        inbox=inbox,
        claim=claim,
    )


async def _stats(sim: SimProcess) -> dict[str, Any]:
    return await asyncio.to_thread(sim.stats)


def _singles(sim: SimProcess, rows: int, job: str) -> tuple[Any, list[Any]]:
    """The bind's operator, and the single-part messages of a campaign of *rows*."""
    op = operator_for(sim)
    parts, _ = campaign(op, rows, job=job)
    return op, [p for p in parts if p.parts == 1]


def test_receipts_a_dying_bind_answered_are_applied_by_the_next(
    sim: SimProcess, redis_server_url: str
) -> None:
    op, singles = _singles(sim, 40, "dying")

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_server_url)
        ledger = RedisLedger(client, ledger=op.name)

        # The first bind's process "dies" before it writes any receipt to the ledger: its sink
        # writes the sends and acks, and loses the receipts, as a killed process would.
        async def receipts_lost(events: list[Event]) -> None:
            await ledger.apply_async([e for e in events if not isinstance(e, ReceiptSeen)])

        first = _bind(op, client, receipts_lost, RedisInbox(client, KEY))
        await first.start()
        first.enqueue(singles)
        await first.drain(timeout=30)
        await async_wait_for(
            lambda: first.stats.receipts >= len(singles), timeout=30, what="receipts at the first bind"
        )
        # The SMSC was answered for every one of them, so it will never send them again...
        stats = await _stats(sim)
        while stats.get("deliver_sm_resp", 0) < len(singles):
            await asyncio.sleep(0.02)
            stats = await _stats(sim)
        await first.stop()
        # ...and the ledger has none of them: only the inbox does.
        assert counters(redis_server_url, "dying").get("receipts", 0) == 0
        assert await client.llen(KEY) == len(singles)

        second = _bind(op, client, functools.partial(ledger.apply_async, inbox=KEY), RedisInbox(client, KEY))
        await second.start()
        await async_wait_for(
            lambda: counters(redis_server_url, "dying").get("receipts", 0) >= len(singles),
            timeout=10,
            what="the first bind's receipts applied by the second",
        )
        await second.stop()
        assert await client.llen(KEY) == 0
        await client.aclose()

    asyncio.run(scenario())
    got = counters(redis_server_url, "dying")
    assert got["delivered"] == got["receipts"] == len(singles)
    assert got.get("receipts_duplicate", 0) == 0


class _Unreachable:
    """An inbox whose Redis is away until ``back`` is set (the SMSC and the ledger are real)."""

    def __init__(self, inbox: RedisInbox) -> None:
        self.inner = inbox
        self.key = inbox.key
        self.back = False

    async def append(self, receipts: list[ReceiptSeen]) -> None:
        if not self.back:
            raise redis.exceptions.ConnectionError("Connection refused")
        await self.inner.append(receipts)

    async def unsettled(self) -> list[ReceiptSeen]:
        return await self.inner.unsettled()


def test_a_receipt_that_cannot_be_made_durable_is_not_answered(
    sim: SimProcess, redis_server_url: str
) -> None:
    op, singles = _singles(sim, 20, "unreachable")

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_server_url)
        ledger = RedisLedger(client, ledger=op.name)
        inbox = _Unreachable(RedisInbox(client, KEY))
        bind = _bind(op, client, functools.partial(ledger.apply_async, inbox=KEY), inbox)
        await bind.start()
        bind.enqueue(singles)
        await bind.drain(timeout=30)
        await async_wait_for(lambda: bind.stats.receipts >= len(singles), timeout=30, what="receipts read")
        await async_wait_for(lambda: bind.stats.inbox_errors >= 2, timeout=10, what="failed inbox writes")
        assert (await _stats(sim)).get("deliver_sm_resp", 0) == 0
        assert counters(redis_server_url, "unreachable").get("receipts", 0) == 0

        inbox.back = True
        await async_wait_for(
            lambda: counters(redis_server_url, "unreachable").get("receipts", 0) >= len(singles),
            timeout=10,
            what="receipts in the ledger",
        )
        assert (await _stats(sim))["deliver_sm_resp"] == len(singles)
        await bind.stop()
        assert await client.llen(KEY) == 0
        await client.aclose()

    asyncio.run(scenario())
    got = counters(redis_server_url, "unreachable")
    assert got["delivered"] == len(singles)


def test_a_bind_whose_name_another_process_took_stops_sending_at_once(
    sim: SimProcess, redis_server_url: str
) -> None:
    """Two processes of one bind (a node cut off from Ray's control, and its bind made again
    elsewhere): the old one's next write meets the new one's fence, and it stops sending, so the
    parts still queued in it never reach the SMSC unaccounted for. The new one takes the name
    before the old has necessarily written anything: the name is the later process's because
    each claims it before it sends (it once went to whichever wrote first, and under load the
    old one took it back)."""
    op = operator_for(sim, tps=50)
    parts, _ = campaign(op, 300, job="superseded")
    fence = keys.bind_fence("op", "superseded", ledger="op")

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_server_url)
        old_writes = FencedWrites(client, ledger="op", fence=fence, inbox=KEY)
        old = _bind(op, client, old_writes.apply, old_writes.inbox, claim=old_writes.claim)
        await old.start()
        old.enqueue(parts)
        await async_wait_for(lambda: old.stats.submitted >= 20, timeout=30, what="the old bind to send")
        new_writes = FencedWrites(client, ledger="op", fence=fence, inbox=KEY)
        await new_writes.claim()
        assert (old_writes.generation, new_writes.generation) == (1, 2)
        await async_wait_for(lambda: old.state.value == "closed", timeout=10, what="the old bind to stop")
        stopped_at = old.stats.submitted
        at_smsc = (await _stats(sim)).get("submit_sm_accepted", 0)
        await asyncio.sleep(1.0)  # at 50/s, 50 more would have gone by now
        assert old_writes.superseded and old.stats.submitted == stopped_at and old.queued > 0
        assert (await _stats(sim)).get("submit_sm_accepted", 0) == at_smsc
        await old.stop()
        await client.aclose()

    asyncio.run(scenario())
