"""smpplib is the interoperability oracle: what we encode it reads, and what it encodes we read."""

from __future__ import annotations

from typing import Any

import smpplib.command
import smpplib.smpp
from hypothesis import given
from hypothesis import strategies as st

from ulak.smpp.codec import decode, encode
from ulak.smpp.pdu import BindTransceiver, DeliverSm, EnquireLink, SubmitSm, SubmitSmResp

ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
octet = st.integers(0, 255)
# smpplib writes integer fields of value 0 as a single NUL and reads them back as 0; all ours are 1 octet.
FIELDS = {
    "service_type": st.text(st.characters(min_codepoint=0x41, max_codepoint=0x5A), max_size=5),
    "source_addr_ton": octet,
    "source_addr_npi": octet,
    "source_addr": ascii_text,
    "dest_addr_ton": octet,
    "dest_addr_npi": octet,
    "destination_addr": st.text("0123456789", max_size=20),
    "esm_class": octet,
    "protocol_id": octet,
    "priority_flag": octet,
    "schedule_delivery_time": st.sampled_from(["", "261123120000000+"]),
    "validity_period": st.sampled_from(["", "000001000000000R"]),
    "registered_delivery": octet,
    "replace_if_present_flag": octet,
    "data_coding": octet,
    "sm_default_msg_id": octet,
}
TLVS = {
    "sar_msg_ref_num": st.none() | st.integers(1, 0xFFFF),
    "sar_total_segments": st.none() | st.integers(1, 255),
    "sar_segment_seqnum": st.none() | st.integers(1, 255),
    "user_message_reference": st.none() | st.integers(1, 0xFFFF),
}


class _SequenceSource:
    """smpplib asks its client for sequence numbers while parsing; this stands in for the client."""

    sequence = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


def parse(data: bytes) -> Any:
    return smpplib.smpp.parse_pdu(data, client=_SequenceSource())


def make(command: str, *, sequence: int, **kwargs: Any) -> Any:
    pdu = smpplib.smpp.make_pdu(command, client=_SequenceSource(), **kwargs)
    pdu.sequence = sequence  # smpplib ignores a sequence passed to make_pdu
    return pdu


def _as_str(value: Any) -> Any:
    return value.decode("latin-1") if isinstance(value, bytes) else value


@given(
    st.fixed_dictionaries(FIELDS),
    st.fixed_dictionaries(TLVS),
    st.binary(min_size=1, max_size=254),
    st.integers(1, 0x7FFFFFFF),
)
def test_smpplib_reads_our_submit_sm(
    fields: dict[str, Any], tlvs: dict[str, Any], sm: bytes, seq: int
) -> None:
    ours = SubmitSm(sequence=seq, short_message=sm, **fields, **tlvs)
    theirs = parse(encode(ours))
    assert theirs.command == "submit_sm"
    assert theirs.sequence == seq
    for name, value in fields.items():
        assert (_as_str(getattr(theirs, name)) or type(value)()) == value, name
    for name, value in tlvs.items():
        assert getattr(theirs, name) == value, name
    assert theirs.short_message == sm


@given(
    st.fixed_dictionaries(FIELDS),
    st.fixed_dictionaries(TLVS),
    st.binary(min_size=1, max_size=254),
    st.integers(1, 0x7FFFFFFF),
)
def test_we_read_smpplib_submit_sm(fields: dict[str, Any], tlvs: dict[str, Any], sm: bytes, seq: int) -> None:
    present = {k: v for k, v in tlvs.items() if v is not None}
    theirs = make("submit_sm", sequence=seq, short_message=sm, **fields, **present)
    ours = decode(theirs.generate())
    assert ours == SubmitSm(sequence=seq, short_message=sm, **fields, **tlvs)


@given(
    ascii_text.filter(bool), st.sampled_from(["DELIVRD", "UNDELIV"]), st.integers(1, 8), st.integers(1, 1000)
)
def test_we_read_smpplib_receipts(message_id: str, stat: str, state: int, seq: int) -> None:
    text = (
        f"id:{message_id} sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:{stat} err:000"
    )
    theirs = make(
        "deliver_sm",
        sequence=seq,
        esm_class=4,
        short_message=text.encode(),
        receipted_message_id=message_id,
        message_state=state,
    )
    ours = decode(theirs.generate())
    assert isinstance(ours, DeliverSm)
    assert (ours.receipted_message_id, ours.message_state, ours.short_message) == (
        message_id,
        state,
        text.encode(),
    )


@given(ascii_text.filter(bool), st.integers(1, 0x7FFFFFFF))
def test_smpplib_reads_our_receipt(message_id: str, seq: int) -> None:
    ours = DeliverSm(
        sequence=seq,
        esm_class=4,
        short_message=b"id:x stat:DELIVRD",
        receipted_message_id=message_id,
        message_state=2,
    )
    theirs = parse(encode(ours))
    assert (theirs.receipted_message_id.decode(), theirs.message_state) == (message_id, 2)


@given(
    st.text(st.characters(min_codepoint=0x30, max_codepoint=0x7A), max_size=64), st.integers(1, 0x7FFFFFFF)
)
def test_submit_sm_resp_both_ways(message_id: str, seq: int) -> None:
    theirs = parse(encode(SubmitSmResp(sequence=seq, message_id=message_id)))
    assert (_as_str(theirs.message_id) or "", theirs.sequence) == (message_id, seq)
    back = make("submit_sm_resp", sequence=seq, message_id=message_id or None)
    assert decode(back.generate()) == SubmitSmResp(sequence=seq, message_id=message_id)


@given(
    st.text(st.characters(min_codepoint=0x41, max_codepoint=0x7A), min_size=1, max_size=15),
    st.text(st.characters(min_codepoint=0x41, max_codepoint=0x7A), min_size=1, max_size=8),
    st.integers(1, 0x7FFFFFFF),
)
def test_bind_both_ways(system_id: str, password: str, seq: int) -> None:
    theirs = parse(encode(BindTransceiver(sequence=seq, system_id=system_id, password=password)))
    assert (_as_str(theirs.system_id), _as_str(theirs.password), theirs.interface_version) == (
        system_id,
        password,
        0x34,
    )
    back = make(
        "bind_transceiver",
        sequence=seq,
        system_id=system_id,
        password=password,
        system_type="",
        interface_version=0x34,
        addr_ton=0,
        addr_npi=0,
        address_range="",
    )
    assert decode(back.generate()) == BindTransceiver(sequence=seq, system_id=system_id, password=password)


def test_enquire_link_both_ways() -> None:
    assert parse(encode(EnquireLink(sequence=42))).command == "enquire_link"
    assert decode(make("enquire_link", sequence=42).generate()) == EnquireLink(sequence=42)


def test_smpplib_command_module_is_the_oracle() -> None:
    # Guard against a silently swapped oracle: these are smpplib's own classes.
    assert smpplib.command.SubmitSM.__module__ == "smpplib.command"
