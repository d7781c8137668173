"""The SMPP codec: exact bytes, round trips, limits, and malformed input."""

from __future__ import annotations

import struct

import pytest

from ulak.smpp import CommandStatus, PduError
from ulak.smpp.codec import decode, encode
from ulak.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)


def test_submit_sm_exact_bytes() -> None:
    pdu = SubmitSm(
        sequence=7,
        source_addr_ton=5,
        source_addr="ULAK",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="905321234567",
        registered_delivery=1,
        short_message=b"Hi",
    )
    body = (
        b"\x00"  # service_type
        + b"\x05\x00ULAK\x00"
        + b"\x01\x01905321234567\x00"
        + b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        + b"\x00\x00"  # schedule_delivery_time, validity_period
        + b"\x01\x00\x00\x00\x02Hi"
    )
    assert encode(pdu) == struct.pack(">IIII", 16 + len(body), 4, 0, 7) + body


def test_submit_sm_resp_exact_bytes() -> None:
    assert (
        encode(SubmitSmResp(sequence=9, message_id="1a2b"))
        == struct.pack(">IIII", 21, 0x80000004, 0, 9) + b"1a2b\0"
    )


def test_enquire_link_is_header_only() -> None:
    assert encode(EnquireLink(sequence=3)) == struct.pack(">IIII", 16, 0x15, 0, 3)


def test_explicit_sequence_overrides_the_pdu() -> None:
    assert decode(encode(EnquireLink(sequence=3), 99)).sequence == 99


ROUND_TRIP = [
    BindTransmitter(sequence=1, system_id="tcell", password="s3cret", system_type="BULK"),
    BindReceiver(sequence=2, system_id="a", password="b", addr_ton=1, addr_npi=1, address_range="^90"),
    BindTransceiver(sequence=3, system_id="x"),
    BindTransmitterResp(sequence=1, system_id="SMSC", sc_interface_version=0x34),
    BindReceiverResp(sequence=2, status=CommandStatus.ESME_RINVPASWD),
    BindTransceiverResp(sequence=3, system_id="SMSC", other_tlvs=((0x1400, b"vendor"),)),
    SubmitSm(
        sequence=4,
        destination_addr="905321234567",
        esm_class=0x40,
        data_coding=8,
        short_message=b"\x05\x00\x03\x01\x02\x01\x00A",
    ),
    SubmitSm(
        sequence=5,
        message_payload=b"x" * 1000,
        sar_msg_ref_num=258,
        sar_total_segments=3,
        sar_segment_seqnum=2,
    ),
    SubmitSm(sequence=6, user_message_reference=65535, other_tlvs=((0x1501, b""), (0x1502, b"\x01\x02"))),
    SubmitSmResp(sequence=4, message_id="abc"),
    SubmitSmResp(sequence=5, status=CommandStatus.ESME_RTHROTTLED),
    DeliverSm(
        sequence=7,
        esm_class=0x04,
        short_message=b"id:1 stat:DELIVRD",
        receipted_message_id="1",
        message_state=2,
        network_error_code=b"\x03\x00\x00",
    ),
    DeliverSmResp(sequence=7),
    EnquireLink(sequence=8),
    EnquireLinkResp(sequence=8),
    Unbind(sequence=9),
    UnbindResp(sequence=9),
    GenericNack(sequence=10, status=CommandStatus.ESME_RINVCMDID),
]


@pytest.mark.parametrize("pdu", ROUND_TRIP, ids=lambda p: type(p).__name__)
def test_round_trip(pdu: object) -> None:
    assert decode(encode(pdu)) == pdu  # type: ignore[arg-type]


def test_unknown_status_survives_as_int() -> None:
    pdu = decode(struct.pack(">IIII", 17, 0x80000004, 0x0400, 1) + b"\0")
    assert isinstance(pdu, SubmitSmResp)
    assert pdu.status == 0x400


def test_error_resp_without_body() -> None:
    pdu = decode(struct.pack(">IIII", 16, 0x80000004, 0x58, 1))
    assert pdu == SubmitSmResp(sequence=1, status=CommandStatus.ESME_RTHROTTLED)


