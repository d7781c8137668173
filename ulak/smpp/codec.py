"""Encode PDUs to bytes and decode bytes to PDUs.

``encode(pdu)`` returns the complete PDU (header included). ``decode(frame)`` takes one complete PDU as
framed by its ``command_length`` and never raises anything but :class:`PduError`, whose ``status`` is
the ``command_status`` SMPP prescribes for the reply.

This module is on the hot path (tens of thousands of PDUs per second per core), so it uses precompiled
``struct`` formats and slicing rather than a generic field-by-field interpreter.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ulak.smpp.constants import HEADER_SIZE, CommandId, CommandStatus, Tag
from ulak.smpp.errors import PduError
from ulak.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    DeliverSmResp,
    EncodedSubmitSm,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    ShortMessage,
    SubmitSm,
    SubmitSmResp,
    Tlvs,
    Unbind,
    UnbindResp,
    _Bind,
    _BindResp,
    fast_constructor,
)

# Plain-int copies of the enums: an IntEnum attribute lookup costs ~140 ns, a global ~20 ns.
_C_BIND_RECEIVER = int(CommandId.BIND_RECEIVER)
_C_BIND_RECEIVER_RESP = int(CommandId.BIND_RECEIVER_RESP)
_C_BIND_TRANSCEIVER = int(CommandId.BIND_TRANSCEIVER)
_C_BIND_TRANSCEIVER_RESP = int(CommandId.BIND_TRANSCEIVER_RESP)
_C_BIND_TRANSMITTER = int(CommandId.BIND_TRANSMITTER)
_C_BIND_TRANSMITTER_RESP = int(CommandId.BIND_TRANSMITTER_RESP)
_C_DELIVER_SM = int(CommandId.DELIVER_SM)
_C_DELIVER_SM_RESP = int(CommandId.DELIVER_SM_RESP)
_C_ENQUIRE_LINK = int(CommandId.ENQUIRE_LINK)
_C_ENQUIRE_LINK_RESP = int(CommandId.ENQUIRE_LINK_RESP)
_C_GENERIC_NACK = int(CommandId.GENERIC_NACK)
_C_SUBMIT_SM = int(CommandId.SUBMIT_SM)
_C_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_C_UNBIND = int(CommandId.UNBIND)
_C_UNBIND_RESP = int(CommandId.UNBIND_RESP)
_S_INVCMDID = int(CommandStatus.ESME_RINVCMDID)
_S_INVCMDLEN = int(CommandStatus.ESME_RINVCMDLEN)
_S_INVDSTADR = int(CommandStatus.ESME_RINVDSTADR)
_S_INVEXPIRY = int(CommandStatus.ESME_RINVEXPIRY)
_S_INVMSGID = int(CommandStatus.ESME_RINVMSGID)
_S_INVMSGLEN = int(CommandStatus.ESME_RINVMSGLEN)
_S_INVOPTPARAMVAL = int(CommandStatus.ESME_RINVOPTPARAMVAL)
_S_INVOPTPARSTREAM = int(CommandStatus.ESME_RINVOPTPARSTREAM)
_S_INVPARLEN = int(CommandStatus.ESME_RINVPARLEN)
_S_INVPASWD = int(CommandStatus.ESME_RINVPASWD)
_S_INVSCHED = int(CommandStatus.ESME_RINVSCHED)
_S_INVSERTYP = int(CommandStatus.ESME_RINVSERTYP)
_S_INVSRCADR = int(CommandStatus.ESME_RINVSRCADR)
_S_INVSYSID = int(CommandStatus.ESME_RINVSYSID)
_S_INVSYSTYP = int(CommandStatus.ESME_RINVSYSTYP)
_S_OK = int(CommandStatus.ESME_ROK)
_S_SYSERR = int(CommandStatus.ESME_RSYSERR)
_T_MESSAGE_PAYLOAD = int(Tag.MESSAGE_PAYLOAD)
_T_MESSAGE_STATE = int(Tag.MESSAGE_STATE)
_T_NETWORK_ERROR_CODE = int(Tag.NETWORK_ERROR_CODE)
_T_RECEIPTED_MESSAGE_ID = int(Tag.RECEIPTED_MESSAGE_ID)
_T_SAR_MSG_REF_NUM = int(Tag.SAR_MSG_REF_NUM)
_T_SAR_SEGMENT_SEQNUM = int(Tag.SAR_SEGMENT_SEQNUM)
_T_SAR_TOTAL_SEGMENTS = int(Tag.SAR_TOTAL_SEGMENTS)
_T_SC_INTERFACE_VERSION = int(Tag.SC_INTERFACE_VERSION)
_T_USER_MESSAGE_REFERENCE = int(Tag.USER_MESSAGE_REFERENCE)

_STATUS = {int(member): member for member in CommandStatus}
_HEADER = struct.Struct(">IIII")
_B = struct.Struct(">B")
_BB = struct.Struct(">BB")
_BBB = struct.Struct(">BBB")
_TL = struct.Struct(">HH")
_TLV_U8 = struct.Struct(">HHB")
_TLV_U16 = struct.Struct(">HHH")
_U16 = struct.Struct(">H")

# Maximum C-octet string sizes (including the NUL) from SMPP 3.4 section 4; enforced on encode only,
# decoding stays lenient so a sloppy peer's PDU is still understood.
_MAX_ADDR = 21
_MAX_MESSAGE_ID = 65
_MAX_SHORT_MESSAGE = 254
_MAX_PAYLOAD = 0xFFFF


def _cstr(value: str, field: str, limit: int) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) >= limit:
        raise ValueError(f"{field} is {len(raw)} octets; SMPP allows at most {limit - 1}")
    return raw + b"\0"


# ---------------------------------------------------------------------------------------------- encode


def _encode_bind(pdu: _Bind) -> bytes:
    return b"".join(
        (
            _cstr(pdu.system_id, "system_id", 16),
            _cstr(pdu.password, "password", 9),
            _cstr(pdu.system_type, "system_type", 13),
            _BBB.pack(pdu.interface_version, pdu.addr_ton, pdu.addr_npi),
            _cstr(pdu.address_range, "address_range", 41),
        )
    )


def _encode_other(tlvs: Tlvs) -> bytes:
    return b"".join(_TL.pack(tag, len(value)) + value for tag, value in tlvs)


def _encode_bind_resp(pdu: _BindResp) -> bytes:
    body = _cstr(pdu.system_id, "system_id", 16)
    if pdu.sc_interface_version is not None:
        body += _TLV_U8.pack(_T_SC_INTERFACE_VERSION, 1, pdu.sc_interface_version)
    return body + _encode_other(pdu.other_tlvs)


def _encode_short_message(pdu: ShortMessage) -> bytes:
    sm = pdu.short_message
    service_type = pdu.service_type.encode("latin-1")
    source = pdu.source_addr.encode("latin-1")
    dest = pdu.destination_addr.encode("latin-1")
    schedule = pdu.schedule_delivery_time.encode("latin-1")
    validity = pdu.validity_period.encode("latin-1")
    if (
        len(source) >= _MAX_ADDR
        or len(dest) >= _MAX_ADDR
        or len(service_type) >= 6
        or len(schedule) >= 17
        or len(validity) >= 17
        or len(sm) > _MAX_SHORT_MESSAGE
    ):
        _check_short_message_limits(pdu)
    body = b"%b\0%c%c%b\0%c%c%b\0%c%c%c%b\0%b\0%c%c%c%c%c%b" % (
        service_type,
        pdu.source_addr_ton,
        pdu.source_addr_npi,
        source,
        pdu.dest_addr_ton,
        pdu.dest_addr_npi,
        dest,
        pdu.esm_class,
        pdu.protocol_id,
        pdu.priority_flag,
        schedule,
        validity,
        pdu.registered_delivery,
        pdu.replace_if_present_flag,
        pdu.data_coding,
        pdu.sm_default_msg_id,
        len(sm),
        sm,
    )
    if (
        pdu.sar_msg_ref_num is None
        and pdu.message_payload is None
        and pdu.receipted_message_id is None
        and pdu.user_message_reference is None
        and pdu.message_state is None
        and pdu.network_error_code is None
        and pdu.sar_total_segments is None
        and pdu.sar_segment_seqnum is None
        and not pdu.other_tlvs
    ):
        return body
    return body + _encode_tlvs(pdu)


def _check_short_message_limits(pdu: ShortMessage) -> None:
    _cstr(pdu.service_type, "service_type", 6)
    _cstr(pdu.source_addr, "source_addr", _MAX_ADDR)
    _cstr(pdu.destination_addr, "destination_addr", _MAX_ADDR)
    _cstr(pdu.schedule_delivery_time, "schedule_delivery_time", 17)
    _cstr(pdu.validity_period, "validity_period", 17)
    raise ValueError(
        f"short_message is {len(pdu.short_message)} octets; SMPP allows {_MAX_SHORT_MESSAGE} "
        "(use message_payload)"
    )


def _encode_tlvs(pdu: ShortMessage) -> bytes:
    if pdu.short_message and pdu.message_payload is not None:
        raise ValueError("short_message and message_payload are exclusive: set only one")
    parts = []
    if pdu.user_message_reference is not None:
        parts.append(_TLV_U16.pack(_T_USER_MESSAGE_REFERENCE, 2, pdu.user_message_reference))
    if pdu.sar_msg_ref_num is not None:
        parts.append(_TLV_U16.pack(_T_SAR_MSG_REF_NUM, 2, pdu.sar_msg_ref_num))
    if pdu.sar_total_segments is not None:
        parts.append(_TLV_U8.pack(_T_SAR_TOTAL_SEGMENTS, 1, pdu.sar_total_segments))
    if pdu.sar_segment_seqnum is not None:
        parts.append(_TLV_U8.pack(_T_SAR_SEGMENT_SEQNUM, 1, pdu.sar_segment_seqnum))
    if pdu.message_payload is not None:
        if len(pdu.message_payload) > _MAX_PAYLOAD:
            raise ValueError(f"message_payload is {len(pdu.message_payload)} octets; at most 65535 fit")
        parts.append(_TL.pack(_T_MESSAGE_PAYLOAD, len(pdu.message_payload)) + pdu.message_payload)
    if pdu.receipted_message_id is not None:
        rid = _cstr(pdu.receipted_message_id, "receipted_message_id", _MAX_MESSAGE_ID)
        parts.append(_TL.pack(_T_RECEIPTED_MESSAGE_ID, len(rid)) + rid)
    if pdu.message_state is not None:
        parts.append(_TLV_U8.pack(_T_MESSAGE_STATE, 1, pdu.message_state))
    if pdu.network_error_code is not None:
        if len(pdu.network_error_code) != 3:
            raise ValueError("network_error_code is 3 octets: network type and a 2-octet error code")
        parts.append(_TL.pack(_T_NETWORK_ERROR_CODE, 3) + pdu.network_error_code)
    if pdu.other_tlvs:
        parts.append(_encode_other(pdu.other_tlvs))
    return b"".join(parts)


def _encode_message_id(pdu: SubmitSmResp | DeliverSmResp) -> bytes:
    if pdu.status != _S_OK and not pdu.message_id:
        # SMPP 3.4 section 4.4.2: the body of an error submit_sm_resp may be omitted; we send the NUL
        # anyway because some ESMEs (smpplib among them) expect it.
        return b"\0"
    return _cstr(pdu.message_id, "message_id", _MAX_MESSAGE_ID)


def _empty(_pdu: Any) -> bytes:
    return b""


_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    BindTransmitter: _encode_bind,
    BindReceiver: _encode_bind,
    BindTransceiver: _encode_bind,
    BindTransmitterResp: _encode_bind_resp,
    BindReceiverResp: _encode_bind_resp,
    BindTransceiverResp: _encode_bind_resp,
    SubmitSm: _encode_short_message,
    EncodedSubmitSm: lambda pdu: pdu.body,
    DeliverSm: _encode_short_message,
    SubmitSmResp: _encode_message_id,
    DeliverSmResp: _encode_message_id,
    EnquireLink: _empty,
    EnquireLinkResp: _empty,
    Unbind: _empty,
    UnbindResp: _empty,
    GenericNack: _empty,
}


def split_at_destination(pdu: SubmitSm) -> tuple[bytes, bytes]:
    """*pdu*'s body cut around its destination_addr: ``head + destination + b"\\0" + tail`` is the
    body of the same submit_sm to another destination (a campaign repeats its messages: the runner
    encodes each once and then changes only the number). The caller keeps to what the encoder would
    accept for a destination: fewer than 21 latin-1 octets, no NUL."""
    body = _encode_short_message(replace(pdu, destination_addr=""))
    ends = short_message_ends(body, start=0)
    assert ends is not None  # our own encoding
    start = ends[1] + 3  # past source_addr's NUL and the destination's TON/NPI
    return body[:start], body[start + 1 :]


def destination_of(pdu: SubmitSm | EncodedSubmitSm) -> str:
    """The destination_addr of a submit_sm, read in place from an encoded body (a bind checks the
    numbers it holds against refusals without decoding its queue)."""
    if isinstance(pdu, SubmitSm):
        return pdu.destination_addr
    body = pdu.body
    p = body.find(b"\0")  # service_type
    q = body.find(b"\0", p + 3)  # source_addr (after its TON and NPI)
    r = body.find(b"\0", q + 3)  # destination_addr (after its TON and NPI)
    return body[q + 3 : r].decode("latin-1")


def preencode(pdu: SubmitSm) -> EncodedSubmitSm:
    """*pdu*'s body encoded now, to be sent later (see :class:`EncodedSubmitSm`)."""
    return EncodedSubmitSm(body=_encode_short_message(pdu))


