"""A Redis that lost its last writes gets a bind's back from the bind (``ulak.dispatch.fence``).

The loss is real: a redis-server with an append-only file is killed (SIGKILL) and its file cut back
to what it held a moment before, as a machine crash leaves it with ``appendfsync everysec``; Redis
loads what is left. Then the bind's next write finds the fence behind and writes the lost ones again.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from cluster.engagement.replies import ReplyProcessor, recent
from tests.helpers import async_wait_for, crash_redis
from ulak import keys
from ulak.dispatch.fence import FencedWrites, Superseded, parse
from ulak.dispatch.inbox import RedisInbox
from ulak.dispatch.ledger import Event, PartAcked, PartSent, PartUnknown, ReceiptSeen
from ulak.dispatch.sendrecord import RecordFenced, RedisSendRecord, unpack
from ulak.redis_server import RedisServer
from ulak.replies.mo import MoPart, RedisMoStore
from ulak.settings import RepliesConfig
from ulak.text.alphabet import alphabet

FENCE = keys.bind_fence("op", "b1", ledger="op")
INBOX = keys.bind_inbox("op", "b1", ledger="op")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    # Every write in the file before its reply: with "everysec" Redis may hold a write back while a
    # background fsync runs (on a busy machine), and the file's size read after a reply comes short.
    with RedisServer(tmp_path / "redis", appendonly=True, appendfsync="always") as running:
        yield running


def sent(job: str, rows: range) -> list[Event]:
    return [e for r in rows for e in (PartSent(job, r, 0, 1), PartAcked(job, r, 0, 1, "s", f"m{r}"))]


def counters(server: RedisServer, job: str) -> dict[str, int]:
    client = redis.Redis.from_url(server.url)
    raw = client.hgetall(keys.job_op_counters(job, "op"))
    client.close()
    return {k.decode(): int(v) for k, v in raw.items()}


async def after_restart(call: Callable[[], Awaitable[None]]) -> None:
    """*call* as a bind's flush makes it after Redis restarted: the first try may meet a connection
    the restart closed (the bind keeps its events and tries again at its next flush)."""
    try:
        await call()
    except redis.exceptions.ConnectionError:
        await call()


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_writes_redis_lost_are_written_again_by_the_bind_in_order(server: RedisServer) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(server.url)
        writes = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX)
        await writes.apply(sent("j", range(10)))
        kept = os.path.getsize(server.aof)  # Redis writes its file before it answers
        await writes.apply(sent("j", range(10, 20)))
        await writes.inbox.append([ReceiptSeen("s", "m3", "DELIVRD")])
        await writes.apply(sent("j", range(20, 25)))
        assert counters(server, "j")["acked"] == 25
        crash_redis(server, keep_bytes=kept)
        assert counters(server, "j")["acked"] == 10  # the loss is real
        await after_restart(lambda: writes.apply(sent("j", range(25, 30))))
        assert writes.replayed_writes == 3 and writes.lost_writes == 0
        assert counters(server, "j")["acked"] == 30
        left = await RedisInbox(client, INBOX).unsettled()
        assert left == [ReceiptSeen("s", "m3", "DELIVRD")]
        assert parse((await client.get(FENCE)).decode()) == (1, 5)
        await client.aclose()

    run(scenario())


def test_a_lost_takeover_is_written_again_with_everything_since(server: RedisServer) -> None:
    async def scenario() -> None:
        kept = os.path.getsize(server.aof) if server.aof.exists() else 0
        client = redis.asyncio.Redis.from_url(server.url)
        writes = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX)
        await writes.apply(sent("k", range(4)))
        await writes.apply(sent("k", range(4, 8)))
        crash_redis(server, keep_bytes=kept)
        await after_restart(lambda: writes.apply(sent("k", range(8, 9))))
        assert counters(server, "k")["acked"] == 9 and writes.replayed_writes == 2
        await client.aclose()

    run(scenario())


def test_a_loss_longer_than_the_journal_is_counted_and_the_bind_goes_on(server: RedisServer) -> None:
    now = [0.0]

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(server.url)
        writes = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX, clock=lambda: now[0], keep=5.0)
        await writes.apply(sent("l", range(2)))
        kept = os.path.getsize(server.aof)
        await writes.apply(sent("l", range(2, 4)))
        now[0] = 10.0  # the write above is older than the journal keeps
        await writes.apply(sent("l", range(4, 6)))
        crash_redis(server, keep_bytes=kept)
        await after_restart(lambda: writes.apply(sent("l", range(6, 8))))
        assert writes.lost_writes == 1 and writes.replayed_writes == 1
        assert counters(server, "l")["acked"] == 2 + 2 + 2  # the first, the kept third, the last
        await client.aclose()

    run(scenario())


def test_a_process_whose_bind_name_was_taken_writes_nothing_more(server: RedisServer) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(server.url)
        old = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX)
        await old.apply(sent("m", range(2)))
        new = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX)
        await new.apply(sent("m", range(2, 4)))
        with pytest.raises(Superseded):
            await old.apply(sent("m", range(4, 6)))
        with pytest.raises(Superseded):
            await old.inbox.append([ReceiptSeen("s", "m1", "DELIVRD")])
        assert counters(server, "m")["acked"] == 4 and parse((await client.get(FENCE)).decode()) == (2, 1)
        assert await RedisInbox(client, INBOX).unsettled() == []
        await client.aclose()

    run(scenario())


def test_a_process_whose_bind_name_was_taken_stages_nothing_more(server: RedisServer) -> None:
    """The send record is written before a part may go, and refused once a later process holds the
    bind's name: a process cut off from Redis and Ray, made again elsewhere meanwhile, sends nothing
    new when the cut heals (it did: 200 parts twice, issue 30)."""

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(server.url)
        old = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX)
        await old.claim()
        record = RedisSendRecord(client, "test:sends:old", fence=FENCE, generation=lambda: old.generation)
        parts = [PartUnknown("n", row, 1, 1) for row in range(3)]
        await record.add(parts[:2])
        new = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX)
        await new.claim()
        with pytest.raises(RecordFenced):
            await record.add(parts[2:])
        assert [p.row for p in unpack(await client.get("test:sends:old"))] == [0, 1]
        # The new process stages as before.
        mine = RedisSendRecord(client, "test:sends:new", fence=FENCE, generation=lambda: new.generation)
        await mine.add(parts[2:])
        assert [p.row for p in unpack(await client.get("test:sends:new"))] == [2]
        await client.aclose()

    run(scenario())


def test_a_write_whose_answer_was_lost_is_not_made_twice_when_tried_again(server: RedisServer) -> None:
    async def scenario() -> None:
        client = AnswerLost.from_url(server.url)
        writes = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX)
        await writes.apply(sent("n", range(3)))
        # The next write reaches Redis, and its answer is lost with the connection: redis-py sends
        # the same call again, which finds the fence where that call moved it.
        client.twice_next = True
        await writes.apply(sent("n", range(3, 6)))
        assert counters(server, "n")["acked"] == 6 and writes.sequence == 2
        await writes.apply(sent("n", range(6, 7)))
        assert counters(server, "n")["acked"] == 7 and parse((await client.get(FENCE)).decode()) == (1, 3)
        assert not writes.superseded
        await client.aclose()

    run(scenario())


class AnswerLost(redis.asyncio.Redis):
    """A client whose next script call reaches Redis and is done there, and whose answer is then
    lost, as when Redis restarts between the two (the connection closes under the reply); or
    that never reaches it; or that is sent again."""

    lose_next = False
    fail_next = False  # the next script call never reaches Redis
    twice_next = False  # the next script call is done in Redis, then sent again

    async def evalsha(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail_next:
            self.fail_next = False
            raise redis.exceptions.ConnectionError("Error 111 connecting to Redis. Connection refused.")
        if self.twice_next:  # as redis-py's retry does when the connection closed under the answer
            self.twice_next = False
            await super().evalsha(*args, **kwargs)
        answer = await super().evalsha(*args, **kwargs)
        if self.lose_next:
            self.lose_next = False
            raise redis.exceptions.ConnectionError("Connection closed by server.")
        return answer


async def lost_answer(server: RedisServer, job: str) -> tuple[AnswerLost, FencedWrites]:
    """A bind's writes after rows 0-1 written and rows 2-3 written with the answer lost."""
    client = AnswerLost.from_url(server.url)
    writes = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX)
    await writes.apply(sent(job, range(2)))
    client.lose_next = True
    with pytest.raises(redis.exceptions.ConnectionError):
        await writes.apply(sent(job, range(2, 4)))  # done in Redis, the answer lost
    return client, writes


