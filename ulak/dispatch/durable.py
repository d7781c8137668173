"""What a bind receives, made durable before it is answered: receipts (``ulak.dispatch.inbox``) and
replies (``ulak.replies.mo``). The SMSC forgets a deliver_sm once it is answered, so an answer goes
only after what it carries is in Redis; one whose connection was lost before that is never answered,
and the SMSC sends it again.

:class:`DurableInbound` owns the two queues of what is read but not durable yet, and the two tasks
that write them; ``BindClient`` hands it what it reads and tells it how to answer.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ulak.dispatch.inbox import Inbound, InboxStore
from ulak.dispatch.ledger import ReceiptSeen
from ulak.replies.mo import MoPart, MoStore
from ulak.smpp.session import Session

_T = TypeVar("_T")


class SinkRevoked(Exception):
    """The bind's writes are refused for good: another process holds its name now
    (``ulak.dispatch.fence.Superseded``). This one stops sending at once: whatever it sent from here
    on, nobody would account for."""


class _Stopped(Exception):
    """The bind stopped while its inbox could not be written."""


@dataclass(frozen=True)
class Answering:
    """How the inbound side reaches its bind: the session answers may go on (None once it is lost),
    writing bytes to the connection, handing durable receipts to the ledger's outbox, and saying
    the bind's writes were revoked."""

    session: Callable[[], Session | None]
    write: Callable[[bytes], None]
    receipts: Callable[[list[ReceiptSeen]], None]
    revoked: Callable[[SinkRevoked], None]


class DurableInbound:
    """Receipts and replies read on one bind, written to Redis, then answered (see the module
    docstring). Without an *inbox* a receipt is answered at once (tests, a bind without Redis);
    without *replies*, a reply too."""

    def __init__(
        self, inbox: InboxStore | None, replies: MoStore | None, answering: Answering, *, stats: Any, log: Any
    ) -> None:
        self.inbox, self.replies = inbox, replies
        self._answering, self._stats, self._log = answering, stats, log
        self._receipts: Inbound[ReceiptSeen] = Inbound()
        self._parts: Inbound[MoPart] = Inbound()
        self._receipts_ready = asyncio.Event()
        self._parts_ready = asyncio.Event()
        self._done = False

    def tasks(self, name: str) -> list[asyncio.Task[None]]:
        """The tasks that keep what is read durable (started with the bind)."""
        tasks = []
        if self.inbox is not None:
            tasks.append(asyncio.create_task(self._keep_inbox(), name=f"inbox-{name}"))
        if self.replies is not None:
            tasks.append(asyncio.create_task(self._keep_replies(), name=f"replies-{name}"))
        return tasks

    @property
    def receipts_waiting(self) -> int:
        return len(self._receipts)

    @property
    def replies_waiting(self) -> int:
        return len(self._parts)

    def finish(self) -> None:
        """The bind stops: what is not durable yet stays unanswered (the SMSC sends it again)."""
        self._done = True
        self._receipts_ready.set()
        self._parts_ready.set()

    def receipt(self, receipt: ReceiptSeen, session: Session, answer: bytes, out: list[bytes]) -> None:
        """A receipt read: answered now (into *out*) without an inbox, else once the inbox has it."""
        self._stats.receipts += 1
        if self.inbox is None:
            self._answering.receipts([receipt])
            out.append(answer)
        else:
            self._receipts.add(receipt, session, answer)
            self._receipts_ready.set()

    def reply(self, part: MoPart | None, session: Session, answer: bytes, out: list[bytes]) -> None:
        """A reply read (*part*: None when there is nowhere to keep it): answered once durable."""
        self._stats.mo += 1
        if self.replies is None or part is None:
            out.append(answer)  # a bind without Redis (tests): nowhere to keep it
        else:
            self._parts.add(part, session, answer)
            self._parts_ready.set()

    async def _keep_inbox(self) -> None:
        """Make received receipts durable, then answer them and hand them to the ledger flush (see
        ``ulak.dispatch.inbox``): first what a predecessor of this bind left in the inbox."""
        inbox = self.inbox
        assert inbox is not None
        try:
            left = await self._retrying(inbox.unsettled)
        except _Stopped:
            return
        if left:
            self._log.info("inbox.replayed", receipts=len(left))
        self._answering.receipts(left)
        await self._keep(self._receipts, self._receipts_ready, inbox.append, self._answering.receipts)

    async def _keep_replies(self) -> None:
        """Make received replies durable (``keys.MO_PARTS``), then answer them: the SMSC sends a
        reply once, and forgets it when answered."""
        replies = self.replies
        assert replies is not None
        await self._keep(self._parts, self._parts_ready, replies.append, self._replies_durable)

    def _replies_durable(self, parts: list[MoPart]) -> None:
        self._stats.mo_durable += len(parts)

    async def _keep(
        self,
        held: Inbound[Any],
        ready: asyncio.Event,
        write: Callable[[list[Any]], Awaitable[None]],
        written: Callable[[list[Any]], None],
    ) -> None:
        """Until the bind stops: *write* what is *held* (again while it fails), tell *written*, and
        answer it on the connection it came on (what came on a lost one is never answered)."""
        try:
            while not (self._done and not held):
                if not self._done:
                    await ready.wait()
                ready.clear()
                session = self._answering.session()
                items, answers = held.take(session)
                if items:
                    await self._retrying(functools.partial(write, items))
                    written(items)
                    self._answer(session, answers)
        except _Stopped:
            return

    def _answer(self, session: Session | None, answers: bytes) -> None:
        """Answer on the connection they came on, if it is still the bind's and not lost."""
        if session is not None and session is self._answering.session():
            self._answering.write(answers)

    async def _retrying(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """*call*, again every half second while it fails (Redis away: receipts wait unanswered),
        until the bind stops (:class:`_Stopped`)."""
        while True:
            try:
                return await call()
            except SinkRevoked as exc:
                self._answering.revoked(exc)
                raise _Stopped from None
            except Exception as exc:
                self._stats.inbox_errors += 1
                self._log.error("inbox.write_failed", error=f"{type(exc).__name__}: {exc}")
                if self._done:
                    raise _Stopped from None
                await asyncio.sleep(0.5)
