"""A bind's writes to Redis, fenced and journaled, so that a Redis that lost its last seconds of
writes gets them back from the bind that made them.

Redis with ``appendfsync everysec`` (the default, and the embedded server's) answers a write before
it is on disk. A machine that crashes, or a ``redis-server`` whose fsync lags, loses up to about two
seconds of answered writes. For a bind those are ledger events (parts it sent, their answers, the
receipts it applied) and inbox appends (receipts it has answered: the SMSC never sends them again).
Lost, the ledger would not know the parts were sent, and a resumed job would send them again.
Replies (MO) too: answered, the SMSC never sends them again.

Each of the bind's writes therefore carries a fence (``keys.bind_fence``: ``generation:sequence``)
checked and advanced in the same atomic script as the write itself, and the bind keeps what Redis
acknowledged over the last ``JOURNAL_SECONDS``. Redis loads its append-only file in order and drops
a transaction cut off at the end, so what survives a loss is a prefix of the writes: a fence that
says ``7:120`` to a bind at ``7:133`` means writes 121 to 133 are gone, and the bind writes them
again, in order, before its next one. A fence of an older generation means the bind's own takeover
was lost too (it writes everything since, again). A newer generation means another process has
taken the bind's name: this one is superseded and writes nothing more.

The fence also makes a retried write safe. A write whose answer was lost with its connection
(Redis restarting under it) may or may not be in Redis; the bind keeps it as in doubt and tries
its events again at its next flush, with whatever came since. Each try moves the fence to a value
of its own (``generation:sequence:try``), so a fence one step past the bind's names the try that
made the step: the bind takes the step with that write, and the retry writes only the rest.
Taking that step for another process made a bind give up its name after a Redis restart, and
taking it for the retry lost what the retry added (both found by the chaos test); taking it with
what every try in doubt held, before tries were named, wrote again what a longer try had written
(a receipt counted twice, after two lost answers in a row).

Replies go to the one replies stream (``keys.MO_PARTS``, in its own slot), so their write cannot
share the fence's script: the bind appends them, then advances the fence, in that order. On one
Redis, whose append-only file keeps a prefix of the writes, a fence that survived means the replies
before it did; one that did not is written again with them, and the replies processor counts a
part it already has once (the same part within ``replies.duplicate_seconds``, by a key of its own).
On a Redis Cluster the stream's shard can lose a second that the fence's shard kept: that reply is
lost, as before.

A loss longer than the journal, or a Redis emptied, cannot be made up: it is logged
(``ledger.writes_lost``), counted (``lost_writes``), and the bind goes on from there.

Writes that are not a bind's (the runner's, the API's) are not journaled: a runner that finds its
job back in an earlier state steers it again as after any restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.exceptions
import structlog

from ulak.dispatch.durable import SinkRevoked
from ulak.dispatch.inbox import RedisInbox, pack_receipt
from ulak.dispatch.ledger import Event, ReceiptSeen, RedisLedger
from ulak.replies.mo import MoPart, MoStore

log = structlog.get_logger(__name__)

# AOF everysec: an fsync a second, and Redis postpones writing (not answering) for up to two more
# seconds while one lags; five covers both with room.
JOURNAL_SECONDS = 5.0
WATCH_SECONDS = 1.0  # between a bind's looks at its fence while it has nothing to write

_INBOX_SCRIPT = """
local f = redis.call('GET', KEYS[1]) or ''
if f ~= ARGV[1] then return redis.error_reply('FENCE ' .. f) end
redis.call('SET', KEYS[1], ARGV[2])
if #ARGV > 2 then redis.call('RPUSH', KEYS[2], unpack(ARGV, 3)) end
return 1
"""


class FenceMoved(Exception):
    """Redis's fence is not where this bind left it (the text after ``FENCE `` is what it says)."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class Superseded(SinkRevoked):
    """Another process holds this bind's name now: this one must not write for it any more."""


def _fence_moved(exc: redis.exceptions.ResponseError) -> FenceMoved | None:
    text = str(exc)
    return FenceMoved(text[len("FENCE ") :]) if text.startswith("FENCE") else None


def parse(value: str) -> tuple[int, int]:
    """``generation:sequence`` (and a try's number, ignored) as two ints; an absent fence is ``(0, 0)``."""
    if not value:
        return 0, 0
    generation, sequence, *_ = value.split(":")
    return int(generation), int(sequence)


def _try_of(value: str) -> int:
    """The number of the try that moved the fence to *value* (0: a step no try names: a takeover
    or a replay)."""
    parts = value.split(":")
    return int(parts[2]) if len(parts) > 2 else 0


@dataclass(frozen=True, slots=True)
class _Write:
    """One write as it can be made again: ledger events (with the inbox to trim), an inbox append,
    or replies appended to their stream."""

    events: tuple[Event, ...] = ()
    receipts: tuple[ReceiptSeen, ...] = ()
    replies: tuple[MoPart, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.events or self.receipts or self.replies)

    def without(self, done: _Write) -> _Write:
        """This write less what *done* (held by Redis already) wrote, item for item."""
        return _Write(
            events=_less(self.events, done.events),
            receipts=_less(self.receipts, done.receipts),
            replies=_less(self.replies, done.replies),
        )


