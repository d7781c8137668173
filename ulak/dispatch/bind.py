"""One persistent SMPP bind: the logic behind ``SmppConnectionActor``, testable without Ray.

``BindClient`` owns the connection and its SMPP session: it connects, binds, keeps the bind alive
(enquire_link, dead-peer detection), reconnects with exponential backoff and jitter, and hands what
the session reads to the three parts that own the rest: the send path (``ulak.dispatch.sendpath``:
queue, staging, leases, the send loop), the ledger writer (``ulak.dispatch.writer``: ledger events
and the send record) and the durable inbound (``ulak.dispatch.durable``: receipts and replies,
answered once in Redis). Everything that happens to a part becomes a ledger event:

* ``submit_sm_resp`` OK → ``PartAcked`` with the normalised message id;
* ESME_RTHROTTLED / ESME_RMSGQFUL → not the message's fault: the part goes back to the *front* of the
  queue in its original order and the whole bind pauses, then ramps back (multiplicative back-off);
* any other error → ``PartFailed`` with the status;
* connection lost or response timed out → the parts in flight become ``PartUnknown`` (at-most-once,
  the default) or are queued again (at-least-once), never silently lost or duplicated;
* ``deliver_sm`` receipt → ``ReceiptSeen``, matched by the ledger.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from ulak.dispatch.bindstate import BindEvent, BindState
from ulak.dispatch.durable import Answering, DurableInbound, SinkRevoked
from ulak.dispatch.inbox import InboxStore
from ulak.dispatch.ledger import BATCH as LEDGER_BATCH
from ulak.dispatch.ledger import ReceiptSeen
from ulak.dispatch.link import (
    BIND_REQUESTS,
    REFUSED_RETRY,
    Backoff,
    BindLink,
    BindRefused,
    Connector,
    Handlers,
)
from ulak.dispatch.part import OutboundPart, outbound_part
from ulak.dispatch.sendpath import SendPath
from ulak.dispatch.sendrecord import SendRecord
from ulak.dispatch.throttle import TokenSource, learner_for, limits_for
from ulak.dispatch.writer import RECORD_REWRITE, EventSink, LedgerWriter
from ulak.refusals import Refusal, Scope
from ulak.replies.mo import MoStore, mo_part
from ulak.settings import BindConfig, OperatorConfig
from ulak.smpp.codec import encode
from ulak.smpp.pdu import (
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Unbind,
    UnbindResp,
)
from ulak.smpp.receipt import normalize_message_id, parse_receipt, status_of_state
from ulak.smpp.session import (
    AckReceived,
    ConnectionClosed,
    Outstanding,
    ProtocolError,
    ReceiptReceived,
    RequestReceived,
    ResponseReceived,
    Session,
)

__all__ = [
    "RECORD_REWRITE",
    "REFUSED_RETRY",
    "Backoff",
    "BindClient",
    "BindRefused",
    "OutboundPart",
    "SinkRevoked",
    "outbound_part",
]

log = structlog.get_logger("ulak.bind")
REFUSALS_POLL = 0.5  # seconds between two reads of the refusals stream (a refusal stops rows within ~1 s)


@dataclass
class BindStats:
    connects: int = 0
    binds_refused: int = 0
    disconnects: int = 0
    submitted: int = 0
    throttled: int = 0
    receipts: int = 0
    mo: int = 0  # replies (deliver_sm that are not receipts) read
    mo_durable: int = 0  # of them, written to Redis (then answered)
    protocol_errors: int = 0
    failures: int = 0  # unexpected errors in the send loop (each logged with its traceback)
    limiter_errors: int = 0  # failed calls to the operator's limiter (the bind waited, then asked again)
    inbox_errors: int = 0  # failed writes to the inbox (its receipts waited, unanswered, and went again)
    attempts: int = 0  # connection attempts since the bind was last bound (0 while bound)
    last_error: str = ""


class BindClient:
    """Holds one bind for as long as it runs (see the module docstring).

    *backoff* (reconnects), *throttle_pause* (the first pause after ESME_RTHROTTLED, doubling while
    pauses keep ending in one, up to 2 s) and *connect* (how a connection is opened: TCP to the
    bind's host by default) are there for
    tests that drive a bind against an in-memory SMSC. With an *inbox*, a receipt is answered only
    once it is in there (``ulak.dispatch.inbox``); its ledger *sink* must then trim that inbox as it
    applies receipts (``RedisLedger.apply_async(events, inbox=key)``). A *claim* is awaited before the
    first connection (again until it succeeds): it takes the bind's name for this process
    (``FencedWrites.claim``), so that of two processes of one bind the one started later holds it,
    whichever of them writes first. With *replies*, a deliver_sm that is not a receipt (an MO: a
    reply) is answered only once it is in there (``ulak.replies``)."""

    def __init__(
        self,
        bind: BindConfig,
        operator: OperatorConfig,
        *,
        tokens: TokenSource,
        sink: EventSink,
        lease_seconds: float = 0.05,
        flush_interval: float = 0.05,
        flush_batch: int = LEDGER_BATCH,
        record: SendRecord | None = None,
        rng: random.Random | None = None,
        backoff: Backoff | None = None,
        throttle_pause: float = 0.05,
        connect: Connector | None = None,
        inbox: InboxStore | None = None,
        claim: Callable[[], Awaitable[None]] | None = None,
        replies: MoStore | None = None,
        refusals: Callable[[], Awaitable[list[Refusal]]] | None = None,
    ) -> None:
        self.bind = bind
        self.operator = operator
        self.stats = BindStats()
        self._log = log.bind(operator=operator.name, bind=bind.name)
        self._tasks: list[asyncio.Task[None]] = []
        self._revoke: asyncio.Future[None] | None = None
        rng = rng or random.Random()
        self.link = BindLink(
            bind,
            Handlers(self._on_data, self._send, self._crashed, self._lost_in_flight),
            self.stats,
            self._log,
            rng=rng,
            backoff=backoff,
            connect=connect,
            claim=claim,
        )
        self.writer = LedgerWriter(
            sink=sink,
            record=record,
            unsettled=self._unsettled,
            revoked=self.revoked,
            flush_interval=flush_interval,
            flush_batch=flush_batch,
            log=self._log,
        )
        learner = learner_for(bind.tps, account_tps=operator.tps, binds=len(operator.binds))
        self.sender = SendPath(
            bind,
            operator,
            # The operator's limiter (shared by its binds), and the bind's own cap: learned from the
            # SMSC's "slow down" answers, never above what was declared.
            limits_for(
                bind.tps,
                account_tps=operator.tps,
                bind_caps=[b.tps for b in operator.binds],
                shared=tokens,
                learner=learner,
            ),
            self.link,
            self.writer,
            revoked=self.revoked,
            stats=self.stats,
            log=self._log,
            learner=learner,
            lease_seconds=lease_seconds,
            throttle_pause=throttle_pause,
            rng=rng,
        )
        self.inbound = DurableInbound(inbox, replies, self._answering(), stats=self.stats, log=self._log)
        self._refusals = refusals
        self._following: asyncio.Task[None] | None = None

    def _answering(self) -> Answering:
        """How the durable inbound answers on this bind's connection."""
        return Answering(
            session=lambda: self.link.session if not self.link.lost.is_set() else None,
            write=self.link.write,
            receipts=self.writer.outbox.receipts,
            revoked=self.revoked,
        )

    # ------------------------------------------------------------------------------------ public API

    def enqueue(self, parts: list[OutboundPart], *, weight: float = 1.0, scope: Scope | None = None) -> None:
        """Queue parts to send (the caller bounds how much it queues: ``queued`` says how much waits).
        Jobs share the bind by *weight* (see ``ulak.dispatch.fairqueue``); *scope*: whose refusals
        stop their rows (``ulak.refusals``)."""
        self.sender.enqueue(parts, weight=weight, scope=scope)

    def withdraw(self, job: str) -> list[OutboundPart]:
        """Take *job*'s queued parts back, in order (pause and cancel: nothing more of it is sent).
        Staged ones leave the send record at the next flush (the actor flushes right after)."""
        return self.sender.withdraw(job)

    def queued_of(self, job: str) -> int:
        """*job*'s parts here not sent yet."""
        return self.sender.queued_of(job)

    def pending_of(self, job: str) -> int:
        """*job*'s parts here: queued, or sent and awaiting their response."""
        session = self.link.session
        flying = 0
        if session is not None:
            flying = sum(
                1 for o in session.in_flight if isinstance(o.context, OutboundPart) and o.context.job == job
            )
        return self.sender.queued_of(job) + flying

    @property
    def queued(self) -> int:
        return self.sender.queued

    @property
    def in_flight(self) -> int:
        return len(self.link.session.in_flight) if self.link.session is not None else 0

    def describe(self) -> dict[str, object]:
        """State for diagnostics and the operators API."""
        session = self.link.session
        return {
            "state": self.link.state.value,
            "queued": self.queued,
            "staged": self.sender.staged,
            "jobs": self.sender.queue.jobs(),
            "in_flight": [type(o.pdu).__name__ for o in session.in_flight] if session else [],
            "session": session.state.value if session else None,
            "lost": self.link.lost.is_set(),
            "paused_for": self.sender.paused_for,
            # The rate it sends at: learned from the SMSC's "slow down" answers (ulak.dispatch.learning).
            "learned_tps": round(self.sender.learner.rate, 1),
            "slowed": self.sender.learner.decreases,
            "tasks": [t.get_name() + (":done" if t.done() else "") for t in self._tasks],
            "receipts_not_durable": self.inbound.receipts_waiting,
            "replies_not_durable": self.inbound.replies_waiting,
            "down_for": self.link.down_for,
            "rows_stopped": self.sender.refusals.stopped,
            **self.stats.__dict__,
        }

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.link.run(), name=f"bind-{self.bind.name}"),
            asyncio.create_task(self.writer.run(), name=f"flush-{self.bind.name}"),
            *self.inbound.tasks(self.bind.name),
        ]
        if self._refusals is not None:
            follow = self._follow(self._refusals)
            self._following = asyncio.create_task(follow, name=f"refusals-{self.bind.name}")

    async def _follow(self, read: Callable[[], Awaitable[list[Refusal]]]) -> None:
        """Every ``REFUSALS_POLL`` seconds, the refusals recorded since: their rows queued here and
        not started are stopped (``ulak.refusals``). Redis away: tried again, the rows wait."""
        while not self.link.stopping:
            try:
                refusals = await read()
            except Exception as exc:
                self._log.warning("refusals.read_failed", error=f"{type(exc).__name__}: {exc}")
                refusals = []
            if refusals:
                self.sender.refused(refusals)
            await asyncio.sleep(REFUSALS_POLL)

    async def wait_bound(self, timeout: float) -> None:
        await asyncio.wait_for(self.link.bound.wait(), timeout)

    async def drain(self, timeout: float) -> None:
        """Wait until nothing is queued or in flight, then flush the events."""
        deadline = time.monotonic() + timeout
        while self.queued or self.in_flight:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.bind.name} did not drain: {self.describe()}")
            await asyncio.sleep(0.01)
        await self.flush()

    async def flush(self) -> None:
        """Write pending ledger events now (``LedgerWriter.flush``)."""
        await self.writer.flush()

    async def stop(self) -> None:
        """Unbind politely, account for anything still in flight, and stop."""
        self.link.stopping = True
        await self.link.unbind()
        run, flusher, *inbox = self._tasks
        if self._following is not None:
            self._following.cancel()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        self.inbound.finish()  # what is not durable yet stays unanswered: the SMSC sends it again
        await asyncio.gather(*inbox, return_exceptions=True)
        self.writer.finish()  # one last flush, never cancelled mid-write
        await flusher
        await self.writer.reset_record()
        self.link.move(BindEvent.STOPPED)

    def _unsettled(self) -> list[Any]:
        """The parts staged or in flight now (``LedgerWriter.rewrite_record``)."""
        unsettled = self.sender.unsettled()
        session = self.link.session
        if session is not None:
            unsettled += [o.context for o in session.in_flight if isinstance(o.context, OutboundPart)]
        return unsettled

    def revoked(self, exc: SinkRevoked) -> None:
        """Stop sending now, and for good (see :class:`SinkRevoked`): as ``stop`` does, from a task
        of its own (called from the flusher or the inbox keeper, which ``stop`` waits for)."""
        if self.link.stopping:
            return
        self._log.error("bind.superseded", error=str(exc))
        self.stats.last_error = str(exc)
        self.link.stopping = True  # the send loop sends nothing more from here
        self._revoke = asyncio.ensure_future(self.stop())  # referenced: a task nothing holds may go

    @property
    def state(self) -> BindState:
        return self.link.state

    @property
    def stopping(self) -> bool:
        return self.link.stopping

    async def _send(self, session: Session) -> None:
        await self.sender.run(session)

    def _crashed(self) -> None:
        self.sender.crashed()

    def _lost_in_flight(self, outstanding: list[Outstanding]) -> None:
        self.sender.account_lost(outstanding)

    # ------------------------------------------------------------------------------------- receiving

    def _on_data(self, session: Session, data: bytes) -> None:
        if session is not self.link.session:
            return  # a callback from a connection we already gave up on
        session.receive_data(data)
        out: list[bytes] = []
        answered = False
        for event in session.events():
            if type(event) is AckReceived:  # a plain successful submit_sm_resp, read in place
                answered = True
                self.sender.accepted(event.context, event.message_id)
            elif type(event) is ResponseReceived:
                answered = True
                self._on_response(event, out)
            elif type(event) is ReceiptReceived:
                self._on_receipt(event, session, out)
            elif type(event) is RequestReceived:
                self._on_request(event.pdu, out)
            elif type(event) is ProtocolError:
                self.stats.protocol_errors += 1
                self._log.warning("smpp.protocol_error", status=event.status, detail=event.detail)
                if event.outstanding is not None:
                    self.sender.account_lost([event.outstanding])
                if event.reply is not None:
                    out.append(encode(event.reply))
                if event.fatal:
                    self.link.lost.set()
            elif type(event) is ConnectionClosed:
                self.sender.account_lost(list(event.in_flight))
                self.stats.disconnects += 1
                self.link.lost.set()
        if out:
            self.link.write(b"".join(out))
        if self.sender.unconfirmed:
            self.sender.confirm(session)  # now, while the answer's time is still the last one
        if answered:
            self.sender.refill(session)

    def _on_response(self, event: ResponseReceived, out: list[bytes]) -> None:
        resp, item = event.response, event.context
        if isinstance(item, OutboundPart):
            self.sender.response(item, resp)
            return
        request = event.request
        if isinstance(request, BIND_REQUESTS):
            self.link.bind_answered(resp.status)
        elif isinstance(request, Unbind):
            self.link.lost.set()

    def _on_receipt(self, event: ReceiptReceived, session: Session, out: list[bytes]) -> None:
        status = status_of_state(event.message_state)
        assert status is not None  # a lean session reports only receipts with a known state
        message_id = normalize_message_id(event.message_id, self.bind.receipt_id_format)
        receipt = ReceiptSeen(self.link.smsc, message_id, status.value, str(event.network_error))
        self.inbound.receipt(receipt, session, session.acknowledge_delivery(event.sequence), out)

    def _on_request(self, pdu: object, out: list[bytes]) -> None:
        session = self.link.session
        assert session is not None
        if isinstance(pdu, DeliverSm):
            receipt = parse_receipt(pdu, full=False)
            answer = session.send(DeliverSmResp(sequence=pdu.sequence))
            if receipt is not None:
                message_id = normalize_message_id(receipt.message_id, self.bind.receipt_id_format)
                seen = ReceiptSeen(self.link.smsc, message_id, receipt.status.value, receipt.error)
                self.inbound.receipt(seen, session, answer, out)
            else:
                keep = self.inbound.replies is not None
                part = mo_part(pdu, smsc=self.operator.name, received=time.time()) if keep else None
                self.inbound.reply(part, session, answer, out)
        elif isinstance(pdu, EnquireLink):
            out.append(session.send(EnquireLinkResp(sequence=pdu.sequence)))
        elif isinstance(pdu, Unbind):
            out.append(session.send(UnbindResp(sequence=pdu.sequence)))
            self.link.lost.set()
