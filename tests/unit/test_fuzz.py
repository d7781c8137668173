"""Malformed input never escapes the decoder or the session as anything but a PduError / event."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from ulak.smpp import PduError
from ulak.smpp.codec import decode, encode
from ulak.smpp.pdu import BindTransceiver, DeliverSm, SubmitSm, SubmitSmResp
from ulak.smpp.session import ProtocolError, Role, Session

COMMAND_IDS = [
    0x1,
    0x2,
    0x4,
    0x5,
    0x6,
    0x9,
    0x15,
    0x80000000,
    0x80000001,
    0x80000004,
    0x80000005,
    0x80000009,
    0x80000015,
    0x80000006,
    0x21,
    0x103,
    0x7FFFFFFF,
]

VALID = [
    encode(SubmitSm(sequence=1, destination_addr="905321234567", short_message=b"hello", sar_msg_ref_num=1)),
    encode(
        DeliverSm(sequence=2, esm_class=4, receipted_message_id="ab", message_state=2, short_message=b"id:ab")
    ),
    encode(SubmitSmResp(sequence=3, message_id="abc")),
    encode(BindTransceiver(sequence=4, system_id="sys", password="pw")),
]


@settings(max_examples=4000)
@given(st.sampled_from(COMMAND_IDS), st.binary(max_size=300), st.integers(0, 0xFFFFFFFF))
def test_decode_random_bodies(command_id: int, body: bytes, sequence: int) -> None:
    frame = struct.pack(">IIII", 16 + len(body), command_id, 0, sequence) + body
    try:
        decode(frame)
    except PduError as exc:
        assert exc.status != 0


@settings(max_examples=4000)
@given(st.sampled_from(VALID), st.data())
def test_decode_mutated_valid_pdus(valid: bytes, data: st.DataObject) -> None:
    frame = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(16, max(16, len(frame) - 1)))
        if op == "flip" and pos < len(frame):
            frame[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del frame[pos:]
        else:
            frame[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    frame[0:4] = struct.pack(">I", len(frame))
    try:
        decode(bytes(frame))
    except PduError as exc:
        assert exc.status != 0


@settings(max_examples=2500)
@given(st.binary(max_size=600), st.sampled_from([Role.ESME, Role.SMSC]), st.integers(1, 64))
def test_session_survives_any_byte_stream(stream: bytes, role: Role, chunk: int) -> None:
    session = Session(role, window=5)
    for i in range(0, len(stream), chunk):
        session.receive_data(stream[i : i + chunk])
    events = list(session.events())
    for event in events:
        if isinstance(event, ProtocolError) and event.reply is not None:
            encode(event.reply)  # every prescribed reply is itself encodable


@settings(max_examples=1000)
@given(st.lists(st.sampled_from(VALID), max_size=8), st.integers(1, 40))
def test_session_reassembles_any_chunking(frames: list[bytes], chunk: int) -> None:
    session = Session(Role.SMSC, window=5)
    stream = b"".join(frames)
    for i in range(0, len(stream), chunk):
        session.receive_data(stream[i : i + chunk])
    assert len(list(session.events())) == len(frames)