def test_a_write_whose_answer_was_lost_does_not_make_the_bind_give_up_its_name(server: RedisServer) -> None:
    # Seen in the chaos test: a Redis restart lost a write's answer; the bind's fence watch then read
    # the fence one step past its own and took it for another process holding the bind: the bind
    # stopped for good, and the job's runner failed at its next withdraw.
    async def scenario() -> None:
        client, writes = await lost_answer(server, "d")
        await writes.verify()
        assert not writes.superseded and writes.sequence == 2
        # The writer tries its events again with those that came since, in one write: only what
        # Redis does not hold yet is written.
        await writes.apply(sent("d", range(2, 6)))
        assert counters(server, "d")["acked"] == 6 and parse((await client.get(FENCE)).decode()) == (1, 3)
        await client.aclose()

    run(scenario())


def test_a_retry_with_more_than_the_write_whose_answer_was_lost_writes_the_rest(server: RedisServer) -> None:
    # The retry is not the same write: the writer put the events back and took them again with the
    # ones that came since. Taking the fence's step for the retry's lost everything it added.
    async def scenario() -> None:
        client, writes = await lost_answer(server, "m")
        await writes.apply(sent("m", range(2, 7)))
        assert counters(server, "m")["acked"] == 7 and counters(server, "m")["parts_sent"] == 7
        assert parse((await client.get(FENCE)).decode()) == (1, 3) and writes.sequence == 3
        # Two tries in doubt, the second longer: what both hold is surely written.
        client.lose_next = True
        with pytest.raises(redis.exceptions.ConnectionError):
            await writes.apply(sent("m", range(7, 9)))
        await writes.apply(sent("m", range(7, 10)))
        assert counters(server, "m")["acked"] == 10 and writes.sequence == 5
        await client.aclose()

    run(scenario())


