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
from dataclasses import dataclass, field
from typing import Any, cast

import structlog

from ulak.dispatch.bindstate import BindEvent, BindState, next_state
from ulak.dispatch.durable import Answering, DurableInbound, SinkRevoked
from ulak.dispatch.inbox import InboxStore
from ulak.dispatch.ledger import BATCH as LEDGER_BATCH
from ulak.dispatch.ledger import ReceiptSeen
from ulak.dispatch.part import OutboundPart, outbound_part
from ulak.dispatch.sendpath import SendPath
from ulak.dispatch.sendrecord import SendRecord
from ulak.dispatch.throttle import TokenSource, limits_for
from ulak.dispatch.writer import RECORD_REWRITE, EventSink, LedgerWriter
from ulak.replies.mo import MoStore, mo_part
from ulak.settings import BindConfig, OperatorConfig
from ulak.smpp.codec import encode
from ulak.smpp.constants import CommandStatus, status_name
from ulak.smpp.errors import LocalProtocolError
from ulak.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
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
    ProtocolError,
    ReceiptReceived,
    RequestReceived,
    ResponseReceived,
    Role,
    Session,
    State,
)

__all__ = ["RECORD_REWRITE", "Backoff", "BindClient", "OutboundPart", "SinkRevoked", "outbound_part"]

log = structlog.get_logger("ulak.bind")

_BIND_PDU: dict[str, type[BindTransceiver | BindTransmitter | BindReceiver]] = {
    "transceiver": BindTransceiver,
    "transmitter": BindTransmitter,
    "receiver": BindReceiver,
}
# Opens a connection for a protocol factory, as ``loop.create_connection`` does (host and port bound).
Connector = Callable[[Callable[[], asyncio.Protocol]], Awaitable[tuple[Any, Any]]]


# Bind refusals that say the credentials are wrong (SMPP 3.4 §5.1.3): not transient.
_REFUSED_FOR_GOOD = (CommandStatus.ESME_RINVPASWD, CommandStatus.ESME_RINVSYSID)
REFUSED_RETRY = 60.0


class BindRefused(Exception):
    """The SMSC refused the bind's credentials: fix ``system_id`` or the password, then it binds."""


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


@dataclass
class Backoff:
    """Exponential backoff with "equal jitter" (AWS architecture blog): each wait is between half
    and all of ``min(cap, base * 2**attempt)``.

    Not full jitter (between zero and all of it): its waits can come out near zero many times in a
    row, so the number of attempts in an outage has no bound, and a cluster of binds to an SMSC
    that is down would hammer it now and then. With half the step as a floor, an outage of T
    seconds costs a bind at most ``ramp + 2 * T / cap`` attempts (``attempts_bound``), and the
    binds of a cluster still spread out."""

    base: float = 0.2
    cap: float = 10.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        # The exponent stops growing once the step is at the cap: 2**1024 overflows a float, and
        # (before this) ended the bind's loop for good after some three hours of outage.
        step = min(self.cap, self.base * 2 ** min(self.attempt, 60))
        self.attempt += 1
        return self.rng.uniform(step / 2, step)

    def attempts_bound(self, seconds: float) -> int:
        """The most attempts this backoff makes in *seconds* of failures (the first is at once)."""
        attempts, waited, step = 1, 0.0, self.base
        while True:
            waited += min(self.cap, step) / 2
            if waited > seconds:
                return attempts
            attempts += 1
            step *= 2

    def reset(self) -> None:
        self.attempt = 0


class _Wire(asyncio.Protocol):
    """One TCP connection; it carries its own session so a late callback never touches the next one."""

    def __init__(self, client: BindClient, session: Session) -> None:
        self.client = client
        self.session = session
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports (Ray runs async actors on uvloop when it is installed) do not
        # subclass asyncio.Transport, so no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.client._on_data(self.session, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._on_data(self.session, b"")