def test_bind_repr_hides_password() -> None:
    assert "s3cret" not in repr(BindTransmitter(system_id="x", password="s3cret"))


@pytest.mark.parametrize(
    ("pdu", "field"),
    [
        (SubmitSm(destination_addr="9" * 21), "destination_addr"),
        (SubmitSm(source_addr="A" * 21), "source_addr"),
        (SubmitSm(short_message=b"x" * 255), "short_message"),
        (SubmitSm(short_message=b"x", message_payload=b"y"), "exclusive"),
        (BindTransmitter(system_id="x" * 16), "system_id"),
        (BindTransmitter(password="x" * 9), "password"),
        (DeliverSm(network_error_code=b"\x01"), "network_error_code"),
    ],
)
def test_encode_rejects_values_smpp_cannot_carry(pdu: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        encode(pdu)  # type: ignore[arg-type]


def _frame(command_id: int, body: bytes, sequence: int = 5) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, 0, sequence) + body


def _submit_body(**overrides: bytes) -> bytes:
    fields = {
        "service_type": b"\0",
        "src": b"\x05\x00ULAK\0",
        "dst": b"\x01\x01905321234567\0",
        "esm": b"\x00\x00\x00",
        "times": b"\0\0",
        "tail": b"\x01\x00\x00\x00\x02Hi",
        "tlvs": b"",
    }
    fields.update(overrides)
    return b"".join(fields.values())


@pytest.mark.parametrize(
    ("frame", "status"),
    [
        (_frame(0x99, b""), CommandStatus.ESME_RINVCMDID),
        (_frame(4, b"CMT"), CommandStatus.ESME_RINVSERTYP),
        (_frame(4, b"\0\x05\x00ULAK"), CommandStatus.ESME_RINVSRCADR),
        (_frame(4, b"\0\x05\x00ULAK\0\x01\x01905321234567"), CommandStatus.ESME_RINVDSTADR),
        (_frame(4, _submit_body(tail=b"\x01\x00\x00\x00\x09Hi")), CommandStatus.ESME_RINVMSGLEN),
        (_frame(4, _submit_body(tail=b"\x01\x00")), CommandStatus.ESME_RINVCMDLEN),
        (_frame(4, _submit_body(tlvs=b"\x04\x24\x00")), CommandStatus.ESME_RINVOPTPARSTREAM),
        (_frame(4, _submit_body(tlvs=b"\x04\x24\x00\x09abc")), CommandStatus.ESME_RINVOPTPARSTREAM),
        (_frame(4, _submit_body(tlvs=b"\x02\x0c\x00\x01\x05")), CommandStatus.ESME_RINVPARLEN),
        (_frame(4, _submit_body(tlvs=b"\x04\x24\x00\x01x")), CommandStatus.ESME_RINVPARLEN),
        (_frame(0x80000004, b"abc"), CommandStatus.ESME_RINVMSGID),
        (_frame(9, b"sys\0pw"), CommandStatus.ESME_RINVPASWD),
        (_frame(9, b"sys"), CommandStatus.ESME_RINVSYSID),
    ],
)
def test_malformed_pdus_carry_the_prescribed_status(frame: bytes, status: CommandStatus) -> None:
    with pytest.raises(PduError) as info:
        decode(frame)
    assert info.value.status == status
    assert info.value.sequence == 5 or status == CommandStatus.ESME_RINVCMDID


def test_length_mismatch_is_fatal() -> None:
    with pytest.raises(PduError) as info:
        decode(struct.pack(">IIII", 20, 0x15, 0, 1))
    assert info.value.fatal
    assert info.value.status == CommandStatus.ESME_RINVCMDLEN


def test_pdu_error_pickles() -> None:
    import pickle

    err = PduError("bad", CommandStatus.ESME_RINVDSTADR, 4, 9)
    again = pickle.loads(pickle.dumps(err))
    assert (again.status, again.command_id, again.sequence, str(again)) == (err.status, 4, 9, str(err))