def test_two_lost_answers_in_a_row_write_nothing_twice(server: RedisServer) -> None:
    # Two tries in doubt: the first never reached Redis, the second (with what came since) was done
    # there and its answer lost. The fence names the try that made its step, so the third try writes
    # only what the second did not hold. Taking the step with what both tries held wrote the second
    # one's extra receipt again: counted twice.
    async def scenario() -> None:
        client = AnswerLost.from_url(server.url)
        writes = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX)
        await writes.apply(sent("r", range(4)))
        receipts: list[Event] = [ReceiptSeen("s", f"m{r}", "DELIVRD") for r in range(4)]
        client.fail_next = True
        with pytest.raises(redis.exceptions.ConnectionError):
            await writes.apply(receipts[:1])
        client.lose_next = True
        with pytest.raises(redis.exceptions.ConnectionError):
            await writes.apply(receipts[:3])
        await writes.apply(receipts)
        found = counters(server, "r")
        assert found["receipts"] == 4 and found["delivered"] == 4 and "receipts_duplicate" not in found
        assert writes.sequence == 3 and not writes.superseded
        await client.aclose()

    run(scenario())


def test_a_write_in_doubt_found_by_another_kind_of_write_is_not_made_again(server: RedisServer) -> None:
    # The flusher's ledger events and the inbox's receipts share the fence: the inbox's next append
    # can be the write that finds the flusher's lost answer written. The flusher's retry then leaves
    # out what Redis holds, as it would had it found that itself.
    async def scenario() -> None:
        client = AnswerLost.from_url(server.url)
        writes = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX)
        await writes.apply(sent("k", range(3)))
        receipts: list[Event] = [ReceiptSeen("s", f"m{r}", "DELIVRD") for r in range(3)]
        client.lose_next = True
        with pytest.raises(redis.exceptions.ConnectionError):
            await writes.apply(receipts[:2])
        await writes.inbox.append([ReceiptSeen("s", "m9", "DELIVRD")])
        await writes.apply(receipts)
        found = counters(server, "k")
        assert found["receipts"] == 3 and "receipts_duplicate" not in found
        assert writes.sequence == 4 and not writes.superseded
        await client.aclose()

    run(scenario())


