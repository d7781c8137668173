"""What a bind writes about the parts it sends: ledger events (``ulak.dispatch.outbox``, flushed in
batches to the ledger's script) and the send record (``ulak.dispatch.sendrecord``: every part that
may be on the wire, written before it goes). :class:`LedgerWriter` owns both for one bind."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ulak.dispatch.durable import SinkRevoked
from ulak.dispatch.ledger import Event
from ulak.dispatch.outbox import Outbox
from ulak.dispatch.sendrecord import SendRecord

EventSink = Callable[[list[Event]], Awaitable[None]]
# How often the send record is trimmed to what is unsettled (seconds): between two trims it only
# grows by what is staged, and parts settled meanwhile cost nothing but bytes if it is ever read.
RECORD_REWRITE = 0.25


class LedgerWriter:
    """One bind's ledger events and send record (see the module docstring). *unsettled* says which
    of the bind's parts are staged or in flight now (what the record is trimmed to, with the
    outbox's answered-but-unwritten ones)."""

    def __init__(
        self,
        *,
        sink: EventSink,
        record: SendRecord | None,
        unsettled: Callable[[], list[Any]],
        revoked: Callable[[SinkRevoked], None],
        flush_interval: float,
        flush_batch: int,
        log: Any,
    ) -> None:
        self.sink = sink
        self.record = record
        self.outbox = Outbox()  # events not written yet: coalesced, receipts a tick late
        self.flush_interval = flush_interval
        self.flush_batch = flush_batch
        self._unsettled = unsettled
        self._revoked = revoked
        self._log = log
        self._record_lock = asyncio.Lock()
        self._record_empty = True
        self._record_at = 0.0  # when the record was last rewritten
        self._flush_lock = asyncio.Lock()
        self._flush_done = False

    async def flush(self, *, tick: bool = False) -> None:
        """Write pending ledger events (serialised; a failed write keeps them for the next try).

        What is due comes from the outbox (``ulak.dispatch.outbox``: a send answered before the
        flush goes as its answer alone; at a *tick* of the flusher, receipts that arrived since the
        last tick stay for the next one, a fifth of bench_e2e's receipts having overtaken their ack
        on another bind). Then at most ``flush_batch`` events go per write: Redis runs each ledger
        script alone, so a large batch would hold up every other client (the control plane's
        reads) for its whole length (``ledger.BATCH``). Each write is atomic, so a failure puts
        back only what was not written. (A process that dies between two writes loses the rest of
        the flush, as it loses events not flushed yet: see "a bind actor that dies" in
        ARCHITECTURE.md.)"""
        async with self._flush_lock:
            outbox = self.outbox
            outbox.age_receipts(tick=tick)
            while pending := outbox.take():
                while pending:
                    chunk = pending[: self.flush_batch]
                    try:
                        await self.sink(chunk)
                    except BaseException:
                        outbox.put_back(pending)
                        raise
                    del pending[: len(chunk)]
                # Under load this loop runs for as long as events keep coming: the record is
                # trimmed as it goes, or it would grow for the whole busy stretch.
                await self.rewrite_record()
            await self.rewrite_record()

    async def rewrite_record(self) -> None:
        """Every ``RECORD_REWRITE`` seconds, the send record becomes what is unsettled now: the parts
        staged (or being staged), in flight, or answered with the answer not written yet
        (ulak.dispatch.sendrecord)."""
        if self.record is None or time.monotonic() - self._record_at < RECORD_REWRITE:
            return
        async with self._record_lock:
            unsettled = self._unsettled() + self.outbox.unsettled()
            self._record_at = time.monotonic()
            if not unsettled and self._record_empty:
                return
            await self.record.reset(unsettled)
            self._record_empty = not unsettled

    async def record_staged(self, items: list[Any]) -> None:
        """Add *items*, about to be sent, to the send record (before any of them may go: a failed
        write raises, ``RecordFenced`` when a later process holds the bind's name)."""
        if self.record is None:
            return
        async with self._record_lock:
            await self.record.add(items)
            self._record_empty = False

    def withdrawn(self) -> None:
        """Parts were taken back: the record is trimmed at the next flush, whenever it was last."""
        self._record_at = 0.0

    async def reset_record(self) -> None:
        """The bind stopped: what is still staged was never sent (everything sent is written now, or
        lost with a failed write, either way not ours to record)."""
        if self.record is not None:
            with contextlib.suppress(Exception):
                await self.record.reset([])

    def finish(self) -> None:
        """Tell :meth:`run` to do one last flush and end (it is never cancelled mid-write: that
        would lose a batch of ledger events and can leave the Redis connection unusable)."""
        self._flush_done = True

    async def run(self) -> None:
        """Flush every ``flush_interval`` until :meth:`finish`, then once more."""
        while not self._flush_done:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush(tick=True)
            except SinkRevoked as exc:
                self._revoked(exc)
                return
            except Exception as exc:  # Redis unreachable: keep the events, retry on the next tick
                self._log.error("ledger.write_failed", error=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(SinkRevoked):
            await self.flush()
