"""What a bind holds of its receipts before they are durable (the I/O is tested in integration)."""

from __future__ import annotations

from ulak.dispatch.inbox import Inbound, pack_receipt, unpack_receipt
from ulak.dispatch.ledger import ReceiptSeen


def test_an_entry_reads_back_as_the_receipt() -> None:
    receipt = ReceiptSeen("10.0.0.1:2775/acme", "0A1B2C", "DELIVRD", "000")
    assert unpack_receipt(pack_receipt(receipt)) == receipt


def test_receipts_are_answered_only_on_the_connection_they_came_on() -> None:
    old, new = object(), object()
    inbound = Inbound()
    a, b, c = (ReceiptSeen("s", m, "DELIVRD", "") for m in "abc")
    inbound.add(a, old, b"A")
    inbound.add(b, old, b"B")
    assert inbound.take(new) == ([], b"")  # the connection they came on is gone: dropped
    assert len(inbound) == 0
    inbound.add(a, old, b"A")
    inbound.add(c, new, b"C")  # a newer connection: the older one's are dropped
    assert inbound.take(new) == ([c], b"C")
    inbound.add(a, new, b"A")
    inbound.add(b, new, b"B")
    assert inbound.take(new) == ([a, b], b"AB")