def test_a_bind_with_nothing_to_write_gives_back_what_redis_lost_when_asked(server: RedisServer) -> None:
    # A runner taking a job back reads the ledger right after the binds' withdraw: a bind idle since
    # the crash has no write to find the gap with, so the withdraw verifies.
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(server.url)
        writes = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX)
        await writes.apply(sent("v", range(2)))
        kept = os.path.getsize(server.aof)
        await writes.apply(sent("v", range(2, 4)))
        crash_redis(server, keep_bytes=kept)
        await after_restart(writes.verify)
        assert counters(server, "v")["acked"] == 4 and writes.replayed_writes == 1
        await client.aclose()

    run(scenario())


def _reply(text: str, number: str) -> MoPart:
    septets = alphabet().to_septets(text)
    assert septets is not None
    return MoPart(smsc="op", source=number, dest="4545", data_coding=0, body=septets, received=time.time())


def test_replies_redis_lost_are_written_again_and_processed_once(server: RedisServer) -> None:
    # A reply is answered once its write is acknowledged; Redis then loses the last second. The
    # bind's watch finds the fence behind with nothing to write, and appends the replies again:
    # the lost one is processed, the one whose append survived (and only its fence was lost) once.
    first, lost, survived = (
        _reply("Merhaba", "905320000001"),
        _reply("Kargo nerede", "905320000002"),
        _reply("Tesekkurler", "905320000003"),
    )

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(server.url)
        store = RedisMoStore(client, keys.MO_PARTS)
        writes = FencedWrites(client, ledger="op", fence=FENCE, inbox=INBOX, replies=store)
        assert writes.replies is not None
        await writes.replies.append([first])
        kept = os.path.getsize(server.aof)
        await writes.replies.append([lost])
        crash_redis(server, keep_bytes=kept)
        watch = asyncio.create_task(writes.watch(every=0.05))
        await async_wait_for(
            lambda: writes.replayed_writes == 1, timeout=20, what="the lost reply written again"
        )
        # Now the reply's append survives and its fence is lost: cut between the two.
        await store.append([survived])
        kept = os.path.getsize(server.aof)
        await writes.replies.append([survived])
        crash_redis(server, keep_bytes=kept)
        await async_wait_for(lambda: writes.replayed_writes == 2, timeout=20, what="the second replay")
        watch.cancel()
        await client.aclose()

    run(scenario())
    client = redis.Redis.from_url(server.url)
    assert client.xlen(keys.MO_PARTS) == 4  # first, lost, survived twice
    processor = ReplyProcessor(client, RepliesConfig())
    processor.ensure_group()
    while processor.run_once(block_ms=10):
        pass
    got = sorted((r["number"], r["text"]) for r in recent(client, limit=10))
    assert got == [
        ("905320000001", "Merhaba"),
        ("905320000002", "Kargo nerede"),
        ("905320000003", "Tesekkurler"),
    ]
    client.close()
