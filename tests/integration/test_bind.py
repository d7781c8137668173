"""BindClient against the simulator over TCP, with the ledger in a real Redis: no Ray involved."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio

from tests.helpers import SimProcess, ledger_hash
from tests.integration.binds import (
    TEXTS,
    campaign,
    counters,
    operator_for,
    record_keys,
    wait_receipts,
)
from ulak import keys
from ulak.dispatch.bind import BindClient, OutboundPart
from ulak.dispatch.ledger import RedisLedger
from ulak.dispatch.sendrecord import RedisSendRecord, read_record
from ulak.dispatch.throttle import LocalTokenSource, SlidingWindowLimiter
from ulak.settings import OperatorConfig
from ulak.smpp.receipt import MessageIdFormat
from ulak.text import Concat


async def run_bind(
    op: OperatorConfig,
    url: str,
    parts: list[OutboundPart],
    *,
    settle: float = 0.0,
    receipts: Callable[[], int] | int = 0,
) -> BindClient:
    client = redis.asyncio.Redis.from_url(url)
    ledger = RedisLedger(client, ledger=op.name)
    limiter = LocalTokenSource(SlidingWindowLimiter(op.tps))
    record = RedisSendRecord(client, "test:bind:sends")
    bind = BindClient(op.binds[0], op, tokens=limiter, sink=ledger.apply_async, record=record)
    await bind.start()
    bind.enqueue(parts)
    await bind.drain(timeout=30)
    await asyncio.sleep(settle)  # let receipts arrive
    # The SMSC holds receipts not yet sent for the next bind of the account: those that it had not
    # sent when this one unbinds would never come. Wait (with a deadline) for as many as expected.
    deadline = time.monotonic() + 30
    while bind.stats.receipts < (receipts if isinstance(receipts, int) else receipts()):
        assert time.monotonic() < deadline, f"receipts: {bind.stats.receipts} seen, {bind.describe()}"
        await asyncio.sleep(0.02)
    await bind.stop()
    assert not await client.exists(record.key)  # all settled and written: nothing left to account for
    await client.aclose()
    return bind


@pytest.mark.parametrize("concat", [Concat.UDH8, Concat.SAR, Concat.PAYLOAD])
def test_every_part_exactly_once_and_every_receipt_matched(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str, concat: Concat
) -> None:
    op = operator_for(sim, concatenation=concat)
    parts, n_parts = campaign(op, 200)
    asyncio.run(run_bind(op, redis_server_url, parts, receipts=n_parts))
    records = sim.records()
    assert len(records) == n_parts
    assert max(record_keys(sim).values()) == 1  # no part twice
    c = wait_receipts(redis_server_url, n_parts)
    assert (c["submitted"], c["acked"], c["delivered"]) == (200, 200, 200)
    assert c["parts_sent"] == c["parts_acked"] == n_parts == sim.stats()["submit_sm_accepted"]
    assert c.get("failed", 0) == c.get("unknown", 0) == c.get("receipts_duplicate", 0) == 0
    # the texts arrive intact, part by part
    by_dst: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_dst.setdefault(r["dst"], []).append(r)
    for row in range(200):
        got = sorted(by_dst[f"90532{row:07d}"], key=lambda r: (r["concat"] or [0, 0, 1])[2])
        assert "".join(r["text"] for r in got) == TEXTS[row % len(TEXTS)]


@pytest.mark.sim_args("--tps", "40")
def test_throttled_bind_backs_off_and_resends_in_order(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str
) -> None:
    op = operator_for(sim, tps=5000)  # our limiter is generous; the SMSC is not
    parts, n_parts = campaign(op, 120)
    bind = asyncio.run(run_bind(op, redis_server_url, parts))
    assert bind.stats.throttled > 0
    assert sim.stats()["rejected"]["ESME_RTHROTTLED"] == bind.stats.throttled
    assert max(record_keys(sim).values()) == 1
    assert len(sim.records()) == n_parts
    c = counters(redis_server_url)
    assert (c["submitted"], c["acked"], c["parts_acked"]) == (120, 120, n_parts)
    # every message complete: its parts 1..n each arrived once (with a pipelined window a later part
    # may slip through the SMSC's sliding second before earlier throttled ones are resent)
    seen: dict[str, set[int]] = {}
    for r in sim.records():
        seen.setdefault(r["dst"], set()).add((r["concat"] or [0, 0, 1])[2])
    assert all(s == set(range(1, len(s) + 1)) for s in seen.values())


@pytest.mark.sim_args("--drop-after", "57", "--dlr-delay", "0.05")
def test_dropped_connections_at_most_once(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str
) -> None:
    op = operator_for(sim)
    parts = [p for p in campaign(op, 400)[0] if p.parts == 1][:300]
    bind = asyncio.run(run_bind(op, redis_server_url, parts, settle=0.5))
    assert bind.stats.connects > 3  # it really reconnected
    c = counters(redis_server_url)
    assert c["submitted"] == 300
    assert c["acked"] + c.get("unknown", 0) + c.get("failed", 0) == 300  # every row in one final state
    assert c.get("unknown", 0) > 0
    record = record_keys(sim)
    assert max(record.values()) == 1  # at-most-once: nothing sent twice
    acked_rows = {k.decode() for k, v in ledger_hash(redis_client, "rows", "job1", "op").items() if v == b"a"}
    assert len(acked_rows) == c["acked"]
    assert (
        len(record) - c["acked"] <= c["unknown"]
    )  # what reached the SMSC unacknowledged is all in 'unknown'


@pytest.mark.sim_args("--drop-after", "57")
def test_dropped_connections_at_least_once(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str
) -> None:
    op = operator_for(sim, delivery_semantics="at-least-once")
    parts = [p for p in campaign(op, 400)[0] if p.parts == 1][:300]
    asyncio.run(run_bind(op, redis_server_url, parts))
    c = counters(redis_server_url)
    assert (c["submitted"], c["acked"], c.get("unknown", 0)) == (300, 300, 0)
    record = record_keys(sim)
    assert len(record) == 300  # every message reached the SMSC…
    duplicates = sum(v - 1 for v in record.values())
    assert duplicates <= 20 * sim.stats()["connections_dropped"]  # …and only in-flight ones twice


def test_refused_binds_are_retried(sim: SimProcess, redis_client: redis.Redis, redis_server_url: str) -> None:
    sim.control(op="refuse_binds", seconds=1.0)
    op = operator_for(sim)
    parts, _ = campaign(op, 20)
    bind = asyncio.run(run_bind(op, redis_server_url, parts))
    assert bind.stats.binds_refused >= 1
    assert counters(redis_server_url)["acked"] == 20


@pytest.mark.sim_args(
    "--id-format",
    "hex",
    "--dlr-id-format",
    "dec",
    "--dlr-id-upper",
    "--dlr-before-resp-rate",
    "0.3",
    "--duplicate-dlr-rate",
    "0.3",
)
def test_receipt_variants_all_match(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str
) -> None:
    op = operator_for(sim, resp_id_format=MessageIdFormat.HEX, receipt_id_format=MessageIdFormat.DEC)
    parts = [p for p in campaign(op, 200)[0] if p.parts == 1][:150]
    asyncio.run(run_bind(op, redis_server_url, parts, receipts=lambda: sum(sim.stats()["receipts"].values())))
    stats = sim.stats()
    sent_receipts = sum(stats["receipts"].values())
    c = wait_receipts(redis_server_url, sent_receipts)
    assert c["delivered"] == 150
    assert c["receipts_duplicate"] == sent_receipts - 150 > 0
    assert stats["receipts_before_resp"] > 0
    held = redis_client.hgetall(keys.receipt_stats("op"))
    assert held.get(b"held") == held.get(b"matched_late")  # every early receipt found its message


def test_state_is_reported(sim: SimProcess, redis_client: redis.Redis, redis_server_url: str) -> None:
    op = operator_for(sim)
    bind = asyncio.run(run_bind(op, redis_server_url, campaign(op, 3)[0]))
    assert bind.state.value == "closed"
    assert json.dumps(bind.stats.__dict__)  # plain numbers, ready for /v1/operators


class CountingTokens(LocalTokenSource):
    """The limiter as a bind sees it, counting the bind's calls to it."""

    def __init__(self, limiter: SlidingWindowLimiter) -> None:
        super().__init__(limiter)
        self.calls = 0
        self.granted = 0

    async def exchange(self, settlement: Any, want: int, *, hold: float) -> Any:
        self.calls += 1
        lease = await super().exchange(settlement, want, hold=hold)
        self.granted += lease.tokens
        return lease

    async def settle(self, lease_id: int, *, used: int, last_sent_after: float | None) -> None:
        self.calls += 1
        await super().settle(lease_id, used=used, last_sent_after=last_sent_after)


