"""One persistent SMPP bind: the logic behind ``SmppConnectionActor``, testable without Ray.

``BindClient`` connects, binds, and sends the parts queued on it through a window, spending tokens
leased from the operator's limiter. It keeps the bind alive (enquire_link, dead-peer detection),
reconnects with exponential backoff and full jitter, and turns everything that happens to a part into
ledger events, flushed in batches:

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
import contextlib
import functools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import structlog

from ulak.dispatch.bindstate import BindEvent, BindState, next_state
from ulak.dispatch.fairqueue import FairQueue
from ulak.dispatch.inbox import Inbound, InboxStore
from ulak.dispatch.leases import LeaseMeter
from ulak.dispatch.ledger import (
    BATCH as LEDGER_BATCH,
)
from ulak.dispatch.ledger import (
    Event,
    PartAcked,
    PartFailed,
    PartReturned,
    PartSent,
    PartUnknown,
    ReceiptSeen,
)
from ulak.dispatch.outbox import Outbox
from ulak.dispatch.sendrecord import RecordFenced, SendRecord
from ulak.dispatch.stager import Stager
from ulak.dispatch.throttle import TokenSource, limits_for
from ulak.replies.mo import MoPart, MoStore, mo_part
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
    EncodedSubmitSm,
    EnquireLink,
    EnquireLinkResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    fast_constructor,
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
    Role,
    Session,
    State,
)

log = structlog.get_logger("ulak.bind")

_BIND_PDU: dict[str, type[BindTransceiver | BindTransmitter | BindReceiver]] = {
    "transceiver": BindTransceiver,
    "transmitter": BindTransmitter,
    "receiver": BindReceiver,
}
_TRANSIENT = (CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL)
# How often the send record is trimmed to what is unsettled (seconds): between two trims it only
# grows by what is staged, and parts settled meanwhile cost nothing but bytes if it is ever read.
RECORD_REWRITE = 0.25


@dataclass(frozen=True, slots=True)
class OutboundPart:
    """One PDU to submit, and which part of which row of which job it is."""

    job: str
    row: int
    part: int
    parts: int
    pdu: SubmitSm | EncodedSubmitSm  # EncodedSubmitSm on the hot path (see its docstring)

    def __reduce__(self) -> tuple[Any, ...]:
        # Batches of these cross Ray: by position, not through dataclasses' per-object fields() walk,
        # and rebuilt without the frozen __init__ (4× slower): unpickling them was ~10 % of a bind.
        return (outbound_part, (self.job, self.row, self.part, self.parts, self.pdu))


_make_outbound_part = fast_constructor(OutboundPart)


def outbound_part(job: str, row: int, part: int, parts: int, pdu: SubmitSm | EncodedSubmitSm) -> OutboundPart:
    """``OutboundPart(job, row, part, parts, pdu)``, built without the frozen ``__init__``."""
    return _make_outbound_part(job, row, part, parts, pdu)  # type: ignore[no-any-return]


EventSink = Callable[[list[Event]], Awaitable[None]]
_T = TypeVar("_T")


class _Stopped(Exception):
    """The bind stopped while its inbox could not be written."""


# Opens a connection for a protocol factory, as ``loop.create_connection`` does (host and port bound).
Connector = Callable[[Callable[[], asyncio.Protocol]], Awaitable[tuple[Any, Any]]]


# Bind refusals that say the credentials are wrong (SMPP 3.4 §5.1.3): not transient.
_REFUSED_FOR_GOOD = (CommandStatus.ESME_RINVPASWD, CommandStatus.ESME_RINVSYSID)
REFUSED_RETRY = 60.0


class SinkRevoked(Exception):
    """The bind's writes are refused for good: another process holds its name now
    (``ulak.dispatch.fence.Superseded``). This one stops sending at once: whatever it sent from here
    on, nobody would account for."""


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
        # The operator's limiter (shared by its binds), and the bind's own cap when it has one.
        self.tokens = limits_for(
            bind.tps, account_tps=operator.tps, bind_caps=[b.tps for b in operator.binds], shared=tokens
        )
        self.sink = sink
        self.lease_seconds = lease_seconds
        self.flush_interval = flush_interval
        self.flush_batch = flush_batch
        self.at_least_once = operator.delivery_semantics == "at-least-once"
        self.state = BindState.CONNECTING
        self.stats = BindStats()
        self.queue: FairQueue[OutboundPart] = FairQueue()
        # Parts taken from the queue to be sent next, in order: written to the send record first (see
        # ulak.dispatch.sendrecord), up to two windows at a time, and only then sent; and parts the
        # SMSC answered "slow down", to go again first (ulak.dispatch.stager).
        self.record = record
        self._stager: Stager[OutboundPart] = Stager()
        self._staged = self._stager.staged  # the send path's view: the stager never replaces it
        self._record_lock = asyncio.Lock()
        self._record_empty = True
        self._record_at = 0.0  # when the record was last rewritten
        # Ledger events not written yet: coalesced, receipts a tick late (ulak.dispatch.outbox).
        self._outbox = Outbox()
        self.inbox = inbox
        self._inbound: Inbound[ReceiptSeen] = Inbound()
        self.replies = replies
        self._mo_inbound: Inbound[MoPart] = Inbound()
        self._mo_ready = asyncio.Event()
        self._inbound_ready = asyncio.Event()
        self._inbox_done = False
        self._session: Session | None = None
        self._wire: _Wire | None = None
        self._wakeup = asyncio.Event()
        self._bound = asyncio.Event()
        self._lost = asyncio.Event()
        self._stopping = False
        self._refused: str | None = None  # why the SMSC refused the credentials, at the last bind
        self._pause_until = 0.0
        self._throttle_level = 0  # consecutive throttled responses: how hard the bind backs off
        # The lease being spent as the window frees up, and spent ones to settle (ulak.dispatch.leases).
        self._leases = LeaseMeter(time.monotonic)
        self._last_answer = 0.0  # when a submit_sm was last answered, or the connection lost
        self._rng = rng or random.Random()
        self._backoff = backoff or Backoff(cap=bind.reconnect_delay_max, rng=self._rng)
        self._down_since: float | None = None  # monotonic: when the bind last stopped being bound
        self._throttle_pause = throttle_pause
        self._connector = connect
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_lock = asyncio.Lock()
        self._flush_done = False
        self._revoke: asyncio.Future[None] | None = None
        self._claim = claim
        self._log = log.bind(operator=operator.name, bind=bind.name)

    # ------------------------------------------------------------------------------------ public API

    def enqueue(self, parts: list[OutboundPart], *, weight: float = 1.0) -> None:
        """Queue parts to send (the caller bounds how much it queues: ``queued`` says how much waits).
        Jobs share the bind by *weight* (see ``ulak.dispatch.fairqueue``)."""
        for job in {p.job for p in parts}:
            self.queue.set_weight(job, weight)
        self.queue.extend(parts)
        self._wakeup.set()

    def withdraw(self, job: str) -> list[OutboundPart]:
        """Take *job*'s queued parts back, in order (pause and cancel: nothing more of it is sent).
        Staged ones leave the send record at the next flush (the actor flushes right after)."""
        self._record_at = 0.0
        return self._stager.withdraw(job) + self.queue.withdraw(job)

    def queued_of(self, job: str) -> int:
        """*job*'s parts here not sent yet."""
        return self.queue.count(job) + self._stager.count(job)

    def pending_of(self, job: str) -> int:
        """*job*'s parts here: queued, or sent and awaiting their response."""
        queued = self.queued_of(job)
        session = self._session
        flying = 0
        if session is not None:
            flying = sum(
                1 for o in session.in_flight if isinstance(o.context, OutboundPart) and o.context.job == job
            )
        return queued + flying

    @property
    def queued(self) -> int:
        return len(self.queue) + len(self._stager)

    @property
    def in_flight(self) -> int:
        return len(self._session.in_flight) if self._session is not None else 0

    def describe(self) -> dict[str, object]:
        """State for diagnostics and the operators API."""
        session = self._session
        return {
            "state": self.state.value,
            "queued": self.queued,
            "staged": len(self._stager),
            "jobs": self.queue.jobs(),
            "in_flight": [type(o.pdu).__name__ for o in session.in_flight] if session else [],
            "session": session.state.value if session else None,
            "lost": self._lost.is_set(),
            "paused_for": max(0.0, round(self._pause_until - time.monotonic(), 3)),
            "tasks": [t.get_name() + (":done" if t.done() else "") for t in self._tasks],
            "receipts_not_durable": len(self._inbound),
            "replies_not_durable": len(self._mo_inbound),
            # How long the bind has not been bound (0: it is), measured here: no clock is compared.
            "down_for": 0.0 if self._down_since is None else round(time.monotonic() - self._down_since, 1),
            **self.stats.__dict__,
        }

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"bind-{self.bind.name}"),
            asyncio.create_task(self._flusher(), name=f"flush-{self.bind.name}"),
        ]
        if self.inbox is not None:
            self._tasks.append(asyncio.create_task(self._keep_inbox(), name=f"inbox-{self.bind.name}"))
        if self.replies is not None:
            self._tasks.append(asyncio.create_task(self._keep_replies(), name=f"replies-{self.bind.name}"))

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

    async def stop(self) -> None:
        """Unbind politely, account for anything still in flight, and stop."""
        self._stopping = True
        session, wire = self._session, self._wire
        if session is not None and wire is not None and wire.transport is not None and session.state.is_bound:
            # The send loop sends nothing more now; the unbind waits for room in the window (it is a
            # request too: sent into a full one, it raised, and the bind never stopped).
            deadline = time.monotonic() + 2.0
            while session.window_available <= 0 and not self._lost.is_set() and time.monotonic() < deadline:
                await self._sleep_or_lost(0.02)
            try:
                wire.transport.write(session.send(Unbind()))
                await asyncio.wait_for(self._lost.wait(), max(0.1, deadline - time.monotonic()))
            except (LocalProtocolError, TimeoutError):  # the window still full, or no answer
                wire.transport.close()
        elif wire is not None and wire.transport is not None:
            wire.transport.close()
        run, flusher, *inbox = self._tasks
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        self._inbox_done = True  # what is not durable yet stays unanswered: the SMSC sends it again
        self._inbound_ready.set()
        self._mo_ready.set()
        await asyncio.gather(*inbox, return_exceptions=True)
        # The flusher is never cancelled mid-write (that would lose a batch of ledger events and can
        # leave the Redis connection unusable): it is told to finish and does one last flush.
        self._flush_done = True
        await flusher
        if self.record is not None:
            # Everything sent is written now (or lost with a failed write, either way not ours to
            # record): what is still staged was never sent.
            with contextlib.suppress(Exception):
                await self.record.reset([])
        self._move(BindEvent.STOPPED)

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
            outbox = self._outbox
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
                await self._rewrite_record()
            await self._rewrite_record()

    async def _rewrite_record(self) -> None:
        """Every ``RECORD_REWRITE`` seconds, the send record becomes what is unsettled now: the parts
        staged (or being staged), in flight, or answered with the answer not written yet
        (ulak.dispatch.sendrecord)."""
        if self.record is None or time.monotonic() - self._record_at < RECORD_REWRITE:
            return
        async with self._record_lock:
            unsettled: list[Any] = self._stager.unsettled()
            session = self._session
            if session is not None:
                unsettled += [o.context for o in session.in_flight if isinstance(o.context, OutboundPart)]
            unsettled += self._outbox.unsettled()
            self._record_at = time.monotonic()
            if not unsettled and self._record_empty:
                return
            await self.record.reset(unsettled)
            self._record_empty = not unsettled

    def _should_stage(self) -> bool:
        """Less than a window staged, more queued, and tokens in hand for more than is staged."""
        staged = self._stager.ready
        return staged < self.bind.window and bool(self.queue) and self._leases.left > staged

    async def _stage(self, tokens: int) -> None:
        """Take up to two windows of parts from the queue (no more than the lease's *tokens* left
        will send), write them to the send record, and only then let them be sent (a failed write
        puts them back and waits: nothing is sent unrecorded). Staging no further ahead keeps what
        a dying bind leaves ``unknown`` without having sent it small."""
        n = min(len(self.queue), 2 * self.bind.window, tokens)
        items = [self.queue.popleft() for _ in range(n)]
        self._stager.begin(items)
        if self.record is not None:
            try:
                async with self._record_lock:
                    await self.record.add(items)
                    self._record_empty = False
            except RecordFenced as exc:  # a later process holds the name: send nothing more
                self.queue.extendleft(reversed(self._stager.abort()))
                self._revoked(SinkRevoked(str(exc)))
                return
            except Exception as exc:
                self._log.error("record.write_failed", error=f"{type(exc).__name__}: {exc}")
                self.queue.extendleft(reversed(self._stager.abort()))  # back in front, in order
                await self._sleep_or_lost(0.5)
                return
        # A withdraw during the write took its job's parts out of the batch: the rest go.
        self._stager.commit()

    # ----------------------------------------------------------------------------------- connection

    async def _run(self) -> None:
        """Connect, bind and send, for as long as the bind runs: whatever ends a connection, the loop
        goes on (issue 14: an error nobody caught ended it, and the bind said "bound" for good)."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            first = self.stats.connects == 0
            self._move(BindEvent.CONNECT, to=BindState.CONNECTING if first else BindState.RECONNECTING)
            if self._down_since is None:
                self._down_since = time.monotonic()
            if self._claim is not None and not await self._claimed():
                continue
            self.stats.attempts += 1
            try:
                await self._connect(loop)
                await self._pump()
            except (OSError, TimeoutError, ConnectionError) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                self._log.warning("bind.lost", error=self.stats.last_error)
            except BindRefused as exc:
                self._move(BindEvent.REFUSED)
                self.stats.last_error = str(exc)
            except Exception as exc:  # a bug: never let it end the loop silently
                self._move(BindEvent.CRASHED)
                self.stats.failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                self._log.exception("bind.failed", error=self.stats.last_error)
                self._leases.drop()  # whatever it was, not spent again (it expires at the limiter)
            finally:
                self._teardown()
            if self._stopping:
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

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        self._lost.clear()
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
        if self._lost.is_set():  # the SMSC closed it as soon as it opened (restarting, or full)
            raise ConnectionError("the SMSC closed the connection before the bind was sent")
        self._write(session.send(pdu))
        bound = asyncio.ensure_future(self._bound.wait())
        lost = asyncio.ensure_future(self._lost.wait())
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
        self._move(BindEvent.BOUND)
        self._log.info("bind.established", smsc=self.smsc)

    def _move(self, event: BindEvent, *, to: BindState | None = None) -> None:
        self.state = next_state(self.state, event, to=to)

    def _teardown(self) -> None:
        wire = self._wire
        if wire is not None and wire.transport is not None:
            wire.transport.abort()
        if self._session is not None and self._session.state is not State.CLOSED:
            self._account_lost(self._session.close())
        self._wire = None

    def _write(self, data: bytes) -> None:
        if self._wire is not None and self._wire.transport is not None:
            self._wire.transport.write(data)

    # ------------------------------------------------------------------------------------- sending

    async def _pump(self) -> None:
        session = self._session
        assert session is not None
        enquire_interval = self.bind.enquire_link_interval
        while not self._lost.is_set():
            if self._stopping:  # stopping, or revoked: not one more part, answers still come in
                await self._sleep_or_lost(1.0)
                continue
            now = time.monotonic()
            self._check_liveness(session, now, enquire_interval)
            if now < self._pause_until:
                self._move(BindEvent.SLOW_DOWN)
                await self._sleep_or_lost(self._pause_until - now)
                continue
            self._move(BindEvent.GO_ON)
            leases = self._leases
            if leases.live(now) and self._should_stage():
                await self._stage(leases.left - self._stager.ready)
                continue
            if leases.lease is not None:
                room = min(session.window_available, self._stager.ready)
                queued = self._stager.ready or self.queue
                if queued and leases.live(now) and leases.left > 0:
                    if room <= 0:  # the window is full: wait for a response, or the lease's end
                        self._wakeup.clear()
                        await self._sleep_or_lost(leases.deadline - now, wake=True)
                        continue
                    self._spend(session, min(room, leases.left))
                    continue
                leases.end()  # spent, expired, or nothing left to send: settle it (below)
            self._confirm(session)
            room = min(session.window_available, self.queued)
            if room <= 0:
                self._wakeup.clear()  # before the await below: a response meanwhile must wake us
                await self._settle()
                await self._sleep_or_lost(min(1.0, enquire_interval / 4), wake=True)
                continue
            # While busy, a lease is settled in the same call that asks for the next one. A lease is
            # ~lease_seconds of the operator's rate, spent as the window frees up, so an uncapped
            # bind asks the limiter once per lease, not once per window refill.
            settlement = leases.next_settlement()
            await self._settle()  # more than one ready (rare): the rest on their own
            share = self._lease_size()
            # Counted after the await: a withdraw meanwhile may have emptied the queue (want 0 once
            # divided the hold below by zero and ended the loop: issue 14).
            want = min(self.queued, share, 20 * self.bind.window)
            if want <= 0:
                if settlement is not None:
                    leases.keep(settlement)
                continue
            # A lease smaller than the rate's share (uncapped: the window and the queue bound it)
            # may be held longer, up to a second: it reserves fewer tokens than a full share would,
            # and a busy uncapped bind then asks about once a second instead of twenty times (an
            # actor call costs the ThrottleActor ~0.5 ms of CPU, more on a loaded machine).
            hold = self.lease_seconds if want >= share else min(1.0, self.lease_seconds * share / want)
            asked = time.monotonic()
            try:
                lease = await self.tokens.exchange(settlement, want, hold=hold)
            except Exception as exc:
                # The operator's limiter is unreachable (its actor restarting): the settlement is
                # lost with the call, which the limiter survives (an unsettled lease expires on its
                # own). Wait, and ask again; the connection has nothing to do with it.
                self._limiter_failed(exc)
                await self._sleep_or_lost(0.5)
                continue
            if not lease.tokens:
                await self._sleep_or_lost(min(lease.retry_after, 1.0))
                continue
            leases.begin(lease, asked=asked)  # offsets from the asking (see ulak.dispatch.leases)
            self._spend(session, min(session.window_available, self._stager.ready, lease.tokens))

    def _spend(self, session: Session, n: int) -> None:
        self._leases.spent(self._send(session, n))

    def _confirm(self, session: Session) -> None:
        """Settle the spent leases whose PDUs have all been answered (``LeaseMeter.confirm``)."""
        self._leases.confirm(oldest_unanswered=session.oldest_sent_at(), last_answer=self._last_answer)

    async def _settle(self) -> None:
        for settlement in self._leases.take_ready():
            try:
                await self.tokens.settle(
                    settlement.lease_id, used=settlement.used, last_sent_after=settlement.last_sent_after
                )
            except Exception as exc:  # the limiter unreachable: its lease stays charged until it expires
                self._limiter_failed(exc)

    def _limiter_failed(self, exc: Exception) -> None:
        self.stats.limiter_errors += 1
        self.stats.last_error = f"limiter: {type(exc).__name__}: {exc}"
        self._log.warning("limiter.unavailable", error=self.stats.last_error)

    def _lease_size(self) -> int:
        rate = self.operator.tps if self.bind.tps is None else min(self.operator.tps, self.bind.tps)
        base = max(1, int(rate * self.lease_seconds))
        return max(1, base >> min(self._throttle_level, 6))

    def _send(self, session: Session, n: int) -> int:
        if self._lost.is_set() or self._stopping or not session.state.is_bound:
            return 0  # stopping (or revoked): not one more part, from any path
        out = []
        outbox = self._outbox
        events, sent_at = outbox.events, outbox.sent_at  # Outbox.sent, inlined: the hottest loop
        self._stager.merge()  # parts answered "slow down" go first, in their order
        staged = self._staged
        for _ in range(min(n, len(staged), session.window_available)):
            item = staged.popleft()
            out.append(session.send(item.pdu, context=item))
            sent_at[id(item)] = len(events)
            events.append(PartSent(item.job, item.row, item.part, item.parts))
        self._write(b"".join(out))
        self.stats.submitted += len(out)
        return len(out)

    def _check_liveness(self, session: Session, now: float, interval: float) -> None:
        expired = session.expire()
        if expired:
            # No response in time: the SMSC may or may not have the message. Treat as lost in flight.
            self._log.warning("submit.timeout", count=len(expired))
            self._account_lost(expired)
        if session.idle_for() >= interval and session.state.is_bound:
            if any(isinstance(o.pdu, EnquireLink) for o in session.in_flight):
                if session.idle_for() >= interval + self.bind.response_timeout:
                    self._log.warning("bind.dead_peer", idle=round(session.idle_for(), 1))
                    self._lost.set()
            elif session.window_available:
                self._write(session.send(EnquireLink()))

    async def _sleep_or_lost(self, seconds: float, *, wake: bool = False) -> None:
        waiters = [asyncio.ensure_future(self._lost.wait())]
        if wake:
            waiters.append(asyncio.ensure_future(self._wakeup.wait()))
        _, pending = await asyncio.wait(waiters, timeout=max(0.0, seconds), return_when="FIRST_COMPLETED")
        for f in pending:
            f.cancel()

    async def _flusher(self) -> None:
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

    def _revoked(self, exc: SinkRevoked) -> None:
        """Stop sending now, and for good (see :class:`SinkRevoked`): as ``stop`` does, from a task
        of its own (called from the flusher or the inbox keeper, which ``stop`` waits for)."""
        if self._stopping:
            return
        self._log.error("bind.superseded", error=str(exc))
        self.stats.last_error = str(exc)
        self._stopping = True  # the send loop sends nothing more from here
        self._revoke = asyncio.ensure_future(self.stop())  # referenced: a task nothing holds may go

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
                self._accepted(event.context, event.message_id)
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
                    self._account_lost([event.outstanding])
                if event.reply is not None:
                    out.append(encode(event.reply))
                if event.fatal:
                    self._lost.set()
            elif type(event) is ConnectionClosed:
                self._account_lost(list(event.in_flight))
                self.stats.disconnects += 1
                self._lost.set()
        if out:
            self._write(b"".join(out))
        if self._leases.unconfirmed:
            self._confirm(session)  # now, while the answer's time is still the last one
        if answered:
            self._refill(session)

    def _refill(self, session: Session) -> None:
        """Spend the lease in hand on the window slots that answers just freed, here in the receive
        path; wake the send loop only when the lease cannot go on (spent, expired, nothing queued,
        or the bind must pause). Waking it for every answer cost more than the sending did."""
        leases = self._leases
        if leases.left > 0 and self._stager.ready and not self._lost.is_set():
            now = time.monotonic()
            if leases.live(now) and now >= self._pause_until:
                room = min(session.window_available, leases.left)
                if room > 0:
                    self._spend(session, room)
                if not self._should_stage():
                    return  # the send loop wakes at the lease's deadline, or when the window has room
        self._wakeup.set()

    def _accepted(self, item: OutboundPart, raw: str) -> None:
        """The SMSC accepted *item* and gave it the message id *raw*."""
        self._last_answer = time.monotonic()
        self._answered(item)
        if self._throttle_level:
            self._throttle_level -= 1  # ramp back per success
        message_id = normalize_message_id(raw, self.bind.resp_id_format)
        shown = raw if raw != message_id else ""
        event = PartAcked(item.job, item.row, item.part, item.parts, self.smsc, message_id, shown)
        self._outbox.add(event)

    def _on_response(self, event: ResponseReceived, out: list[bytes]) -> None:
        resp, item = event.response, event.context
        if isinstance(item, OutboundPart):
            status = resp.status
            if status == CommandStatus.ESME_ROK and type(resp) is SubmitSmResp:
                self._accepted(item, resp.message_id)
                return
            self._last_answer = time.monotonic()
            if status in _TRANSIENT:
                self._throttled(item, resp.sequence)
            else:
                self._answered(item)
                self._outbox.add(PartFailed(item.job, item.row, item.part, item.parts, int(status)))
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
                self._lost.set()
        elif isinstance(request, Unbind):
            self._lost.set()

    def _throttled(self, item: OutboundPart, sequence: int) -> None:
        # The SMSC says "slow down": resend this part first, in order, and pause the whole bind. The
        # SMSC does not have it: if the ledger was told it was sent, it is told it came back, so a
        # runner that takes the job back (pause, restart) sends it again instead of skipping it.
        self.stats.throttled += 1
        if not self._answered(item):
            self._outbox.add(PartReturned(item.job, item.row, item.part, item.parts))
        self._stager.returned(sequence, item)
        self._throttle_level = min(self._throttle_level + 1, 6)
        pause = min(2.0, self._throttle_pause * 2 ** (self._throttle_level - 1)) * self._rng.uniform(0.8, 1.2)
        self._pause_until = max(self._pause_until, time.monotonic() + pause)

    def _on_receipt(self, event: ReceiptReceived, session: Session, out: list[bytes]) -> None:
        status = status_of_state(event.message_state)
        assert status is not None  # a lean session reports only receipts with a known state
        message_id = normalize_message_id(event.message_id, self.bind.receipt_id_format)
        receipt = ReceiptSeen(self.smsc, message_id, status.value, str(event.network_error))
        self._received(receipt, session, session.acknowledge_delivery(event.sequence), out)

    def _received(self, receipt: ReceiptSeen, session: Session, answer: bytes, out: list[bytes]) -> None:
        """A receipt read: answered now without an inbox, else once the inbox has it."""
        self.stats.receipts += 1
        if self.inbox is None:
            self._outbox.receipts((receipt,))
            out.append(answer)
        else:
            self._inbound.add(receipt, session, answer)
            self._inbound_ready.set()

    async def _keep_inbox(self) -> None:
        """Make received receipts durable, then answer them and hand them to the ledger flush (see
        ``ulak.dispatch.inbox``): first what a predecessor of this bind left in the inbox."""
        inbox = self.inbox
        assert inbox is not None
        try:
            left = await self._retrying(inbox.unsettled)
            if left:
                self._log.info("inbox.replayed", receipts=len(left))
            self._outbox.receipts(left)
            while not (self._inbox_done and not self._inbound):
                if not self._inbox_done:
                    await self._inbound_ready.wait()
                self._inbound_ready.clear()
                session = self._session
                receipts, answers = self._inbound.take(session if not self._lost.is_set() else None)
                if receipts:
                    await self._retrying(functools.partial(inbox.append, receipts))
                    self._outbox.receipts(receipts)
                    if session is self._session and not self._lost.is_set():
                        self._write(answers)
        except _Stopped:
            return

    async def _keep_replies(self) -> None:
        """Make received replies durable (``keys.MO_PARTS``), then answer them: the SMSC sends a
        reply once, and forgets it when answered. One whose connection was lost before it was
        written is never answered: the SMSC sends it again."""
        replies = self.replies
        assert replies is not None
        try:
            while not (self._inbox_done and not self._mo_inbound):
                if not self._inbox_done:
                    await self._mo_ready.wait()
                self._mo_ready.clear()
                session = self._session
                parts, answers = self._mo_inbound.take(session if not self._lost.is_set() else None)
                if parts:
                    await self._retrying(functools.partial(replies.append, parts))
                    self.stats.mo_durable += len(parts)
                    if session is self._session and not self._lost.is_set():
                        self._write(answers)
        except _Stopped:
            return

    async def _retrying(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """*call*, again every half second while it fails (Redis away: receipts wait unanswered),
        until the bind stops (:class:`_Stopped`)."""
        while True:
            try:
                return await call()
            except SinkRevoked as exc:
                self._revoked(exc)
                raise _Stopped from None
            except Exception as exc:
                self.stats.inbox_errors += 1
                self._log.error("inbox.write_failed", error=f"{type(exc).__name__}: {exc}")
                if self._inbox_done:
                    raise _Stopped from None
                await asyncio.sleep(0.5)

    def _on_request(self, pdu: object, out: list[bytes]) -> None:
        session = self._session
        assert session is not None
        if isinstance(pdu, DeliverSm):
            receipt = parse_receipt(pdu, full=False)
            answer = session.send(DeliverSmResp(sequence=pdu.sequence))
            if receipt is not None:
                message_id = normalize_message_id(receipt.message_id, self.bind.receipt_id_format)
                seen = ReceiptSeen(self.smsc, message_id, receipt.status.value, receipt.error)
                self._received(seen, session, answer, out)
            else:
                self.stats.mo += 1
                if self.replies is None:
                    out.append(answer)  # a bind without Redis (tests): nowhere to keep it
                else:
                    part = mo_part(pdu, smsc=self.operator.name, received=time.time())
                    self._mo_inbound.add(part, session, answer)
                    self._mo_ready.set()
        elif isinstance(pdu, EnquireLink):
            out.append(session.send(EnquireLinkResp(sequence=pdu.sequence)))
        elif isinstance(pdu, Unbind):
            out.append(session.send(UnbindResp(sequence=pdu.sequence)))
            self._lost.set()

    def _answered(self, item: OutboundPart) -> bool:
        return self._outbox.answered(item)

    def _account_lost(self, outstanding: list[Outstanding]) -> None:
        lost = [o.context for o in outstanding if isinstance(o.context, OutboundPart)]
        if not lost:
            return
        self._last_answer = time.monotonic()  # whatever of them reached the SMSC did so by now
        if self.at_least_once:
            self._stager.front(lost)  # resend, in their original order, first
        else:
            for item in lost:
                self._answered(item)
            self._outbox.extend(PartUnknown(i.job, i.row, i.part, i.parts) for i in lost)
        self._log.warning("submit.in_flight_lost", count=len(lost), resend=self.at_least_once)
