"""SMPP 3.4 PDUs as frozen dataclasses.

Each class names its ``command_id``; ``sequence`` is 0 until a session assigns one. C-octet strings are
``str`` (decoded as Latin-1, so any byte survives a round trip); octet strings are ``bytes``. Optional
TLVs that Ulak uses have their own fields (``None`` = absent); any other TLV is kept verbatim in
``other_tlvs`` so nothing a peer sends is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from ulak.smpp.constants import SMPP_VERSION_34, CommandId, CommandStatus

Tlvs = tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Pdu:
    command_id: ClassVar[CommandId]
    sequence: int = 0

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & 0x80000000)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Response(_Pdu):
    status: int = CommandStatus.ESME_ROK

    @property
    def ok(self) -> bool:
        return self.status == CommandStatus.ESME_ROK


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bind(_Pdu):
    system_id: str = ""
    password: str = field(default="", repr=False)  # never reaches a log line through repr()
    system_type: str = ""
    interface_version: int = SMPP_VERSION_34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitter(_Bind):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSMITTER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiver(_Bind):
    command_id: ClassVar[CommandId] = CommandId.BIND_RECEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiver(_Bind):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER


@dataclass(frozen=True, slots=True, kw_only=True)
class _BindResp(_Response):
    system_id: str = ""
    sc_interface_version: int | None = None
    other_tlvs: Tlvs = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitterResp(_BindResp):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiverResp(_BindResp):
    command_id: ClassVar[CommandId] = CommandId.BIND_RECEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiverResp(_BindResp):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class ShortMessage(_Pdu):
    """The shared body of submit_sm and deliver_sm (SMPP 3.4 sections 4.4.1 and 4.6.1)."""

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    # TLVs
    user_message_reference: int | None = None
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    message_payload: bytes | None = None
    receipted_message_id: str | None = None
    message_state: int | None = None
    network_error_code: bytes | None = None
    other_tlvs: Tlvs = ()

    @property
    def body(self) -> bytes:
        """The user data: ``message_payload`` when present, else ``short_message``."""
        return self.message_payload if self.message_payload is not None else self.short_message


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSm(ShortMessage):
    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodedSubmitSm(_Pdu):
    """A submit_sm encoded ahead of time: its body, without the header (the session adds the header
    and sequence number when it sends it). The job runner plans and encodes; batches of these cross
    Ray to the binds, where a 25-field ``SubmitSm`` would be rebuilt field by field by the unpickler
    (the largest single cost in a bind, BENCHMARKS.md) and encoded again."""

    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM
    body: bytes = b""

    def __reduce__(self) -> tuple[Any, ...]:
        return (encoded_submit_sm, (self.body,))


def encoded_submit_sm(body: bytes) -> EncodedSubmitSm:
    """``EncodedSubmitSm(body=body)``, built without the frozen ``__init__`` (once per part)."""
    return _make_encoded_submit_sm(0, body)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm(ShortMessage):
    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSmResp(_Response):
    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM_RESP
    message_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSmResp(_Response):
    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM_RESP
    message_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLink(_Pdu):
    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLinkResp(_Response):
    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbind(_Pdu):
    command_id: ClassVar[CommandId] = CommandId.UNBIND


@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindResp(_Response):
    command_id: ClassVar[CommandId] = CommandId.UNBIND_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericNack(_Response):
    command_id: ClassVar[CommandId] = CommandId.GENERIC_NACK


Pdu = (
    BindTransmitter
    | BindReceiver
    | BindTransceiver
    | BindTransmitterResp
    | BindReceiverResp
    | BindTransceiverResp
    | SubmitSm
    | EncodedSubmitSm
    | SubmitSmResp
    | DeliverSm
    | DeliverSmResp
    | EnquireLink
    | EnquireLinkResp
    | Unbind
    | UnbindResp
    | GenericNack
)

BIND_REQUESTS: tuple[type[_Bind], ...] = (BindTransmitter, BindReceiver, BindTransceiver)
BindRequest = BindTransmitter | BindReceiver | BindTransceiver
BindResponse = BindTransmitterResp | BindReceiverResp | BindTransceiverResp
Response = (
    BindTransmitterResp
    | BindReceiverResp
    | BindTransceiverResp
    | SubmitSmResp
    | DeliverSmResp
    | EnquireLinkResp
    | UnbindResp
    | GenericNack
)
Request = BindTransmitter | BindReceiver | BindTransceiver | SubmitSm | DeliverSm | EnquireLink | Unbind

_RESPONSE_CLASS: dict[CommandId, type[Response]] = {
    CommandId.BIND_TRANSMITTER: BindTransmitterResp,
    CommandId.BIND_RECEIVER: BindReceiverResp,
    CommandId.BIND_TRANSCEIVER: BindTransceiverResp,
    CommandId.SUBMIT_SM: SubmitSmResp,
    CommandId.DELIVER_SM: DeliverSmResp,
    CommandId.ENQUIRE_LINK: EnquireLinkResp,
    CommandId.UNBIND: UnbindResp,
}


def response_class(command_id: int) -> type[Response]:
    """The response PDU class that answers a request with *command_id* (generic_nack if unknown)."""
    try:
        return _RESPONSE_CLASS[CommandId(command_id)]
    except (ValueError, KeyError):
        return GenericNack


def reply_to(request_command_id: int, sequence: int, status: int) -> Response:
    """Build the response SMPP prescribes for a request we reject with *status*."""
    cls = response_class(request_command_id)
    return cls(sequence=sequence, status=status)


def fast_constructor(cls: type[Any]) -> Any:
    """A positional constructor for the decoder's hot path.

    Frozen keyword-only dataclass construction costs ~6 µs for the 27 fields of a submit_sm, a third of
    our per-message budget. This builds a function that sets each slot through its member descriptor
    (bypassing the frozen ``__setattr__``), taking the fields positionally in declaration order. The
    result is indistinguishable from a normal instance.
    """
    names = [f.name for f in fields(cls)]
    setters = {f"_s{i}": getattr(cls, name).__set__ for i, name in enumerate(names)}
    args = ", ".join(f"a{i}" for i in range(len(names)))
    body = "\n".join(f"    _s{i}(o, a{i})" for i in range(len(names)))
    src = f"def make({args}):\n    o = _new(_cls)\n{body}\n    return o\n"
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, **setters}
    exec(src, namespace)
    return namespace["make"]


_make_encoded_submit_sm = fast_constructor(EncodedSubmitSm)
