"""The session state machine, client against server in memory, with a fake clock."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from tests.helpers import FakeClock
from ulak.smpp import CommandStatus
from ulak.smpp.codec import encode, preencode
from ulak.smpp.errors import LocalProtocolError, WindowFull
from ulak.smpp.pdu import (
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
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from ulak.smpp.session import (
    AckReceived,
    ConnectionClosed,
    Event,
    ProtocolError,
    ReceiptReceived,
    RequestReceived,
    ResponseReceived,
    Role,
    Session,
    State,
)


def drain(session: Session) -> list[Event]:
    return list(session.events())


def bound_pair(window: int = 3, bind: type = BindTransceiver) -> tuple[Session, Session, FakeClock]:
    clock = FakeClock(1000.0)
    esme = Session(Role.ESME, window=window, clock=clock, response_timeout=10)
    smsc = Session(Role.SMSC, window=window, clock=clock)
    smsc.receive_data(esme.send(bind(system_id="a", password="b")))
    (request,) = drain(smsc)
    assert isinstance(request, RequestReceived)
    resp_cls = BindTransceiverResp if bind is BindTransceiver else BindTransmitterResp
    esme.receive_data(smsc.send(resp_cls(sequence=request.pdu.sequence, system_id="SMSC")))
    (response,) = drain(esme)
    assert isinstance(response, ResponseReceived)
    return esme, smsc, clock


def test_bind_moves_both_sides_to_bound() -> None:
    esme, smsc, _ = bound_pair()
    assert esme.state is State.BOUND_TRX
    assert smsc.state is State.BOUND_TRX


def test_refused_bind_returns_to_open() -> None:
    esme = Session(Role.ESME)
    smsc = Session(Role.SMSC)
    smsc.receive_data(esme.send(BindTransceiver(system_id="a", password="wrong")))
    (req,) = drain(smsc)
    esme.receive_data(
        smsc.send(BindTransceiverResp(sequence=req.pdu.sequence, status=CommandStatus.ESME_RINVPASWD))
    )  # type: ignore[union-attr]
    (resp,) = drain(esme)
    assert isinstance(resp, ResponseReceived)
    assert resp.response.status == CommandStatus.ESME_RINVPASWD
    assert esme.state is State.OPEN
    assert smsc.state is State.OPEN


def test_window_tracks_requests_and_contexts() -> None:
    esme, smsc, _ = bound_pair(window=3)
    data = b"".join(esme.send(SubmitSm(destination_addr=f"9053{i}"), context=("job", i)) for i in range(3))
    assert esme.window_available == 0
    with pytest.raises(WindowFull):
        esme.send(SubmitSm(destination_addr="1"))
    smsc.receive_data(data)
    requests = drain(smsc)
    # answer out of order: the session still pairs each response with its request and context
    out = b"".join(
        smsc.send(SubmitSmResp(sequence=r.pdu.sequence, message_id=f"m{r.pdu.sequence}"))  # type: ignore[union-attr]
        for r in reversed(requests)
    )
    esme.receive_data(out)
    events = drain(esme)
    assert [e.context for e in events] == [("job", 2), ("job", 1), ("job", 0)]  # type: ignore[union-attr]
    assert [e.request.destination_addr for e in events] == ["90532", "90531", "90530"]  # type: ignore[union-attr]
    assert esme.window_available == 3


def test_a_preencoded_submit_goes_out_as_the_same_bytes_and_is_answered() -> None:
    submit = SubmitSm(
        destination_addr="905321234567", data_coding=8, short_message="Çok güzel".encode("utf-16-be")
    )
    encoded = pickle.loads(pickle.dumps(preencode(submit)))  # as it crosses Ray to a bind
    assert encoded == EncodedSubmitSm(body=encoded.body)
    esme, smsc, _ = bound_pair(window=2)
    plain_esme, _, _ = bound_pair(window=2)
    wire = esme.send(encoded, context="row-7")
    assert wire == plain_esme.send(submit)  # same sequence number, same bytes
    smsc.receive_data(wire)
    (request,) = drain(smsc)
    assert request.pdu.destination_addr == "905321234567"  # type: ignore[union-attr]
    esme.receive_data(smsc.send(SubmitSmResp(sequence=request.pdu.sequence, message_id="ab")))  # type: ignore[union-attr]
    (answer,) = drain(esme)
    assert isinstance(answer, ResponseReceived)
    assert (answer.context, answer.response.message_id) == ("row-7", "ab")  # type: ignore[union-attr]
    assert esme.window_available == 2


def test_submit_before_bind_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        Session(Role.ESME).send(SubmitSm())


def test_transmitter_cannot_receive_deliver_sm() -> None:
    esme, smsc, _ = bound_pair(bind=BindTransmitter)
    assert esme.state is State.BOUND_TX
    with pytest.raises(LocalProtocolError):
        smsc.send(DeliverSm())


def test_submit_in_open_state_is_answered_with_invbndsts() -> None:
    smsc = Session(Role.SMSC)
    esme_bytes = bound_pair()[0].send(SubmitSm(destination_addr="1"))
    smsc.receive_data(esme_bytes)
    (event,) = drain(smsc)
    assert isinstance(event, ProtocolError)
    assert event.reply == SubmitSmResp(sequence=2, status=CommandStatus.ESME_RINVBNDSTS)  # bind took 1
    assert not event.fatal


def test_second_bind_gets_alybnd() -> None:
    _, smsc, _ = bound_pair()
    from ulak.smpp.codec import encode

    smsc.receive_data(encode(BindTransceiver(sequence=77, system_id="a")))
    (event,) = drain(smsc)
    assert isinstance(event, ProtocolError)
    assert event.reply == BindTransceiverResp(sequence=77, status=CommandStatus.ESME_RALYBND)


def test_unknown_command_gets_generic_nack() -> None:
    smsc = Session(Role.SMSC)
    smsc.receive_data(b"\x00\x00\x00\x10\x00\x00\x00\x99\x00\x00\x00\x00\x00\x00\x00\x05")
    (event,) = drain(smsc)
    assert isinstance(event, ProtocolError)
    assert event.reply == GenericNack(sequence=5, status=CommandStatus.ESME_RINVCMDID)


def test_corrupt_length_is_fatal_and_closes() -> None:
    smsc = Session(Role.SMSC)
    smsc.receive_data(b"\x00\x00\x00\x03" + b"\x00" * 12)
    (event,) = drain(smsc)
    assert isinstance(event, ProtocolError)
    assert event.fatal
    assert event.reply == GenericNack(sequence=0, status=CommandStatus.ESME_RINVCMDLEN)
    assert smsc.state is State.CLOSED


def test_malformed_response_frees_its_window_slot() -> None:
    esme, _, _ = bound_pair()
    esme.send(SubmitSm(destination_addr="1"), context="row-1")
    esme.receive_data(b"\x00\x00\x00\x13\x80\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x02abc")  # no NUL
    (event,) = drain(esme)
    assert isinstance(event, ProtocolError)
    assert event.outstanding is not None
    assert event.outstanding.context == "row-1"
    assert esme.window_available == 3


def test_response_to_nothing_is_reported() -> None:
    esme, _, _ = bound_pair()
    from ulak.smpp.codec import encode

    esme.receive_data(encode(SubmitSmResp(sequence=999, message_id="x")))
    (event,) = drain(esme)
    assert isinstance(event, ProtocolError)
    assert event.sequence == 999


def test_generic_nack_answers_any_request() -> None:
    esme, _, _ = bound_pair()
    esme.send(SubmitSm(destination_addr="1"), context="c")
    from ulak.smpp.codec import encode

    esme.receive_data(encode(GenericNack(sequence=2, status=CommandStatus.ESME_RSYSERR)))
    (event,) = drain(esme)
    assert isinstance(event, ResponseReceived)
    assert event.context == "c"


def test_byte_by_byte_feeding() -> None:
    esme, smsc, _ = bound_pair()
    data = esme.send(SubmitSm(destination_addr="905321234567", short_message=b"x" * 100))
    for i in range(len(data)):
        smsc.receive_data(data[i : i + 1])
    (event,) = drain(smsc)
    assert isinstance(event, RequestReceived)
    assert event.pdu.short_message == b"x" * 100  # type: ignore[union-attr]


def test_timeouts_use_the_clock() -> None:
    esme, _, clock = bound_pair()
    esme.send(SubmitSm(destination_addr="1"), context="a")
    clock.now += 5
    esme.send(SubmitSm(destination_addr="2"), context="b")
    assert esme.next_deadline() == pytest.approx(clock.now - 5 + 10)
    clock.now += 6
    assert [o.context for o in esme.expire()] == ["a"]
    clock.now += 5
    assert [o.context for o in esme.expire()] == ["b"]
    assert esme.window_available == 3


def test_idle_time_drives_enquire_link() -> None:
    esme, smsc, clock = bound_pair()
    clock.now += 31
    assert esme.idle_for() == pytest.approx(31)
    smsc.receive_data(esme.send(EnquireLink()))
    (req,) = drain(smsc)
    esme.receive_data(smsc.send(EnquireLinkResp(sequence=req.pdu.sequence)))  # type: ignore[union-attr]
    assert esme.idle_for() == 0
    assert isinstance(drain(esme)[0], ResponseReceived)


def test_connection_loss_reports_exactly_what_was_in_flight() -> None:
    esme, smsc, _ = bound_pair(window=5)
    data = b"".join(esme.send(SubmitSm(destination_addr=str(i)), context=i) for i in range(4))
    smsc.receive_data(data)
    reqs = drain(smsc)
    esme.receive_data(b"".join(smsc.send(SubmitSmResp(sequence=r.pdu.sequence)) for r in reqs[:2]))  # type: ignore[union-attr]
    drain(esme)
    esme.receive_data(b"")
    (closed,) = drain(esme)
    assert isinstance(closed, ConnectionClosed)
    assert [o.context for o in closed.in_flight] == [2, 3]
    assert esme.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        esme.send(SubmitSm())


def test_unbind_closes_both_sides() -> None:
    esme, smsc, _ = bound_pair()
    smsc.receive_data(esme.send(Unbind()))
    assert esme.state is State.UNBINDING
    (req,) = drain(smsc)
    assert smsc.state is State.UNBINDING
    esme.receive_data(smsc.send(UnbindResp(sequence=req.pdu.sequence)))  # type: ignore[union-attr]
    assert smsc.state is State.CLOSED
    assert esme.state is State.CLOSED


def test_deliver_sm_flow_for_receipts() -> None:
    esme, smsc, _ = bound_pair()
    esme.receive_data(smsc.send(DeliverSm(esm_class=4, receipted_message_id="ab", message_state=2)))
    (req,) = drain(esme)
    assert isinstance(req, RequestReceived)
    smsc.receive_data(esme.send(DeliverSmResp(sequence=req.pdu.sequence)))
    (resp,) = drain(smsc)
    assert isinstance(resp, ResponseReceived)
    assert smsc.window_available == 3


def test_sequence_numbers_wrap() -> None:
    esme, _, _ = bound_pair(window=5)
    esme._next_sequence = 0x7FFFFFFF
    esme.send(SubmitSm())
    esme.send(SubmitSm())
    assert [o.sequence for o in esme.in_flight] == [0x7FFFFFFF, 1]


def lean_pair() -> tuple[Session, Session]:
    esme, smsc, clock = bound_pair()
    lean = Session(Role.ESME, window=3, clock=clock, lean_receipts=True)
    lean.state = esme.state  # bound the same way; the bind exchange is not what is tested here
    return lean, smsc


def test_a_lean_session_reads_a_tlv_receipt_in_place_and_answers_it_with_the_same_bytes() -> None:
    lean, smsc = lean_pair()
    receipt = DeliverSm(
        esm_class=0x04,
        short_message=b"id:0A1B sub:001 dlvrd:000 stat:UNDELIV err:034 text:x",
        receipted_message_id="0A1B",
        message_state=5,
        network_error_code=b"\x03\x00\x22",
    )
    lean.receive_data(
        smsc.send(receipt)
        + smsc.send(
            DeliverSm(
                esm_class=0x04,
                receipted_message_id="0A1C",
                message_state=2,
                network_error_code=b"\x03\x00\x00",
            )
        )
    )
    first, second = drain(lean)
    assert first == ReceiptReceived(sequence=1, message_id="0A1B", message_state=5, network_error=34)
    assert second == ReceiptReceived(sequence=2, message_id="0A1C", message_state=2, network_error=0)
    assert lean.acknowledge_delivery(1) == smsc_answer(1)
    smsc.receive_data(lean.acknowledge_delivery(1) + lean.acknowledge_delivery(2))
    assert [type(e) for e in drain(smsc)] == [ResponseReceived, ResponseReceived]


def smsc_answer(sequence: int) -> bytes:
    plain, _, _ = bound_pair()
    return plain.send(DeliverSmResp(sequence=sequence))


@pytest.mark.parametrize(
    "pdu",
    [
        DeliverSm(short_message=b"MO: hello"),  # not a receipt
        DeliverSm(esm_class=0x04, short_message=b"id:1 stat:DELIVRD err:000"),  # text only
        DeliverSm(esm_class=0x04, receipted_message_id="1", message_state=2),  # no network error code
        DeliverSm(esm_class=0x04, receipted_message_id="", message_state=2, network_error_code=b"\0\0\0"),
        DeliverSm(esm_class=0x04, receipted_message_id="1", message_state=9, network_error_code=b"\0\0\0"),
        DeliverSm(  # a TLV whose length the full decoder checks
            esm_class=0x04,
            receipted_message_id="1",
            message_state=2,
            network_error_code=b"\0\0\0",
            sar_msg_ref_num=7,
            sar_total_segments=2,
            sar_segment_seqnum=1,
        ),
    ],
)
def test_a_lean_session_leaves_every_other_deliver_sm_to_the_full_decoder(pdu: DeliverSm) -> None:
    lean, smsc = lean_pair()
    lean.receive_data(smsc.send(pdu))
    (event,) = drain(lean)
    assert isinstance(event, RequestReceived)
    assert event.pdu == replace(pdu, sequence=1)


RECEIPT_ID = b"\x00\x1e\x00\x02" + b"1\0"
ERROR_CODE = b"\x04\x23\x00\x03" + b"\x03\x00\x00"


@pytest.mark.parametrize(
    ("tlvs", "why"),
    [
        (RECEIPT_ID + ERROR_CODE + b"\x04\x27\x00\x02\x00\x02", "message_state of 2 octets"),
        (RECEIPT_ID + ERROR_CODE + b"\x04\x27\x00\x01", "a TLV that runs past the end"),
        (RECEIPT_ID + ERROR_CODE + b"\x04\x27\x00", "a truncated TLV header"),
        (b"\x00\x1e\x00\x03" + b"1\0x" + ERROR_CODE + b"\x04\x27\x00\x01\x02", "a NUL inside the id"),
    ],
)
def test_a_malformed_receipt_gets_the_same_answer_from_a_lean_session(tlvs: bytes, why: str) -> None:
    lean, smsc = lean_pair()
    plain, _, _ = bound_pair()
    head = smsc.send(DeliverSm(esm_class=0x04, short_message=b"id:1"))
    frame = (len(head) + len(tlvs)).to_bytes(4, "big") + head[4:] + tlvs
    lean.receive_data(frame)
    plain.receive_data(frame)
    (lean_event,), (plain_event,) = drain(lean), drain(plain)
    assert isinstance(lean_event, ProtocolError), why
    assert lean_event == plain_event


def test_lean_receipts_are_for_the_esme_side() -> None:
    with pytest.raises(ValueError, match="ESME"):
        Session(Role.SMSC, lean_receipts=True)


def lean_ack_pair() -> tuple[Session, Session]:
    """A lean-acks session and a plain one, both bound (the bind exchange is not what is tested)."""
    clock = FakeClock(1000.0)
    lean = Session(Role.ESME, window=3, clock=clock, lean_acks=True)
    plain = Session(Role.ESME, window=3, clock=clock)
    lean.state = plain.state = State.BOUND_TRX
    return lean, plain


def test_a_lean_session_reads_a_plain_submit_sm_resp_in_place() -> None:
    lean, _ = lean_ack_pair()
    lean.send(preencode(SubmitSm(destination_addr="905321234567")), context="row 7")
    assert lean.window_available == 2
    lean.receive_data(encode(SubmitSmResp(sequence=1, message_id="Ab12")))
    (event,) = drain(lean)
    assert isinstance(event, AckReceived)
    assert (event.sequence, event.message_id, event.context) == (1, "Ab12", "row 7")
    assert lean.window_available == 3


def _with_length(frame: bytes) -> bytes:
    return len(frame).to_bytes(4, "big") + frame[4:]


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (encode(SubmitSmResp(sequence=1, status=CommandStatus.ESME_RTHROTTLED)), "an error status"),
        (encode(SubmitSmResp(sequence=1, message_id="")), "an empty message id"),
        (_with_length(encode(SubmitSmResp(sequence=1, message_id="x")) + b"\x14\x27\0\0"), "a TLV after it"),
        (encode(SubmitSmResp(sequence=9, message_id="x")), "no request has its sequence"),
        (encode(SubmitSmResp(sequence=2, message_id="x")), "it answers an enquire_link"),
    ],
)
def test_every_other_response_gets_the_same_event_from_a_lean_session(frame: bytes, why: str) -> None:
    lean, plain = lean_ack_pair()
    for session in (lean, plain):
        session.send(SubmitSm(destination_addr="905321234567"), context="row 7")
        session.send(EnquireLink())
        session.receive_data(frame)
    lean_events, plain_events = drain(lean), drain(plain)
    assert lean_events, why
    assert not any(isinstance(e, AckReceived) for e in lean_events), why
    assert lean_events == plain_events, why


def test_only_an_esme_reads_acks_in_place() -> None:
    with pytest.raises(ValueError, match="lean_acks"):
        Session(Role.SMSC, lean_acks=True)