def encode(pdu: Pdu, sequence: int | None = None) -> bytes:
    """Encode *pdu* with its own sequence number, or with *sequence* when given.

    Raises ``ValueError`` naming the field when a value does not fit SMPP's limits.
    """
    body = _ENCODERS[type(pdu)](pdu)
    status = getattr(pdu, "status", 0)
    seq = pdu.sequence if sequence is None else sequence
    return _HEADER.pack(HEADER_SIZE + len(body), pdu.command_id, status, seq) + body


# ---------------------------------------------------------------------------------------------- decode


class _LazyFail:
    """Builds the PduError for a hot-path decoder without the cost of a full reader."""

    __slots__ = ("command_id", "sequence")

    def __init__(self, command_id: int, sequence: int) -> None:
        self.command_id = command_id
        self.sequence = sequence

    def fail(self, message: str, status: int) -> PduError:
        return PduError(message, status, self.command_id, self.sequence)


class _Reader(_LazyFail):
    """A cursor over one PDU body that raises PduError with the status SMPP prescribes."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, command_id: int, sequence: int, pos: int = HEADER_SIZE) -> None:
        super().__init__(command_id, sequence)
        self.buf = buf
        self.pos = pos
        self.end = len(buf)

    def cstr(self, field: str, status: int) -> str:
        nul = self.buf.find(b"\0", self.pos, self.end)
        if nul < 0:
            raise self.fail(f"{field}: C-octet string without terminating NUL", status)
        value = self.buf[self.pos : nul].decode("latin-1")
        self.pos = nul + 1
        return value

    def octets(self, n: int, field: str, status: int) -> bytes:
        stop = self.pos + n
        if stop > self.end:
            raise self.fail(f"{field}: needs {n} octets, {self.end - self.pos} left", status)
        value = self.buf[self.pos : stop]
        self.pos = stop
        return value

    def tlvs(self) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        buf, pos, end = self.buf, self.pos, self.end
        while pos < end:
            if pos + 4 > end:
                raise self.fail("truncated TLV header", _S_INVOPTPARSTREAM)
            tag, length = _TL.unpack_from(buf, pos)
            pos += 4
            if pos + length > end:
                raise self.fail(
                    f"TLV 0x{tag:04X} claims {length} octets, {end - pos} left",
                    _S_INVOPTPARSTREAM,
                )
            out.append((tag, buf[pos : pos + length]))
            pos += length
        self.pos = pos
        return out


def _int_tlv(r: _LazyFail, tag: int, value: bytes, size: int) -> int:
    if len(value) != size:
        raise r.fail(f"TLV 0x{tag:04X} has length {len(value)}, SMPP says {size}", _S_INVPARLEN)
    return int.from_bytes(value, "big")


def _cstr_tlv(r: _LazyFail, tag: int, value: bytes) -> str:
    # Strictly a C-octet string; peers that omit the NUL are common enough to tolerate.
    if value.endswith(b"\0"):
        value = value[:-1]
    if b"\0" in value:
        raise r.fail(f"TLV 0x{tag:04X}: NUL inside a C-octet string", _S_INVOPTPARAMVAL)
    return value.decode("latin-1")


def _decode_bind(cls: type[_Bind], r: _Reader) -> Pdu:
    system_id = r.cstr("system_id", _S_INVSYSID)
    password = r.cstr("password", _S_INVPASWD)
    system_type = r.cstr("system_type", _S_INVSYSTYP)
    version, ton, npi = _BBB.unpack(r.octets(3, "interface_version/addr_ton/addr_npi", _S_INVCMDLEN))
    address_range = r.cstr("address_range", _S_INVPARLEN)
    if r.pos != r.end:
        raise r.fail("unexpected octets after address_range", _S_INVCMDLEN)
    return cls(  # type: ignore[return-value]
        sequence=r.sequence,
        system_id=system_id,
        password=password,
        system_type=system_type,
        interface_version=version,
        addr_ton=ton,
        addr_npi=npi,
        address_range=address_range,
    )


def _decode_bind_resp(cls: type[_BindResp], r: _Reader, status: int) -> Pdu:
    # An error bind_resp may carry no body at all (SMPP 3.4 section 4.1.2).
    system_id = r.cstr("system_id", _S_INVSYSID) if r.pos < r.end else ""
    version: int | None = None
    other: list[tuple[int, bytes]] = []
    for tag, value in r.tlvs():
        if tag == _T_SC_INTERFACE_VERSION:
            version = _int_tlv(r, tag, value, 1)
        else:
            other.append((tag, value))
    return cls(  # type: ignore[return-value]
        sequence=r.sequence,
        status=status,
        system_id=system_id,
        sc_interface_version=version,
        other_tlvs=tuple(other),
    )


def _decode_short_message(make: Any, buf: bytes, command_id: int, sequence: int) -> Pdu:
    # Inlined field by field: this runs once per message on both sides of every bind. Indexing past the
    # end raises IndexError, which decode() turns into ESME_RINVCMDLEN (the body is shorter than its
    # fixed fields), so only the C-strings and short_message need explicit checks.
    r = _LazyFail(command_id, sequence)
    end = len(buf)
    find = buf.find
    nul = find(b"\0", HEADER_SIZE)
    if nul < 0:
        raise r.fail("service_type: C-octet string without NUL", _S_INVSERTYP)
    service_type = buf[HEADER_SIZE:nul].decode("latin-1")
    src_ton = buf[nul + 1]
    src_npi = buf[nul + 2]
    pos = nul + 3
    nul = find(b"\0", pos)
    if nul < 0:
        raise r.fail("source_addr: C-octet string without NUL", _S_INVSRCADR)
    source_addr = buf[pos:nul].decode("latin-1")
    dst_ton = buf[nul + 1]
    dst_npi = buf[nul + 2]
    pos = nul + 3
    nul = find(b"\0", pos)
    if nul < 0:
        raise r.fail("destination_addr: C-octet string without NUL", _S_INVDSTADR)
    destination_addr = buf[pos:nul].decode("latin-1")
    esm_class = buf[nul + 1]
    protocol_id = buf[nul + 2]
    priority_flag = buf[nul + 3]
    pos = nul + 4
    nul = find(b"\0", pos)
    if nul < 0:
        raise r.fail("schedule_delivery_time: C-octet string without NUL", _S_INVSCHED)
    schedule = buf[pos:nul].decode("latin-1")
    pos = nul + 1
    nul = find(b"\0", pos)
    if nul < 0:
        raise r.fail("validity_period: C-octet string without NUL", _S_INVEXPIRY)
    validity = buf[pos:nul].decode("latin-1")
    pos = nul + 1
    registered = buf[pos]
    replace = buf[pos + 1]
    data_coding = buf[pos + 2]
    default_msg_id = buf[pos + 3]
    sm_length = buf[pos + 4]
    pos += 5
    if pos + sm_length > end:
        raise r.fail(f"sm_length {sm_length} overruns the PDU by {pos + sm_length - end}", _S_INVMSGLEN)
    short_message = buf[pos : pos + sm_length]
    pos += sm_length
    umr = sar_ref = sar_total = sar_seq = state = None
    payload = network_error = None
    receipted: str | None = None
    other: Tlvs = ()
    if pos < end:
        reader = _Reader(buf, command_id, sequence, pos)
        extra: list[tuple[int, bytes]] = []
        for tag, value in reader.tlvs():
            if tag == _T_MESSAGE_PAYLOAD:
                payload = value
            elif tag == _T_RECEIPTED_MESSAGE_ID:
                receipted = _cstr_tlv(r, tag, value)
            elif tag == _T_MESSAGE_STATE:
                state = _int_tlv(r, tag, value, 1)
            elif tag == _T_NETWORK_ERROR_CODE:
                if len(value) != 3:
                    raise r.fail("network_error_code TLV must be 3 octets", _S_INVPARLEN)
                network_error = value
            elif tag == _T_SAR_MSG_REF_NUM:
                sar_ref = _int_tlv(r, tag, value, 2)
            elif tag == _T_SAR_TOTAL_SEGMENTS:
                sar_total = _int_tlv(r, tag, value, 1)
            elif tag == _T_SAR_SEGMENT_SEQNUM:
                sar_seq = _int_tlv(r, tag, value, 1)
            elif tag == _T_USER_MESSAGE_REFERENCE:
                umr = _int_tlv(r, tag, value, 2)
            else:
                extra.append((tag, value))
        other = tuple(extra)
        if short_message and payload is not None:
            raise r.fail("short_message and message_payload both present", _S_INVPARLEN)
    return make(  # type: ignore[no-any-return]
        sequence,
        service_type,
        src_ton,
        src_npi,
        source_addr,
        dst_ton,
        dst_npi,
        destination_addr,
        esm_class,
        protocol_id,
        priority_flag,
        schedule,
        validity,
        registered,
        replace,
        data_coding,
        default_msg_id,
        short_message,
        umr,
        sar_ref,
        sar_total,
        sar_seq,
        payload,
        receipted,
        state,
        network_error,
        other,
    )


def _decode_message_id_resp(frame: bytes, command_id: int, sequence: int, status: int) -> Pdu:
    make = _MAKE_SUBMIT_SM_RESP if command_id == _C_SUBMIT_SM_RESP else _MAKE_DELIVER_SM_RESP
    if len(frame) == HEADER_SIZE:
        return make(sequence, status, "")  # type: ignore[no-any-return]  # error resps may omit the body
    nul = frame.find(b"\0", HEADER_SIZE)
    if nul < 0:
        raise PduError("message_id: C-octet string without NUL", _S_INVMSGID, command_id, sequence)
    if nul + 1 < len(frame):
        # Trailing TLVs (SMPP 5.0 peers add some) are checked for framing, then ignored.
        _Reader(frame, command_id, sequence, nul + 1).tlvs()
    return make(sequence, status, frame[HEADER_SIZE:nul].decode("latin-1"))  # type: ignore[no-any-return]


def short_message_ends(frame: bytes, *, start: int = HEADER_SIZE) -> tuple[int, int, int, int] | None:
    """Where a submit_sm or deliver_sm frame's C-strings end, read in place: the offsets of the NULs
    ending service_type, source_addr, destination_addr and validity_period (esm_class follows the
    destination's NUL; the validity's is followed by four octets and sm_length). None when one does
    not end inside the frame. For the hot paths that read a few fields without decoding the PDU;
    *start* = 0 for a body without its header."""
    find = frame.find
    n = len(frame)
    p = find(b"\0", start)  # service_type
    if p < 0 or p + 3 > n:
        return None
    q = find(b"\0", p + 3)  # source_addr
    if q < 0 or q + 4 > n:
        return None
    r = find(b"\0", q + 3)  # destination_addr
    if r < 0 or r + 4 > n:
        return None
    t = find(b"\0", r + 4)  # schedule_delivery_time
    if t < 0:
        return None
    u = find(b"\0", t + 1)  # validity_period
    if u < 0 or u + 6 > n:
        return None
    return p, q, r, u


def peek_receipt(frame: bytes) -> tuple[int, str, int, int] | None:
    """A delivery receipt's facts read in place: ``(sequence, receipted_message_id, message_state,
    network error)``, or None when *frame* is not a deliver_sm receipt carrying all three TLVs in
    well-formed order (then :func:`decode` reads it, and reports whatever is wrong with it).

    A bind receives one of these per message; building the 27-field ``DeliverSm`` for it cost ~12 µs,
    a fifth of a bind's CPU (BENCHMARKS.md, "Second session of 2026-11-28"). Only what the ledger
    needs is read here; the rest of the PDU is still checked for framing: every C-string ends inside
    the PDU, ``sm_length`` and each TLV's length land exactly on the PDU's end, and the three TLVs
    have their SMPP lengths.
    """
    n = len(frame)
    if n < HEADER_SIZE or int.from_bytes(frame[4:8], "big") != _C_DELIVER_SM:
        return None
    ends = short_message_ends(frame)
    if ends is None or not frame[ends[2] + 1] & 0x04:  # esm_class: not a receipt
        return None
    u = ends[3]
    pos = u + 6 + frame[u + 5]  # past short_message
    message_id: str | None = None
    state = error = -1
    while pos < n:
        if pos + 4 > n:
            return None
        tag = (frame[pos] << 8) | frame[pos + 1]
        length = (frame[pos + 2] << 8) | frame[pos + 3]
        pos += 4
        stop = pos + length
        if stop > n:
            return None
        if tag == _T_RECEIPTED_MESSAGE_ID:
            value = frame[pos:stop]
            if value.endswith(b"\0"):
                value = value[:-1]
            if not value or b"\0" in value:
                return None
            message_id = value.decode("latin-1")
        elif tag == _T_MESSAGE_STATE:
            if length != 1:
                return None
            state = frame[pos]
        elif tag == _T_NETWORK_ERROR_CODE:
            if length != 3:
                return None
            error = (frame[pos + 1] << 8) | frame[pos + 2]
        elif tag in _PEEK_FULL_DECODE:
            return None  # message_payload, or a TLV whose length the decoder checks
        pos = stop
    if pos != n or message_id is None or state < 0 or error < 0:
        return None
    return int.from_bytes(frame[12:16], "big"), message_id, state, error


def decode(frame: bytes) -> Pdu:
    """Decode one complete PDU; raise :class:`PduError` (and nothing else) on malformed input."""
    n = len(frame)
    if n < HEADER_SIZE:
        raise PduError(f"PDU of {n} octets is shorter than the header", _S_INVCMDLEN, fatal=True)
    length, command_id, status, sequence = _HEADER.unpack_from(frame)
    if length != n:
        raise PduError(
            f"command_length {length} does not match the {n} octets framed",
            _S_INVCMDLEN,
            command_id,
            sequence,
            fatal=True,
        )
    try:
        # The three PDUs of the hot path first, without allocating a reader.
        if command_id in (_C_SUBMIT_SM_RESP, _C_DELIVER_SM_RESP):
            return _decode_message_id_resp(frame, command_id, sequence, _STATUS.get(status, status))
        if command_id == _C_DELIVER_SM:
            return _decode_short_message(_MAKE_DELIVER_SM, frame, command_id, sequence)
        if command_id == _C_SUBMIT_SM:
            return _decode_short_message(_MAKE_SUBMIT_SM, frame, command_id, sequence)
        return _decode_body(_Reader(frame, command_id, sequence), command_id, status)
    except PduError:
        raise
    except IndexError as exc:
        raise PduError("body ends inside a fixed-size field", _S_INVCMDLEN, command_id, sequence) from exc
    except (struct.error, ValueError) as exc:  # defensive: no malformed input escapes raw
        raise PduError(f"malformed body: {exc}", _S_SYSERR, command_id, sequence) from exc


def _decode_body(r: _Reader, command_id: int, status: int) -> Pdu:
    header_only = _HEADER_ONLY.get(command_id)
    if header_only is not None:
        # Any body is ignored: some SMSCs pad enquire_link with a NUL; the header is what matters.
        if header_only in (EnquireLink, Unbind):
            return header_only(sequence=r.sequence)
        return header_only(sequence=r.sequence, status=_STATUS.get(status, status))  # type: ignore[call-arg]
    bind = _BINDS.get(command_id)
    if bind is not None:
        return _decode_bind(bind, r)
    bind_resp = _BIND_RESPS.get(command_id)
    if bind_resp is not None:
        return _decode_bind_resp(bind_resp, r, _STATUS.get(status, status))
    raise r.fail(f"unknown or unsupported command_id 0x{command_id:08X}", _S_INVCMDID)


# TLVs peek_receipt leaves to the full decoder: it checks their lengths and that message_payload does
# not come with a short_message.
_PEEK_FULL_DECODE = frozenset(
    (
        _T_MESSAGE_PAYLOAD,
        _T_SAR_MSG_REF_NUM,
        _T_SAR_TOTAL_SEGMENTS,
        _T_SAR_SEGMENT_SEQNUM,
        _T_USER_MESSAGE_REFERENCE,
    )
)
_MAKE_SUBMIT_SM = fast_constructor(SubmitSm)
_MAKE_DELIVER_SM = fast_constructor(DeliverSm)
_MAKE_SUBMIT_SM_RESP = fast_constructor(SubmitSmResp)
_MAKE_DELIVER_SM_RESP = fast_constructor(DeliverSmResp)

_HEADER_ONLY: dict[int, type[Pdu]] = {
    _C_ENQUIRE_LINK: EnquireLink,
    _C_ENQUIRE_LINK_RESP: EnquireLinkResp,
    _C_UNBIND: Unbind,
    _C_UNBIND_RESP: UnbindResp,
    _C_GENERIC_NACK: GenericNack,
}
_BINDS: dict[int, type[_Bind]] = {
    _C_BIND_TRANSMITTER: BindTransmitter,
    _C_BIND_RECEIVER: BindReceiver,
    _C_BIND_TRANSCEIVER: BindTransceiver,
}
_BIND_RESPS: dict[int, type[_BindResp]] = {
    _C_BIND_TRANSMITTER_RESP: BindTransmitterResp,
    _C_BIND_RECEIVER_RESP: BindReceiverResp,
    _C_BIND_TRANSCEIVER_RESP: BindTransceiverResp,
}
