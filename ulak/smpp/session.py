"""The SMPP session state machine, sans-IO (in the manner of h11).

Feed it bytes with :meth:`Session.receive_data`, take events with :meth:`Session.next_event` (or all
at once with :meth:`Session.events`), and turn PDUs into bytes with :meth:`Session.send`. It keeps:

* the bind state (open → binding → bound → unbinding → closed) for either side of the bind;
* sequence numbers for the requests it sends;
* the *window*: requests sent and not yet answered. :class:`ResponseReceived` names the request a
  response answers (and the caller's ``context`` for it), and :meth:`Session.close` hands back what was
  still in flight when the connection went away, so the caller knows exactly which messages have an
  unknown fate.

It never raises on bad input from the peer: malformed or out-of-state PDUs become
:class:`ProtocolError` events carrying the reply SMPP prescribes. It raises
:class:`LocalProtocolError` when *our* code asks for something SMPP forbids.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ulak.smpp.codec import decode, encode, peek_receipt
from ulak.smpp.constants import HEADER_SIZE, MAX_PDU_SIZE, CommandId, CommandStatus, MessageState
from ulak.smpp.errors import LocalProtocolError, PduError, WindowFull
from ulak.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    EncodedSubmitSm,
    GenericNack,
    Pdu,
    Response,
    SubmitSm,
    Unbind,
    UnbindResp,
    fast_constructor,
    reply_to,
)


class Role(Enum):
    ESME = "esme"  # the client: Ulak's connection actors
    SMSC = "smsc"  # the server: our simulator


class State(Enum):
    OPEN = "open"
    BINDING = "binding"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"
    CLOSED = "closed"

    @property
    def is_bound(self) -> bool:
        return self in _BOUND


class SessionEvent(Enum):
    BIND = "bind"  # a bind request sent (ESME) or received (SMSC)
    BOUND = "bound"  # the bind accepted: bound as its kind asked (tx, rx or trx)
    BIND_REFUSED = "bind_refused"  # the bind answered with an error: open, to try again
    UNBIND = "unbind"  # an unbind sent or received
    UNBOUND = "unbound"  # the unbind answered
    CLOSE = "close"  # the connection is gone, or a framing error ended it


_BOUND = (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX)
# event: (the states it may happen in, the states it may lead to; the first is the default). The
# checks before each move answer the peer (a rejection, a LocalProtocolError); a move the table does
# not allow after them is a bug of this module (``SessionBug``).
MOVES: dict[SessionEvent, tuple[tuple[State, ...], tuple[State, ...]]] = {
    SessionEvent.BIND: ((State.OPEN,), (State.BINDING,)),
    SessionEvent.BOUND: ((State.BINDING,), _BOUND),
    SessionEvent.BIND_REFUSED: ((State.BINDING,), (State.OPEN,)),
    SessionEvent.UNBIND: (_BOUND, (State.UNBINDING,)),
    SessionEvent.UNBOUND: ((State.UNBINDING,), (State.CLOSED,)),
    SessionEvent.CLOSE: (tuple(State), (State.CLOSED,)),
}


class SessionBug(AssertionError):
    """A move the transition table does not allow: a bug in this module, never the peer's doing."""


def next_state(state: State, event: SessionEvent, *, to: State | None = None) -> State:
    """Where *event* takes a session in *state* (to *to*, where it may lead to several)."""
    sources, targets = MOVES[event]
    if state not in sources or (to is not None and to not in targets):
        raise SessionBug(f"{event.value} in state {state.value}" + (f" to {to.value}" if to else ""))
    return to or targets[0]


_BOUND_STATE = {
    CommandId.BIND_TRANSMITTER: State.BOUND_TX,
    CommandId.BIND_RECEIVER: State.BOUND_RX,
    CommandId.BIND_TRANSCEIVER: State.BOUND_TRX,
}
_CAN_SUBMIT = (State.BOUND_TX, State.BOUND_TRX)
_CAN_DELIVER = (State.BOUND_RX, State.BOUND_TRX)
_BINDS = (BindTransmitter, BindReceiver, BindTransceiver)
_HOT_RESPONSE: dict[type, int] = {
    SubmitSm: int(CommandId.SUBMIT_SM_RESP),
    EncodedSubmitSm: int(CommandId.SUBMIT_SM_RESP),
    DeliverSm: int(CommandId.DELIVER_SM_RESP),
}
_BIND_RESPS = (BindTransmitterResp, BindReceiverResp, BindTransceiverResp)