class BindClient:
    """Holds one bind for as long as it runs (see the module docstring)."""

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
    ) -> None:
        """*backoff* (reconnects), *throttle_pause* (the first pause after ESME_RTHROTTLED, doubling
        up to 2 s) and *connect* (how a connection is opened: TCP to the bind's host by default) are
        there for tests that drive a bind against an in-memory SMSC. With an *inbox*, a receipt is
        answered only once it is in there (``ulak.dispatch.inbox``); its ledger *sink* must then trim
        that inbox as it applies receipts (``RedisLedger.apply_async(events, inbox=key)``). A *claim*
        is awaited before the first connection (again until it succeeds): it takes the bind's name
        for this process (``FencedWrites.claim``), so that of two processes of one bind the one
        started later holds it, whichever of them writes first. With *replies*, a deliver_sm that
        is not a receipt (an MO: a reply) is answered only once it is in there (``ulak.replies``)."""
        self.bind = bind
        self.operator = operator
        self.smsc = f"{bind.host}:{bind.port}/{bind.system_id}"
        self.state = BindState.CONNECTING
        self.stats = BindStats()
        self._log = log.bind(operator=operator.name, bind=bind.name)
        self._session: Session | None = None
        self._wire: _Wire | None = None
        self.wakeup = asyncio.Event()
        self.lost = asyncio.Event()
        self.stopping = False
        self._bound = asyncio.Event()
        self._refused: str | None = None  # why the SMSC refused the credentials, at the last bind
        rng = rng or random.Random()
        self._backoff = backoff or Backoff(cap=bind.reconnect_delay_max, rng=rng)
        self._down_since: float | None = None  # monotonic: when the bind last stopped being bound
        self._connector = connect
        self._tasks: list[asyncio.Task[None]] = []
        self._revoke: asyncio.Future[None] | None = None
        self._claim = claim
        self.writer = LedgerWriter(
            sink=sink,
            record=record,
            unsettled=self._unsettled,
            revoked=self.revoked,
            flush_interval=flush_interval,
            flush_batch=flush_batch,
            log=self._log,
        )
        self.sender = SendPath(
            bind,
            operator,
            # The operator's limiter (shared by its binds), and the bind's own cap when it has one.
            tokens=limits_for(
                bind.tps, account_tps=operator.tps, bind_caps=[b.tps for b in operator.binds], shared=tokens
            ),
            link=self,
            writer=self.writer,
            stats=self.stats,
            log=self._log,
            lease_seconds=lease_seconds,
            throttle_pause=throttle_pause,
            rng=rng,
        )
        self.inbound = DurableInbound(
            inbox=inbox,
            replies=replies,
            answering=Answering(
                session=lambda: self._session if not self.lost.is_set() else None,
                write=self.write,
                receipts=self.writer.outbox.receipts,
                revoked=self.revoked,
            ),
            stats=self.stats,
            log=self._log,
        )

    # ------------------------------------------------------------------------------------ public API

    def enqueue(self, parts: list[OutboundPart], *, weight: float = 1.0) -> None:
        """Queue parts to send (the caller bounds how much it queues: ``queued`` says how much waits).
        Jobs share the bind by *weight* (see ``ulak.dispatch.fairqueue``)."""
        self.sender.enqueue(parts, weight=weight)

    def withdraw(self, job: str) -> list[OutboundPart]:
        """Take *job*'s queued parts back, in order (pause and cancel: nothing more of it is sent).
        Staged ones leave the send record at the next flush (the actor flushes right after)."""
        return self.sender.withdraw(job)

    def queued_of(self, job: str) -> int:
        """*job*'s parts here not sent yet."""
        return self.sender.queued_of(job)

    def pending_of(self, job: str) -> int:
        """*job*'s parts here: queued, or sent and awaiting their response."""
        session = self._session
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
        return len(self._session.in_flight) if self._session is not None else 0

    def describe(self) -> dict[str, object]:
        """State for diagnostics and the operators API."""
        session = self._session
        return {
            "state": self.state.value,
            "queued": self.queued,
            "staged": self.sender.staged,
            "jobs": self.sender.queue.jobs(),
            "in_flight": [type(o.pdu).__name__ for o in session.in_flight] if session else [],
            "session": session.state.value if session else None,
            "lost": self.lost.is_set(),
            "paused_for": self.sender.paused_for,
            "tasks": [t.get_name() + (":done" if t.done() else "") for t in self._tasks],
            "receipts_not_durable": self.inbound.receipts_waiting,
            "replies_not_durable": self.inbound.replies_waiting,
            # How long the bind has not been bound (0: it is), measured here: no clock is compared.
            "down_for": 0.0 if self._down_since is None else round(time.monotonic() - self._down_since, 1),
            **self.stats.__dict__,
        }

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"bind-{self.bind.name}"),
            asyncio.create_task(self.writer.run(), name=f"flush-{self.bind.name}"),
            *self.inbound.tasks(self.bind.name),
        ]

    async def wait_bound(self, timeout: float) -> None:
        await asyncio.wait_for(self._bound.wait(), timeout)

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
        self.stopping = True
        await self._unbind()
        run, flusher, *inbox = self._tasks
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        self.inbound.finish()  # what is not durable yet stays unanswered: the SMSC sends it again
        await asyncio.gather(*inbox, return_exceptions=True)
        self.writer.finish()  # one last flush, never cancelled mid-write
        await flusher
        await self.writer.reset_record()
        self.move(BindEvent.STOPPED)

    async def _unbind(self) -> None:
        session, wire = self._session, self._wire
        if session is not None and wire is not None and wire.transport is not None and session.state.is_bound:
            # The send loop sends nothing more now; the unbind waits for room in the window (it is a
            # request too: sent into a full one, it raised, and the bind never stopped).
            deadline = time.monotonic() + 2.0
            while session.window_available <= 0 and not self.lost.is_set() and time.monotonic() < deadline:
                await self.sleep_or_lost(0.02)
            try:
                wire.transport.write(session.send(Unbind()))
                await asyncio.wait_for(self.lost.wait(), max(0.1, deadline - time.monotonic()))
            except (LocalProtocolError, TimeoutError):  # the window still full, or no answer
                wire.transport.close()
        elif wire is not None and wire.transport is not None:
            wire.transport.close()

    def _unsettled(self) -> list[Any]:
        """The parts staged or in flight now (``LedgerWriter.rewrite_record``)."""
        unsettled = self.sender.unsettled()
        session = self._session
        if session is not None:
            unsettled += [o.context for o in session.in_flight if isinstance(o.context, OutboundPart)]
        return unsettled

    def revoked(self, exc: SinkRevoked) -> None:
        """Stop sending now, and for good (see :class:`SinkRevoked`): as ``stop`` does, from a task
        of its own (called from the flusher or the inbox keeper, which ``stop`` waits for)."""
        if self.stopping:
            return
        self._log.error("bind.superseded", error=str(exc))
        self.stats.last_error = str(exc)
        self.stopping = True  # the send loop sends nothing more from here
        self._revoke = asyncio.ensure_future(self.stop())  # referenced: a task nothing holds may go

    # ----------------------------------------------------------------------------------- connection

    async def _run(self) -> None:
        """Connect, bind and send, for as long as the bind runs: whatever ends a connection, the loop
        goes on (issue 14: an error nobody caught ended it, and the bind said "bound" for good)."""
        loop = asyncio.get_running_loop()
        while not self.stopping:
            first = self.stats.connects == 0
            self.move(BindEvent.CONNECT, to=BindState.CONNECTING if first else BindState.RECONNECTING)
            if self._down_since is None:
                self._down_since = time.monotonic()
            if self._claim is not None and not await self._claimed():
                continue
            self.stats.attempts += 1
            try:
                session = await self._connect(loop)
                await self.sender.run(session)
            except (OSError, TimeoutError, ConnectionError) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                self._log.warning("bind.lost", error=self.stats.last_error)
            except BindRefused as exc:
                self.move(BindEvent.REFUSED)
                self.stats.last_error = str(exc)
            except Exception as exc:  # a bug: never let it end the loop silently
                self.move(BindEvent.CRASHED)
                self.stats.failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                self._log.exception("bind.failed", error=self.stats.last_error)
                self.sender.crashed()  # whatever it was, not spent again (it expires at the limiter)
            finally:
                self._teardown()
            if self.stopping:
                return
            delay = REFUSED_RETRY if self.state is BindState.REFUSED else self._backoff.next_delay()
            self._log.info("bind.reconnecting", delay=round(delay, 3), state=self.state.value)
            await asyncio.sleep(delay)

    async def _claimed(self) -> bool:
        """Take the bind's name before anything is sent (see *claim*); False, after a wait, if
        Redis could not be reached."""
        assert self._claim is not None
        try:
            await self._claim()
        except Exception as exc:
            self.stats.last_error = f"claiming the bind's name: {type(exc).__name__}: {exc}"
            self._log.warning("bind.claim_failed", error=self.stats.last_error)
            await asyncio.sleep(self._backoff.next_delay())
            return False
        self._claim = None
        return True

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Session:
        self.lost.clear()
        self._bound.clear()
        self._refused = None
        session = Session(
            Role.ESME,
            window=self.bind.window,
            response_timeout=self.bind.response_timeout,
            lean_receipts=True,
            lean_acks=True,
        )
        self._session = session

        def factory() -> _Wire:
            return _Wire(self, session)

        opening = (
            self._connector(factory)
            if self._connector is not None
            else loop.create_connection(factory, self.bind.host, self.bind.port)
        )
        _, wire = await asyncio.wait_for(opening, 10)
        self._wire = wire  # referenced for the connection's lifetime
        self.stats.connects += 1
        pdu = _BIND_PDU[self.bind.bind_type](
            system_id=self.bind.system_id,
            password=self.bind.password.get_secret_value(),
            system_type=self.bind.system_type,
        )
        if self.lost.is_set():  # the SMSC closed it as soon as it opened (restarting, or full)
            raise ConnectionError("the SMSC closed the connection before the bind was sent")
        self.write(session.send(pdu))
        bound = asyncio.ensure_future(self._bound.wait())
        lost = asyncio.ensure_future(self.lost.wait())
        done, pending = await asyncio.wait(
            {bound, lost}, timeout=self.bind.response_timeout, return_when="FIRST_COMPLETED"
        )
        for f in pending:
            f.cancel()
        if bound not in done:
            if self._refused is not None:
                raise BindRefused(self._refused)
            raise ConnectionError(self.stats.last_error or "bind not answered")
        self._backoff.reset()
        self.stats.attempts = 0
        self._down_since = None
        self.move(BindEvent.BOUND)
        self._log.info("bind.established", smsc=self.smsc)
        return session

    def move(self, event: BindEvent, *, to: BindState | None = None) -> None:
        self.state = next_state(self.state, event, to=to)

    def _teardown(self) -> None:
        wire = self._wire
        if wire is not None and wire.transport is not None:
            wire.transport.abort()
        if self._session is not None and self._session.state is not State.CLOSED:
            self.sender.account_lost(self._session.close())
        self._wire = None

    def write(self, data: bytes) -> None:
        if self._wire is not None and self._wire.transport is not None:
            self._wire.transport.write(data)

    def check_liveness(self, session: Session, now: float, interval: float) -> None:
        expired = session.expire()
        if expired:
            # No response in time: the SMSC may or may not have the message. Treat as lost in flight.
            self._log.warning("submit.timeout", count=len(expired))
            self.sender.account_lost(expired)
        if session.idle_for() >= interval and session.state.is_bound:
            if any(isinstance(o.pdu, EnquireLink) for o in session.in_flight):
                if session.idle_for() >= interval + self.bind.response_timeout:
                    self._log.warning("bind.dead_peer", idle=round(session.idle_for(), 1))
                    self.lost.set()
            elif session.window_available:
                self.write(session.send(EnquireLink()))

    async def sleep_or_lost(self, seconds: float, *, wake: bool = False) -> None:
        waiters = [asyncio.ensure_future(self.lost.wait())]
        if wake:
            waiters.append(asyncio.ensure_future(self.wakeup.wait()))
        _, pending = await asyncio.wait(waiters, timeout=max(0.0, seconds), return_when="FIRST_COMPLETED")
        for f in pending:
            f.cancel()

    # ------------------------------------------------------------------------------------- receiving

    def _on_data(self, session: Session, data: bytes) -> None:
        if session is not self._session:
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
                    self.lost.set()
            elif type(event) is ConnectionClosed:
                self.sender.account_lost(list(event.in_flight))
                self.stats.disconnects += 1
                self.lost.set()
        if out:
            self.write(b"".join(out))
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
        if isinstance(request, (BindTransceiver, BindTransmitter, BindReceiver)):
            if resp.status == CommandStatus.ESME_ROK:
                self._bound.set()
            else:
                self.stats.binds_refused += 1
                self.stats.last_error = f"bind refused: {status_name(resp.status)}"
                if resp.status in _REFUSED_FOR_GOOD:
                    self._refused = (
                        f"the SMSC refused system_id {self.bind.system_id!r} with "
                        f"{status_name(resp.status)}: check the bind's system_id and the password in "
                        f"${self.bind.password_env}; retrying every {REFUSED_RETRY:g} s"
                    )
                    if self.state is not BindState.REFUSED:  # once, not every minute
                        self._log.error("bind.refused", error=self._refused)
                else:
                    self._log.error("bind.refused", status=self.stats.last_error)
                self.lost.set()
        elif isinstance(request, Unbind):
            self.lost.set()

    def _on_receipt(self, event: ReceiptReceived, session: Session, out: list[bytes]) -> None:
        status = status_of_state(event.message_state)
        assert status is not None  # a lean session reports only receipts with a known state
        message_id = normalize_message_id(event.message_id, self.bind.receipt_id_format)
        receipt = ReceiptSeen(self.smsc, message_id, status.value, str(event.network_error))
        self.inbound.receipt(receipt, session, session.acknowledge_delivery(event.sequence), out)

    def _on_request(self, pdu: object, out: list[bytes]) -> None:
        session = self._session
        assert session is not None
        if isinstance(pdu, DeliverSm):
            receipt = parse_receipt(pdu, full=False)
            answer = session.send(DeliverSmResp(sequence=pdu.sequence))
            if receipt is not None:
                message_id = normalize_message_id(receipt.message_id, self.bind.receipt_id_format)
                seen = ReceiptSeen(self.smsc, message_id, receipt.status.value, receipt.error)
                self.inbound.receipt(seen, session, answer, out)
            else:
                keep = self.inbound.replies is not None
                part = mo_part(pdu, smsc=self.operator.name, received=time.time()) if keep else None
                self.inbound.reply(part, session, answer, out)
        elif isinstance(pdu, EnquireLink):
            out.append(session.send(EnquireLinkResp(sequence=pdu.sequence)))
        elif isinstance(pdu, Unbind):
            out.append(session.send(UnbindResp(sequence=pdu.sequence)))
            self.lost.set()
