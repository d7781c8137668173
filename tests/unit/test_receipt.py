"""Delivery-receipt parsing and message-id normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ulak.smpp.codec import decode, encode, peek_receipt
from ulak.smpp.pdu import DeliverSm
from ulak.smpp.receipt import (
    MessageIdFormat,
    ReceiptStatus,
    format_receipt_text,
    normalize_message_id,
    parse_receipt,
    parse_receipt_text,
)

TEXT = (
    "id:0A1B2C sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:DELIVRD err:000 "
    "text:Merhaba"
)


def test_text_receipt() -> None:
    receipt = parse_receipt(DeliverSm(esm_class=0x04, short_message=TEXT.encode()))
    assert receipt is not None
    assert receipt.message_id == "0A1B2C"
    assert receipt.status is ReceiptStatus.DELIVRD
    assert (receipt.error, receipt.submit_date, receipt.done_date) == ("000", "2611231200", "2611231201")
    assert receipt.text == "Merhaba"


def test_tlvs_win_over_text() -> None:
    pdu = DeliverSm(
        esm_class=0x04,
        short_message=TEXT.encode(),
        receipted_message_id="ff",
        message_state=5,
        network_error_code=b"\x03\x00\x22",
    )
    receipt = parse_receipt(pdu)
    assert receipt is not None
    assert (receipt.message_id, receipt.status, receipt.error) == ("ff", ReceiptStatus.UNDELIV, "34")


def test_tlv_only_receipt() -> None:
    receipt = parse_receipt(DeliverSm(esm_class=0x04, receipted_message_id="77", message_state=3))
    assert receipt is not None
    assert (receipt.message_id, receipt.status) == ("77", ReceiptStatus.EXPIRED)


def test_receipt_in_message_payload() -> None:
    receipt = parse_receipt(DeliverSm(esm_class=0x04, message_payload=TEXT.encode()))
    assert receipt is not None
    assert receipt.message_id == "0A1B2C"


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("id:1 stat:UNDELIV err:001", ReceiptStatus.UNDELIV),
        ("ID:1 STAT:rejectd ERR:1", ReceiptStatus.REJECTD),
        ("id:1 stat:DELIVERED", ReceiptStatus.DELIVRD),
        ("id:1 stat:WHATEVER", ReceiptStatus.UNKNOWN),
        ("id:1", ReceiptStatus.UNKNOWN),
    ],
)
def test_text_variants(text: str, status: ReceiptStatus) -> None:
    receipt = parse_receipt(DeliverSm(esm_class=0x04, short_message=text.encode()))
    assert receipt is not None
    assert receipt.status is status


def test_not_a_receipt() -> None:
    assert parse_receipt(DeliverSm(esm_class=0, short_message=TEXT.encode())) is None


def test_receipt_without_id_is_none() -> None:
    assert parse_receipt(DeliverSm(esm_class=4, short_message=b"stat:DELIVRD")) is None


def test_text_field_keeps_colons() -> None:
    assert parse_receipt_text("id:1 stat:DELIVRD text:a id:b stat:c")["text"] == "a id:b stat:c"


@pytest.mark.parametrize(
    ("resp", "resp_fmt", "dlr", "dlr_fmt"),
    [
        ("1A2B", MessageIdFormat.HEX, "6699", MessageIdFormat.DEC),
        ("1a2b", MessageIdFormat.HEX, "1A2B", MessageIdFormat.HEX),
        ("abc-DEF", MessageIdFormat.TEXT, "ABC-def", MessageIdFormat.TEXT),
        ("000123", MessageIdFormat.AUTO, "123", MessageIdFormat.AUTO),
        ("6699", MessageIdFormat.DEC, "00001A2B", MessageIdFormat.HEX),
    ],
)
def test_ids_normalise_to_the_same_key(
    resp: str, resp_fmt: MessageIdFormat, dlr: str, dlr_fmt: MessageIdFormat
) -> None:
    assert normalize_message_id(resp, resp_fmt) == normalize_message_id(dlr, dlr_fmt)


def test_distinct_ids_stay_distinct() -> None:
    assert normalize_message_id("10", MessageIdFormat.HEX) != normalize_message_id("10", MessageIdFormat.DEC)


def test_format_and_parse_agree() -> None:
    text = format_receipt_text(
        message_id="ab",
        status=ReceiptStatus.EXPIRED,
        error="001",
        submit_date="2611231200",
        done_date="2611231300",
        text="x" * 30,
    )
    fields = parse_receipt_text(text)
    assert (fields["id"], fields["stat"], fields["dlvrd"], fields["text"]) == (
        "ab",
        "EXPIRED",
        "000",
        "x" * 20,
    )


def test_fast_path_agrees_with_the_full_parse() -> None:
    pdu = DeliverSm(
        esm_class=0x04,
        short_message=TEXT.encode(),
        receipted_message_id="0A1B2C",
        message_state=5,
        network_error_code=b"\x03\x00\x22",
    )
    fast, full = parse_receipt(pdu, full=False), parse_receipt(pdu)
    assert fast is not None and full is not None
    assert (fast.message_id, fast.status, fast.error) == (full.message_id, full.status, full.error)


@settings(max_examples=300, deadline=None)
@given(
    esm_class=st.sampled_from([0, 0x04, 0x08, 0x44]),
    message_id=st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=12),
    state=st.one_of(st.none(), st.integers(0, 255)),
    error=st.one_of(st.none(), st.binary(min_size=3, max_size=3)),
    text=st.binary(max_size=40),
    cut=st.integers(0, 6),
    extra=st.binary(max_size=6),
)
def test_peeking_at_a_receipt_agrees_with_decoding_it(
    esm_class: int,
    message_id: str,
    state: int | None,
    error: bytes | None,
    text: bytes,
    cut: int,
    extra: bytes,
) -> None:
    pdu = DeliverSm(
        sequence=42,
        esm_class=esm_class,
        short_message=text,
        receipted_message_id=message_id or None,
        message_state=state,
        network_error_code=error,
    )
    frame = encode(pdu, 42)
    frame = frame[: len(frame) - cut] + extra  # damaged at the end, as a peer might send it
    frame = len(frame).to_bytes(4, "big") + frame[4:]
    peeked = peek_receipt(frame)
    if peeked is None:
        return
    decoded = decode(frame)  # a frame peek_receipt reads must be one the decoder accepts …
    assert isinstance(decoded, DeliverSm)
    receipt = parse_receipt(decoded, full=False)
    assert receipt is not None and decoded.message_state is not None  # … and it must say the same
    assert peeked == (42, receipt.message_id, decoded.message_state, int(receipt.error or 0))