@dataclass(slots=True)
class Outstanding:
    """A request we sent that has no response yet."""

    sequence: int
    pdu: Pdu
    context: Any
    sent_at: float


# ------------------------------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """The peer sent a request; the application must answer it (``session.send(response)``)."""

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The peer answered ``request`` (which we sent with ``context``) with ``response``."""

    response: Response
    request: Pdu
    context: Any
    sent_at: float


@dataclass(frozen=True, slots=True)
class ReceiptReceived:
    """The peer sent a delivery receipt (a deliver_sm with ``esm_class`` bit 0x04) carrying the
    ``receipted_message_id``, ``message_state`` and ``network_error_code`` TLVs: what a
    ``lean_receipts`` session reports instead of ``RequestReceived(DeliverSm)``. Answer it with
    :meth:`Session.acknowledge_delivery`. ``network_error`` is the error code without its type octet.
    """

    sequence: int
    message_id: str
    message_state: int
    network_error: int


@dataclass(frozen=True, slots=True)
class AckReceived:
    """The peer accepted a submit_sm we sent with ``context``: a ``submit_sm_resp`` with status
    ESME_ROK, a non-empty ``message_id`` and nothing after it. What a ``lean_acks`` session reports
    instead of ``ResponseReceived`` (without building the ``SubmitSmResp``); every other response
    still comes as ``ResponseReceived``."""

    sequence: int
    message_id: str
    context: Any
    sent_at: float


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer sent something invalid. Send ``reply`` if it is set; close the connection if ``fatal``.

    ``outstanding`` is our request that a malformed response was meant to answer, if it could be told.
    """

    status: int
    detail: str
    command_id: int = 0
    sequence: int = 0
    reply: Pdu | None = None
    fatal: bool = False
    outstanding: Outstanding | None = None


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the connection. ``in_flight`` lists requests whose fate is now unknown."""

    in_flight: tuple[Outstanding, ...] = field(default=())


Event = RequestReceived | ResponseReceived | AckReceived | ReceiptReceived | ProtocolError | ConnectionClosed

# Positional constructors for the events made once per message (a frozen dataclass's own __init__
# sets each field through object.__setattr__, ~0.4 µs a field).
_make_request = fast_constructor(RequestReceived)
_make_response = fast_constructor(ResponseReceived)
_make_receipt = fast_constructor(ReceiptReceived)
_make_ack = fast_constructor(AckReceived)
_SUBMIT_SM_RESP_OK = int(CommandId.SUBMIT_SM_RESP).to_bytes(4, "big") + bytes(4)  # command id, status 0
_SUBMITS = (SubmitSm, EncodedSubmitSm)
_RECEIPT_STATES = frozenset(int(s) for s in MessageState)
_DELIVER_SM_HEAD = int(CommandId.DELIVER_SM).to_bytes(4, "big")
_DELIVER_SM_RESP_HEAD = (
    (HEADER_SIZE + 1).to_bytes(4, "big") + int(CommandId.DELIVER_SM_RESP).to_bytes(4, "big") + bytes(4)
)


# ----------------------------------------------------------------------------------------------- session


class Session:
    """One side of one SMPP connection.

    ``lean_receipts`` (ESME only): delivery receipts that carry their facts in TLVs are read in place
    and reported as :class:`ReceiptReceived`, without building a ``DeliverSm`` (the dispatch hot path);
    any other deliver_sm still comes as ``RequestReceived``.

    ``lean_acks`` (ESME only): a plain successful ``submit_sm_resp`` is read in place and reported as
    :class:`AckReceived`; any other response still comes as ``ResponseReceived``. Decoding it into
    a ``SubmitSmResp`` and a ``ResponseReceived`` was ~5 % of a bind's CPU (BENCHMARKS.md, "Fourth
    session of 2026-11-28").
    """

    def __init__(
        self,
        role: Role,
        *,
        window: int = 10,
        response_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        lean_receipts: bool = False,
        lean_acks: bool = False,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        if lean_receipts and role is not Role.ESME:
            raise ValueError("lean_receipts is for the ESME side: only an SMSC sends receipts")
        if lean_acks and role is not Role.ESME:
            raise ValueError("lean_acks is for the ESME side: only an ESME sends submit_sm")
        self.lean_receipts = lean_receipts
        self.lean_acks = lean_acks
        self.role = role
        self.window = window
        self.response_timeout = response_timeout
        self.state = State.OPEN
        self._clock = clock
        self._buffer = bytearray()
        self._events: deque[Event] = deque()
        self._outstanding: dict[int, Outstanding] = {}
        self._next_sequence = 1
        self._pending_bind: int | None = None  # command_id of the bind in progress
        now = clock()
        self.last_received_at = now
        self.last_sent_at = now

    # ------------------------------------------------------------------------------------------ window

    @property
    def in_flight(self) -> list[Outstanding]:
        """Requests sent and not yet answered, oldest first."""
        return list(self._outstanding.values())

    def oldest_sent_at(self) -> float | None:
        """When the oldest unanswered request was sent (None: nothing is in flight)."""
        for item in self._outstanding.values():
            return item.sent_at
        return None

    @property
    def window_available(self) -> int:
        return self.window - len(self._outstanding)

    def next_deadline(self) -> float | None:
        """When the oldest outstanding request times out (for the I/O layer's timer)."""
        for item in self._outstanding.values():
            return item.sent_at + self.response_timeout
        return None

    def expire(self) -> list[Outstanding]:
        """Remove and return requests that have waited longer than ``response_timeout``."""
        cutoff = self._clock() - self.response_timeout
        expired = [o for o in self._outstanding.values() if o.sent_at <= cutoff]
        for o in expired:
            del self._outstanding[o.sequence]
        return expired

    def idle_for(self) -> float:
        """Seconds since the peer last sent us anything (drives enquire_link)."""
        return self._clock() - self.last_received_at

    # ------------------------------------------------------------------------------------------ output

    def send(self, pdu: Pdu, *, context: Any = None) -> bytes:
        """Return the bytes for *pdu*, assigning a sequence number to requests.

        Requests take a window slot until answered; ``context`` comes back with the response.
        """
        state = self.state
        if state is State.CLOSED:
            raise LocalProtocolError("the session is closed; open a new connection")
        now = self._clock()
        self.last_sent_at = now
        cls = type(pdu)
        if cls is EncodedSubmitSm or cls is SubmitSm or cls is DeliverSm:  # the hot path, first
            if state not in (_CAN_DELIVER if cls is DeliverSm else _CAN_SUBMIT):
                raise LocalProtocolError(f"cannot send {cls.__name__} in state {state.value}")
        elif pdu.command_id & 0x80000000:
            self._before_send_response(pdu)  # type: ignore[arg-type]
            return encode(pdu)
        else:
            self._before_send_request(pdu)
        outstanding = self._outstanding
        if len(outstanding) >= self.window:
            raise WindowFull(f"window of {self.window} requests is full; wait for responses")
        seq = self._next_sequence
        self._next_sequence = 1 if seq >= 0x7FFFFFFF else seq + 1
        outstanding[seq] = Outstanding(seq, pdu, context, now)
        return encode(pdu, seq)

    def acknowledge_delivery(self, sequence: int) -> bytes:
        """The bytes of ``deliver_sm_resp`` (ESME_ROK, empty message id) answering the deliver_sm
        numbered *sequence*: what ``send(DeliverSmResp(sequence=sequence))`` returns, without
        building the PDU (once per message on a bind)."""
        if self.state is State.CLOSED:
            raise LocalProtocolError("the session is closed; open a new connection")
        self.last_sent_at = self._clock()
        return _DELIVER_SM_RESP_HEAD + sequence.to_bytes(4, "big") + b"\0"

    def _before_send_request(self, pdu: Pdu) -> None:
        state = self.state
        if isinstance(pdu, _BINDS):
            if self.role is not Role.ESME or state is not State.OPEN:
                raise LocalProtocolError(f"cannot send a bind in state {state.value} as {self.role.value}")
            self._move(SessionEvent.BIND)
            self._pending_bind = pdu.command_id
        elif isinstance(pdu, Unbind):
            if not state.is_bound:
                raise LocalProtocolError(f"cannot unbind in state {state.value}")
            self._move(SessionEvent.UNBIND)

    def _before_send_response(self, pdu: Response) -> None:
        if isinstance(pdu, _BIND_RESPS):
            if self.role is not Role.SMSC or self.state is not State.BINDING:
                raise LocalProtocolError(f"no bind to answer in state {self.state.value}")
            if pdu.status == CommandStatus.ESME_ROK and self._pending_bind is not None:
                self._move(SessionEvent.BOUND, to=_BOUND_STATE[CommandId(self._pending_bind)])
            else:
                self._move(SessionEvent.BIND_REFUSED)
            self._pending_bind = None
        elif isinstance(pdu, UnbindResp) and self.state is State.UNBINDING:
            self._move(SessionEvent.UNBOUND)

    # ------------------------------------------------------------------------------------------- input

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the connection; ``b""`` means the peer closed it."""
        if not data:
            if self.state is not State.CLOSED:
                self._events.append(ConnectionClosed(tuple(self.close())))
            return
        if self.state is State.CLOSED:
            return
        self.last_received_at = self._clock()
        buf = self._buffer
        buf += data
        pos = 0
        end = len(buf)
        events = self._events
        while True:
            if end - pos < 4:
                break
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length < HEADER_SIZE or length > MAX_PDU_SIZE:
                exc = PduError(
                    f"command_length {length} is outside {HEADER_SIZE}..{MAX_PDU_SIZE}",
                    CommandStatus.ESME_RINVCMDLEN,
                    fatal=True,
                )
                events.append(
                    ProtocolError(
                        exc.status,
                        exc.message,
                        reply=GenericNack(sequence=0, status=exc.status),
                        fatal=True,
                    )
                )
                self._move(SessionEvent.CLOSE)
                buf.clear()
                return
            if pos + length > end:
                break
            frame = bytes(buf[pos : pos + length])
            pos += length
            if self.lean_acks and frame[4:12] == _SUBMIT_SM_RESP_OK:
                ack = self._lean_ack(frame)
                if ack is not None:
                    events.append(ack)
                    continue
            if self.lean_receipts and frame[4:8] == _DELIVER_SM_HEAD and self.state in _CAN_DELIVER:
                peeked = peek_receipt(frame)
                if peeked is not None and peeked[2] in _RECEIPT_STATES:
                    events.append(_make_receipt(*peeked))
                    continue
            try:
                pdu = decode(frame)
            except PduError as exc:
                events.append(self._decode_failed(exc))
                continue
            self._dispatch(pdu)
        if pos:
            del buf[:pos]

    def _lean_ack(self, frame: bytes) -> AckReceived | None:
        """*frame* (a submit_sm_resp with status 0) as an :class:`AckReceived`, when it is the plain
        answer to a submit_sm of ours: a non-empty message id whose NUL ends the PDU."""
        end = len(frame) - 1
        if end <= HEADER_SIZE or frame.find(b"\0", HEADER_SIZE) != end:
            return None
        sequence = int.from_bytes(frame[12:16], "big")
        outstanding = self._outstanding.get(sequence)
        if outstanding is None or type(outstanding.pdu) not in _SUBMITS:
            return None
        del self._outstanding[sequence]
        message_id = frame[HEADER_SIZE:end].decode("latin-1")
        return _make_ack(sequence, message_id, outstanding.context, outstanding.sent_at)  # type: ignore[no-any-return]

    def _decode_failed(self, exc: PduError) -> ProtocolError:
        outstanding = None
        reply: Pdu | None = None
        if exc.command_id & 0x80000000:
            # A response we cannot read still answers (and frees) the request with its sequence.
            outstanding = self._outstanding.pop(exc.sequence, None)
        elif exc.status == CommandStatus.ESME_RINVCMDID:
            reply = GenericNack(sequence=exc.sequence, status=exc.status)
        else:
            reply = reply_to(exc.command_id, exc.sequence, exc.status)
        return ProtocolError(
            exc.status,
            exc.message,
            command_id=exc.command_id,
            sequence=exc.sequence,
            reply=reply,
            fatal=exc.fatal,
            outstanding=outstanding,
        )

    def _dispatch(self, pdu: Pdu) -> None:
        if pdu.command_id & 0x80000000:
            self._on_response(pdu)  # type: ignore[arg-type]
            return
        state = self.state
        cls = type(pdu)
        if (cls is SubmitSm and state in _CAN_SUBMIT and self.role is Role.SMSC) or (
            cls is DeliverSm and state in _CAN_DELIVER and self.role is Role.ESME
        ):
            self._events.append(_make_request(pdu))  # the hot path
            return
        rejection: int | None = None
        if isinstance(pdu, SubmitSm):
            if self.role is not Role.SMSC or state not in _CAN_SUBMIT:
                rejection = CommandStatus.ESME_RINVBNDSTS
        elif isinstance(pdu, DeliverSm):
            if self.role is not Role.ESME or state not in _CAN_DELIVER:
                rejection = CommandStatus.ESME_RINVBNDSTS
        elif isinstance(pdu, _BINDS):
            if self.role is not Role.SMSC:
                rejection = CommandStatus.ESME_RINVCMDID
            elif state is not State.OPEN:
                rejection = CommandStatus.ESME_RALYBND
            else:
                self._move(SessionEvent.BIND)
                self._pending_bind = pdu.command_id
        elif isinstance(pdu, Unbind):
            if not state.is_bound:
                rejection = CommandStatus.ESME_RINVBNDSTS
            else:
                self._move(SessionEvent.UNBIND)
        if rejection is not None:
            self._events.append(
                ProtocolError(
                    rejection,
                    f"{type(pdu).__name__} not allowed in state {state.value} as {self.role.value}",
                    command_id=pdu.command_id,
                    sequence=pdu.sequence,
                    reply=reply_to(pdu.command_id, pdu.sequence, rejection),
                )
            )
            return
        self._events.append(RequestReceived(pdu))

    def _on_response(self, pdu: Response) -> None:
        outstanding = self._outstanding.pop(pdu.sequence, None)
        if outstanding is not None and pdu.command_id == _HOT_RESPONSE.get(type(outstanding.pdu)):
            # the hot path: a submit_sm_resp answering a submit_sm, a deliver_sm_resp a deliver_sm
            self._events.append(
                _make_response(pdu, outstanding.pdu, outstanding.context, outstanding.sent_at)
            )
            return
        if outstanding is None:
            self._events.append(
                ProtocolError(
                    CommandStatus.ESME_RINVCMDID,
                    f"{type(pdu).__name__} with sequence {pdu.sequence} answers no request of ours",
                    command_id=pdu.command_id,
                    sequence=pdu.sequence,
                )
            )
            return
        expected = outstanding.pdu.command_id | 0x80000000
        if pdu.command_id != expected and not isinstance(pdu, GenericNack):
            self._events.append(
                ProtocolError(
                    CommandStatus.ESME_RINVCMDID,
                    f"{type(pdu).__name__} answers a {type(outstanding.pdu).__name__}",
                    command_id=pdu.command_id,
                    sequence=pdu.sequence,
                    outstanding=outstanding,
                )
            )
            return
        request = outstanding.pdu
        if isinstance(request, _BINDS):
            if pdu.status == CommandStatus.ESME_ROK and not isinstance(pdu, GenericNack):
                self._move(SessionEvent.BOUND, to=_BOUND_STATE[CommandId(request.command_id)])
            else:
                self._move(SessionEvent.BIND_REFUSED)
            self._pending_bind = None
        elif isinstance(request, Unbind):
            self._move(SessionEvent.UNBOUND)
        self._events.append(ResponseReceived(pdu, request, outstanding.context, outstanding.sent_at))

    # ------------------------------------------------------------------------------------------ events

    def _move(self, event: SessionEvent, *, to: State | None = None) -> None:
        self.state = next_state(self.state, event, to=to)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def events(self) -> Iterator[Event]:
        """Drain all pending events."""
        events = self._events
        while events:
            yield events.popleft()

    def close(self) -> list[Outstanding]:
        """Mark the connection gone; return (and forget) every request still in flight."""
        self._move(SessionEvent.CLOSE)
        in_flight = list(self._outstanding.values())
        self._outstanding.clear()
        self._buffer.clear()
        return in_flight


__all__ = [
    "AckReceived",
    "ConnectionClosed",
    "Event",
    "Outstanding",
    "ProtocolError",
    "ReceiptReceived",
    "RequestReceived",
    "ResponseReceived",
    "Role",
    "Session",
    "State",
]
