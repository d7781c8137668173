"""The simulator's lean path must agree with the codec it bypasses."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import ulak.sim.smsc as sim_module
from ulak.smpp.codec import decode, encode
from ulak.smpp.pdu import DeliverSm, SubmitSm
from ulak.smpp.receipt import ReceiptStatus, parse_receipt

digits = st.text("0123456789", max_size=20)


@given(
    st.integers(1, 0x7FFFFFFF),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
    digits,
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=254),
    st.none() | st.tuples(st.integers(0, 0xFFFF), st.integers(1, 255), st.integers(1, 255)),
)
def test_peek_submit_agrees_with_the_codec(
    seq: int,
    src: str,
    dst: str,
    esm: int,
    reg: int,
    dc: int,
    sm: bytes,
    sar: tuple[int, int, int] | None,
) -> None:
    pdu = SubmitSm(
        sequence=seq,
        source_addr=src,
        destination_addr=dst,
        esm_class=esm,
        registered_delivery=reg,
        data_coding=dc,
        short_message=sm,
        sar_msg_ref_num=sar[0] if sar else None,
        sar_total_segments=sar[1] if sar else None,
        sar_segment_seqnum=sar[2] if sar else None,
    )
    frame = encode(pdu)
    peeked = sim_module.peek_submit(frame)
    full = sim_module.Submit.of(decode(frame))
    assert peeked is not None
    for name in sim_module.Submit.__slots__:
        assert getattr(peeked, name) == getattr(full, name), name


def test_peek_submit_leaves_malformed_pdus_to_the_session() -> None:
    frame = encode(SubmitSm(sequence=1, destination_addr="905321234567", short_message=b"hello"))
    truncated = frame[:-3]
    broken = len(truncated).to_bytes(4, "big") + truncated[4:]
    assert sim_module.peek_submit(broken) is None


def test_template_receipt_decodes_to_the_expected_pdu() -> None:
    for fmt in ("text", "tlv", "both"):
        sim = sim_module.Simulator(sim_module.SimConfig(dlr_format=fmt))
        pending = sim_module.PendingReceipt(
            0.0, "1a2b", "905321234567", "ULAK", ReceiptStatus.UNDELIV, "2611231200", ""
        )
        pdu = decode(sim.receipt_bytes(pending, "2611231201", 0x40000007))
        assert isinstance(pdu, DeliverSm)
        assert (pdu.sequence, pdu.source_addr, pdu.destination_addr, pdu.esm_class) == (
            0x40000007,
            "905321234567",
            "ULAK",
            0x04,
        )
        receipt = parse_receipt(pdu)
        assert receipt is not None
        assert (receipt.message_id, receipt.status) == ("1a2b", ReceiptStatus.UNDELIV)
        if fmt != "tlv":
            assert receipt.done_date == "2611231201"
        if fmt != "text":
            assert (pdu.receipted_message_id, pdu.message_state) == ("1a2b", 5)
