"""The connection of one bind and its SMPP session: connect, bind, keep alive (enquire_link, dead-peer
detection), reconnect with backoff, unbind. :class:`BindLink` owns the socket, the session and the
bind's state (``ulak.dispatch.bindstate``); what the session reads goes to the bind's handlers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from ulak.dispatch.bindstate import BindEvent, BindState, next_state
from ulak.settings import BindConfig
from ulak.smpp.constants import CommandStatus, status_name
from ulak.smpp.errors import LocalProtocolError
from ulak.smpp.pdu import BindReceiver, BindTransceiver, BindTransmitter, EnquireLink, Unbind
from ulak.smpp.session import Outstanding, Role, Session, State

_BIND_PDU: dict[str, type[BindTransceiver | BindTransmitter | BindReceiver]] = {
    "transceiver": BindTransceiver,
    "transmitter": BindTransmitter,
    "receiver": BindReceiver,
}
BIND_REQUESTS = tuple(_BIND_PDU.values())
# Opens a connection for a protocol factory, as ``loop.create_connection`` does (host and port bound).
Connector = Callable[[Callable[[], asyncio.Protocol]], Awaitable[tuple[Any, Any]]]
# Bind refusals that say the credentials are wrong (SMPP 3.4 §5.1.3): not transient.
_REFUSED_FOR_GOOD = (CommandStatus.ESME_RINVPASWD, CommandStatus.ESME_RINVSYSID)
REFUSED_RETRY = 60.0


class BindRefused(Exception):
    """The SMSC refused the bind's credentials: fix ``system_id`` or the password, then it binds."""


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


@dataclass(frozen=True)
class Handlers:
    """What the link hands on: bytes read (``on_data``), a bound session to send on until it is lost
    (``send``), the send loop's failure (``crashed``), and requests lost in flight with a connection
    (``lost_in_flight``)."""

    on_data: Callable[[Session, bytes], None]
    send: Callable[[Session], Awaitable[None]]
    crashed: Callable[[], None]
    lost_in_flight: Callable[[list[Outstanding]], None]


class _Wire(asyncio.Protocol):
    """One TCP connection; it carries its own session so a late callback never touches the next one."""

    def __init__(self, on_data: Callable[[Session, bytes], None], session: Session) -> None:
        self.on_data = on_data
        self.session = session
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports (Ray runs async actors on uvloop when it is installed) do not
        # subclass asyncio.Transport, so no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.on_data(self.session, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_data(self.session, b"")


class BindLink:
    """One bind's connection (see the module docstring)."""

    def __init__(
        self,
        bind: BindConfig,
        handlers: Handlers,
        stats: Any,
        log: Any,
        *,
        rng: random.Random,
        backoff: Backoff | None = None,
        connect: Connector | None = None,
        claim: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.bind = bind
        self.smsc = bind.smsc
        self.state = BindState.CONNECTING
        self.stats = stats
        self.session: Session | None = None
        self.wire: _Wire | None = None
        self.lost = asyncio.Event()  # set once the connection is lost
        self.wakeup = asyncio.Event()  # set when the send loop should look again
        self.stopping = False  # stopping, or revoked: not one more part, answers still come in
        self.bound = asyncio.Event()
        self._refused: str | None = None  # why the SMSC refused the credentials, at the last bind
        self._backoff = backoff or Backoff(cap=bind.reconnect_delay_max, rng=rng)
        self._down_since: float | None = None  # monotonic: when the bind last stopped being bound
        self._connector, self._claim, self._handlers, self._log = connect, claim, handlers, log

    @property
    def down_for(self) -> float:
        """How long the bind has not been bound (0: it is), measured here: no clock is compared."""
        return 0.0 if self._down_since is None else round(time.monotonic() - self._down_since, 1)

    async def unbind(self) -> None:
        session, wire = self.session, self.wire
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

    async def run(self) -> None:
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
                await self._handlers.send(session)
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
                self._handlers.crashed()  # whatever it was, not spent again (it expires at the limiter)
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
        self.bound.clear()
        self._refused = None
        session = Session(
            Role.ESME,
            window=self.bind.window,
            response_timeout=self.bind.response_timeout,
            lean_receipts=True,
            lean_acks=True,
        )
        self.session = session

        def factory() -> _Wire:
            return _Wire(self._handlers.on_data, session)

        opening = (
            self._connector(factory)
            if self._connector is not None
            else loop.create_connection(factory, self.bind.host, self.bind.port)
        )
        _, wire = await asyncio.wait_for(opening, 10)
        self.wire = wire  # referenced for the connection's lifetime
        self.stats.connects += 1
        pdu = _BIND_PDU[self.bind.bind_type](
            system_id=self.bind.system_id,
            password=self.bind.password.get_secret_value(),
            system_type=self.bind.system_type,
        )
        if self.lost.is_set():  # the SMSC closed it as soon as it opened (restarting, or full)
            raise ConnectionError("the SMSC closed the connection before the bind was sent")
        self.write(session.send(pdu))
        bound = asyncio.ensure_future(self.bound.wait())
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
        wire = self.wire
        if wire is not None and wire.transport is not None:
            wire.transport.abort()
        if self.session is not None and self.session.state is not State.CLOSED:
            self._handlers.lost_in_flight(self.session.close())
        self.wire = None

    def write(self, data: bytes) -> None:
        if self.wire is not None and self.wire.transport is not None:
            self.wire.transport.write(data)

    def check_liveness(self, session: Session, now: float, interval: float) -> None:
        expired = session.expire()
        if expired:
            # No response in time: the SMSC may or may not have the message. Treat as lost in flight.
            self._log.warning("submit.timeout", count=len(expired))
            self._handlers.lost_in_flight(expired)
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

    def bind_answered(self, status: int) -> None:
        """The SMSC answered the bind with *status*: bound, or refused (for good when the
        credentials are wrong: ``refused``, retried every ``REFUSED_RETRY`` seconds)."""
        if status == CommandStatus.ESME_ROK:
            self.bound.set()
        else:
            self.stats.binds_refused += 1
            self.stats.last_error = f"bind refused: {status_name(status)}"
            if status in _REFUSED_FOR_GOOD:
                self._refused = (
                    f"the SMSC refused system_id {self.bind.system_id!r} with "
                    f"{status_name(status)}: check the bind's system_id and the password in "
                    f"${self.bind.password_env}; retrying every {REFUSED_RETRY:g} s"
                )
                if self.state is not BindState.REFUSED:  # once, not every minute
                    self._log.error("bind.refused", error=self._refused)
            else:
                self._log.error("bind.refused", status=self.stats.last_error)
            self.lost.set()