def test_a_lease_is_spent_across_window_refills(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str
) -> None:
    """Uncapped, a window of 5 refills many times within one lease: the bind asks the limiter per
    lease, not per refill, and still sends every part once and never more than the window."""
    op = operator_for(sim, window=5, tps=1_000_000)
    parts, n_parts = campaign(op, 400)
    tokens = CountingTokens(SlidingWindowLimiter(op.tps))

    async def run() -> None:
        client = redis.asyncio.Redis.from_url(redis_server_url)
        bind = BindClient(
            op.binds[0], op, tokens=tokens, sink=RedisLedger(client, ledger=op.name).apply_async
        )
        await bind.start()
        bind.enqueue(parts)
        await bind.drain(timeout=30)
        await bind.stop()
        await client.aclose()

    asyncio.run(run())
    assert len(sim.records()) == n_parts
    assert max(record_keys(sim).values()) == 1
    assert tokens.calls < n_parts / 5  # fewer calls than window refills
    assert tokens.granted >= n_parts  # every part was sent on a token
    assert tokens.limiter.available() > 0


@pytest.mark.sim_args("--dlr-delay", "0.05")
def test_a_bind_that_dies_leaves_every_part_the_smsc_got_accounted_for(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str
) -> None:
    """The process dies mid-campaign: its unwritten ledger events die with it. Its send record then
    turns every part that may have reached the SMSC into ``unknown`` (or finds it already known),
    so nothing the SMSC got is left unrecorded, where a resumed job would send it again."""
    op = operator_for(sim, window=20)
    parts = [p for p in campaign(op, 4000)[0] if p.parts == 1]
    key = "test:dying-bind:sends"

    async def run_and_die() -> None:
        client = redis.asyncio.Redis.from_url(redis_server_url)
        ledger, record = RedisLedger(client, ledger=op.name), RedisSendRecord(client, key)
        dead = asyncio.Event()

        async def write(coroutine: Any) -> None:
            if dead.is_set():  # a dead process writes nothing more: the call never returns
                coroutine.close()
                await asyncio.Event().wait()
            await coroutine

        class DyingRecord:
            async def add(self, parts: Any) -> None:
                await write(record.add(parts))

            async def reset(self, parts: Any) -> None:
                await write(record.reset(parts))

        bind = BindClient(
            op.binds[0],
            op,
            tokens=LocalTokenSource(SlidingWindowLimiter(op.tps)),
            sink=lambda events: write(ledger.apply_async(events)),
            record=DyingRecord(),
        )
        await bind.start()
        bind.enqueue(parts)
        # Under way, some of it written, and parts in flight when it dies.
        while (
            int(await client.hget(keys.job_op_counters("job1", "op"), "submitted") or 0) < 300
            or not bind.in_flight
        ):
            await asyncio.sleep(0.001)
        # Death: no more writes, the connection gone, no reconnecting; what it held in memory is lost.
        dead.set()
        bind.link.stopping = True
        assert bind.link.wire is not None and bind.link.wire.transport is not None
        bind.link.wire.transport.abort()
        while not all(task.done() for task in bind._tasks):
            for task in bind._tasks:  # again: redis-py can swallow a cancel that lands mid-command
                task.cancel()
            await asyncio.sleep(0.01)
        await client.aclose()

    asyncio.run(run_and_die())
    lost = read_record(redis_client, key)
    assert lost  # it died with parts on the way
    RedisLedger(redis_client, ledger="op").apply(list(lost))
    rows = ledger_hash(redis_client, "rows", "job1", "op")
    states = {int(k): v.decode() for k, v in rows.items() if b":" not in k}
    at_smsc = {int(r["dst"][5:]) for r in sim.records()}
    assert len(at_smsc) < len(parts)  # it really died before the end
    assert all(states.get(row) in ("a", "u") for row in at_smsc)  # nothing the SMSC got is unrecorded
    assert all(state in ("a", "u") for state in states.values())  # and no row is left "sent"
    c = counters(redis_server_url)
    assert c["submitted"] == c["acked"] + c["unknown"] == len(states)
    # The rows unknown without reaching the SMSC are the ones staged and not sent: under three windows.
    assert len([row for row, s in states.items() if s == "u" and row not in at_smsc]) < 3 * 20