def _less(items: tuple[Any, ...], gone: tuple[Any, ...]) -> tuple[Any, ...]:
    """*items* less one of each in *gone* (equal, not identical: events are unhashable dataclasses
    and a retried write is built anew; a rare path, after a lost answer)."""
    if not gone:
        return items
    left = list(gone)
    kept = []
    for item in items:
        for i, other in enumerate(left):
            if other == item:
                del left[i]
                break
        else:
            kept.append(item)
    return tuple(kept)


class FencedWrites:
    """The bind's ledger sink (:meth:`apply`) and inbox store (:attr:`inbox`), fenced (module docstring)."""

    def __init__(
        self,
        client: Any,
        *,
        ledger: str,
        fence: str,
        inbox: str,
        clock: Callable[[], float] = time.monotonic,
        keep: float = JOURNAL_SECONDS,
        log_context: dict[str, str] | None = None,
        replies: MoStore | None = None,
    ) -> None:
        self._client = client
        self._replies = replies
        self.replies = _FencedReplies(self) if replies is not None else None
        self._ledger = RedisLedger(client, ledger=ledger)
        self._inbox_script = client.register_script(_INBOX_SCRIPT)
        self.fence = fence
        self.inbox = _FencedInbox(self, RedisInbox(client, inbox))
        self._clock = clock
        self._keep = keep
        self._lock = asyncio.Lock()
        self.generation = 0  # 0: not taken yet (the first write takes it)
        self.sequence = 0
        self._at = ""  # the fence's value as this process last moved it (what its next write expects)
        self._tries = 0  # the last try's number (each try moves the fence to a value of its own)
        self._journal: deque[tuple[int, float, _Write]] = deque()  # (sequence, acked at, write)
        self.lost_writes = 0  # writes Redis lost that the journal no longer held
        self.replayed_writes = 0
        self.superseded = False
        # Writes tried since the last step the fence took whose answer never came (the connection
        # lost), by the number of their try: Redis holds one of them or none, and a fence one step
        # past ours names which (another process takes a new generation: a restarted Redis made a
        # bind give up its name when this was taken for one).
        self._doubts: dict[int, _Write] = {}
        self._done: _Write | None = None  # a write in doubt that Redis holds, not to be made twice
        self._log = log.bind(**(log_context or {}))

    async def apply(self, events: list[Event]) -> None:
        """The bind's sink: *events* written with the fence (``RedisLedger.apply_async``)."""
        if events:
            await self._write(_Write(events=tuple(events)))

    async def append(self, receipts: list[ReceiptSeen]) -> None:
        if receipts:
            await self._write(_Write(receipts=tuple(receipts)))

    async def append_replies(self, parts: list[MoPart]) -> None:
        if parts:
            await self._write(_Write(replies=tuple(parts)))

    async def claim(self) -> None:
        """Take the bind's name now rather than at the first write: a bind calls this before it
        sends (``BindClient(claim=...)``), so that a process started later supersedes this one even
        if it writes first."""
        async with self._lock:
            if not self.generation and not self.superseded:
                await self._take()

    async def verify(self) -> None:
        """Make sure Redis holds every write this process made, writing again what it lost: for
        whoever reads the ledger next (a runner taking a job back skips what it says was sent). A
        write finds a gap by itself; this is for a bind with nothing to write."""
        async with self._lock:
            if not self.generation or self.superseded:
                return
            value = (await self._client.get(self.fence) or b"").decode()
            if value != self._at:
                await self._recover(value)

    async def watch(self, every: float = WATCH_SECONDS) -> None:
        """Verify every *every* seconds, for as long as the bind lives: a bind that answered a reply
        and then had nothing to write would otherwise find a Redis crash that lost the reply only at
        its next write (minutes later, or never). Redis away: it looks again at the next tick."""
        while not self.superseded:
            await asyncio.sleep(every)
            try:
                await self.verify()
            except Superseded:
                return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                continue  # Redis restarting: the next tick finds what it lost
            except redis.exceptions.RedisError as exc:
                self._log.warning("bind.verify_failed", error=f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------------------------ internals

    def _value(self, sequence: int, attempt: int = 0) -> str:
        return f"{self.generation}:{sequence}:{attempt}" if attempt else f"{self.generation}:{sequence}"

    async def _write(self, write: _Write) -> None:
        async with self._lock:
            if self.superseded:
                raise Superseded(f"{self.fence}: another process holds this bind now")
            if not self.generation:
                await self._take()
            while True:
                if self._done is not None:  # a write in doubt made the fence's last step
                    # Not this one's again; what this one does not hold (another kind of write's:
                    # the flusher's events, the inbox's receipts) waits for the retry that does.
                    done = self._done
                    write, self._done = write.without(done), done.without(write) or None
                    if not write:
                        return
                self._tries += 1
                attempt, new = self._tries, self._value(self.sequence + 1, self._tries)
                try:
                    await self._run(write, self._at, new)
                    break
                except FenceMoved as moved:
                    if moved.value == new:
                        break  # it was written, and the answer lost with the connection: not twice
                    await self._recover(moved.value)
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                    self._doubts[attempt] = write  # it may have reached Redis
                    raise
            self._step(write, new)

    def _step(self, write: _Write, value: str) -> None:
        """The fence took one step, with *write*, to *value*."""
        self._doubts.clear()
        self.sequence += 1
        self._at = value
        now = self._clock()
        self._journal.append((self.sequence, now, write))
        while self._journal and now - self._journal[0][1] > self._keep:
            self._journal.popleft()

    async def _run(self, write: _Write, expect: str, new: str) -> None:
        try:
            if write.replies:
                assert self._replies is not None
                await self._replies.append(list(write.replies))  # before the fence: see the docstring
                await self._inbox_script(keys=[self.fence, self.inbox.key], args=[expect, new])
            elif write.receipts:
                args = [expect, new, *[pack_receipt(r) for r in write.receipts]]
                await self._inbox_script(keys=[self.fence, self.inbox.key], args=args)
            else:
                await self._ledger.apply_async(
                    list(write.events), inbox=self.inbox.key, fence=(self.fence, expect, new)
                )
        except redis.exceptions.ResponseError as exc:
            moved = _fence_moved(exc)
            if moved is None:
                raise
            raise moved from None

    async def _take(self) -> None:
        """Take the bind's name: the next generation, sequence 0 (checked, so that two processes
        taking it at once cannot both think they have it)."""
        while True:
            current = (await self._client.get(self.fence) or b"").decode()
            generation = parse(current)[0] + 1
            try:
                await self._inbox_script(keys=[self.fence, self.inbox.key], args=[current, f"{generation}:0"])
            except redis.exceptions.ResponseError as exc:
                if _fence_moved(exc) is None:
                    raise
                continue
            self.generation, self.sequence = generation, 0
            self._at = self._value(0)
            self._journal.clear()
            self._log.info("bind.fence_taken", generation=generation)
            return

    async def _recover(self, value: str) -> None:
        """Redis's fence says *value*: write again what it lost, or stop if the name is taken."""
        generation, sequence = parse(value)
        made = self._doubts.get(_try_of(value))
        if made is not None and (generation, sequence) == (self.generation, self.sequence + 1):
            self._step(made, value)  # a write in doubt made the step: the next write leaves it out
            self._done = made
            return
        if generation > self.generation or (generation == self.generation and sequence > self.sequence):
            self.superseded = True
            self._log.error("bind.superseded", fence=value, ours=self._value(self.sequence))
            raise Superseded(f"{self.fence} says {value}: another process holds this bind now")
        start = value
        if generation < self.generation:  # our takeover is lost too: everything since, and it
            since = 0
            takeover: str | None = value
        else:
            since = sequence
            takeover = None
        kept = [(seq, write) for seq, _, write in self._journal if seq > since]
        if len(kept) != self.sequence - since:  # the journal no longer reaches back that far
            lost = self.sequence - since - len(kept)
            self.lost_writes += lost
            self._log.error(
                "ledger.writes_lost",
                lost=lost,
                fence=value,
                ours=self._value(self.sequence),
                hint="Redis lost more than the journal keeps: a row may be sent twice or stay pending",
            )
            # What the journal has still goes (the ledger takes events in any order), from where
            # its oldest left the fence.
            start = self._value(kept[0][0] - 1 if kept else self.sequence)
            await self._client.set(self.fence, start)
        elif takeover is not None:
            start = self._value(0)
            await self._inbox_script(keys=[self.fence, self.inbox.key], args=[takeover, start])
        for seq, write in kept:
            await self._run(write, start, self._value(seq))
            start = self._value(seq)
        self._at = start
        self.replayed_writes += len(kept)
        self._log.warning(
            "ledger.writes_replayed", writes=len(kept), fence=value, ours=self._value(self.sequence)
        )


class _FencedInbox:
    """The inbox store a bind uses: appends go through the fence; reads go straight to the list."""

    def __init__(self, writes: FencedWrites, inbox: RedisInbox) -> None:
        self._writes = writes
        self._inbox = inbox
        self.key = inbox.key

    async def append(self, receipts: list[ReceiptSeen]) -> None:
        await self._writes.append(receipts)

    async def unsettled(self) -> list[ReceiptSeen]:
        return await self._inbox.unsettled()


class _FencedReplies:
    """The replies store a bind uses: appends go through the fence (the module docstring)."""

    def __init__(self, writes: FencedWrites) -> None:
        self._writes = writes

    async def append(self, parts: list[MoPart]) -> None:
        await self._writes.append_replies(parts)
