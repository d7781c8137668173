"""A bind's unwritten ledger events: coalescing, receipts a tick late, and a failed write put back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ulak.dispatch.ledger import MemoryLedger, PartAcked, PartSent, ReceiptSeen, coalesce
from ulak.dispatch.outbox import Outbox


class Item:
    """Stands for an OutboundPart: the outbox knows parts by identity."""

    def __init__(self, row: int) -> None:
        self.row = row


def sent(outbox: Outbox, item: Item) -> None:
    outbox.sent(item, PartSent("j", item.row, 1, 1))


def acked(outbox: Outbox, item: Item) -> PartAcked:
    outbox.answered(item)
    event = PartAcked("j", item.row, 1, 1, "smsc", f"m{item.row}")
    outbox.add(event)
    return event


def test_a_send_answered_before_the_write_goes_as_its_answer_alone() -> None:
    outbox = Outbox()
    a, b = Item(1), Item(2)
    sent(outbox, a)
    sent(outbox, b)
    ack = acked(outbox, a)
    assert outbox.take() == [PartSent("j", 2, 1, 1), ack]


def test_a_send_already_taken_stays_and_its_answer_follows() -> None:
    outbox = Outbox()
    a = Item(1)
    sent(outbox, a)
    assert outbox.take() == [PartSent("j", 1, 1, 1)]
    assert not outbox.answered(a)
    ack = acked(outbox, a)
    assert outbox.take() == [ack]


def test_receipts_wait_a_tick_unless_the_flush_is_not_one() -> None:
    outbox = Outbox()
    first, second = ReceiptSeen("s", "1", "DELIVRD", ""), ReceiptSeen("s", "2", "DELIVRD", "")
    outbox.receipts([first])
    outbox.age_receipts(tick=True)
    assert outbox.take() == []  # the ack it may need is written at this tick, by whichever bind
    outbox.receipts([second])
    outbox.age_receipts(tick=True)
    assert outbox.take() == [first]
    outbox.age_receipts(tick=False)  # a withdraw or a drain: everything now
    assert outbox.take() == [second]
    assert outbox.waiting_receipts == 0


def test_a_failed_write_puts_its_events_back_first_and_their_sends_stay() -> None:
    outbox = Outbox()
    a, b = Item(1), Item(2)
    sent(outbox, a)
    taken = outbox.take()
    sent(outbox, b)
    outbox.put_back(taken)
    assert not outbox.answered(b)  # its place moved: it goes as a send, its ack after it
    ack = acked(outbox, b)
    assert outbox.take() == [PartSent("j", 1, 1, 1), PartSent("j", 2, 1, 1), ack]


@given(st.lists(st.tuples(st.sampled_from(["send", "ack", "take", "fail"]), st.integers(0, 5)), max_size=60))
def test_whatever_the_order_the_ledger_ends_as_if_every_event_went(ops: list[tuple[str, int]]) -> None:
    # The outbox may drop sends (coalescing) but never changes what the ledger ends up with.
    items = [Item(r) for r in range(6)]
    outbox = Outbox()
    every: list[object] = []
    written: list[object] = []
    state = dict.fromkeys(range(6), "new")
    for op, row in ops:
        item = items[row]
        if op == "send" and state[row] == "new":
            event = PartSent("j", row, 1, 1)
            outbox.sent(item, event)
            every.append(event)
            state[row] = "sent"
        elif op == "ack" and state[row] == "sent":
            every.append(acked(outbox, item))
            state[row] = "acked"
        elif op == "take":
            written += outbox.take()
        elif op == "fail":
            outbox.put_back(outbox.take())
    written += outbox.take()
    assert _ledger(written) == _ledger(every) == _ledger(coalesce(every))  # type: ignore[arg-type]


def _ledger(events: list[object]) -> tuple[object, object]:
    ledger = MemoryLedger()
    ledger.apply(events)  # type: ignore[arg-type]
    return dict(ledger.counters), dict(ledger.parts)
