"""Refusals in flight (``ulak.refusals``): whose refusals stop a job, and what a bind drops of what it
holds (``ulak.dispatch.refusing``): only messages not started, of the numbers refused, in the jobs
they concern, each row once, the rest in its order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ulak.dispatch.fairqueue import FairQueue
from ulak.dispatch.ledger import MemoryLedger, PartSent, RowStopped
from ulak.dispatch.part import OutboundPart, outbound_part
from ulak.dispatch.refusing import RefusalGuard
from ulak.refusals import CONSENTED, NO_CONSENT, OPTED_IN, OPTED_OUT, Matcher, Recent, Refusal, Scope
from ulak.smpp.codec import destination_of, preencode
from ulak.smpp.pdu import SubmitSm


def _message(job: str, row: int, number: str, parts: int = 1) -> list[OutboundPart]:
    pdu = preencode(SubmitSm(source_addr="ULAK", destination_addr=number, short_message=b"x"))
    return [outbound_part(job, row, p, parts, pdu) for p in range(1, parts + 1)]


def test_scope_global_brand_and_consent() -> None:
    out_global = Refusal(OPTED_OUT, None, ("1",), 0.0)
    out_acme = Refusal(OPTED_OUT, "acme", ("1",), 0.0)
    ret_global = Refusal(NO_CONSENT, None, ("1",), 0.0)
    ret_acme = Refusal(NO_CONSENT, "acme", ("1",), 0.0)
    acme_ad, acme_info, other_ad = Scope("acme", True), Scope("acme", False), Scope("other", True)
    assert all(s.stops(out_global) for s in (acme_ad, acme_info, other_ad, Scope()))
    assert acme_ad.stops(out_acme) and acme_info.stops(out_acme) and not other_ad.stops(out_acme)
    # consent is checked on the brand's list (the global one without a brand), commercial only
    assert acme_ad.stops(ret_acme) and not acme_info.stops(ret_acme) and not other_ad.stops(ret_acme)
    assert Scope(None, True).stops(ret_global) and not acme_ad.stops(ret_global)


def test_opt_out_named_before_consent() -> None:
    m = Matcher.of(
        [Refusal(NO_CONSENT, None, ("9",), 0.0), Refusal(OPTED_OUT, None, ("9",), 0.0)], Scope(None, True)
    )
    assert m.kind_of("9") == OPTED_OUT and m.kind_of("8") is None


def test_recent_forgets_after_keep() -> None:
    now = [0.0]
    recent = Recent(keep=10.0, clock=lambda: now[0])
    recent.add([Refusal(OPTED_OUT, None, ("1",), 0.0)])
    now[0] = 5.0
    recent.add([Refusal(OPTED_OUT, None, ("2",), 0.0)])
    assert recent.matcher(Scope()).kind_of("1") == OPTED_OUT
    now[0] = 12.0
    m = recent.matcher(Scope())
    assert m.kind_of("1") is None and m.kind_of("2") == OPTED_OUT
    now[0] = 20.0
    assert not recent.matcher(Scope()) and not recent


def test_an_opt_in_makes_a_bind_forget_the_opt_out_it_remembers() -> None:
    """Who opted out and back in within the bind's memory is sent to again, on that list only."""
    recent = Recent(keep=60.0, clock=lambda: 0.0)
    recent.add([Refusal(OPTED_OUT, None, ("1", "2"), 0.0), Refusal(OPTED_OUT, "acme", ("1",), 0.0)])
    recent.add([Refusal(OPTED_IN, None, ("1",), 0.0), Refusal(CONSENTED, None, ("2",), 0.0)])
    m = recent.matcher(Scope("acme", True))
    assert m.kind_of("2") == OPTED_OUT and m.kind_of("1") == OPTED_OUT  # still on acme's list
    assert recent.matcher(Scope()).kind_of("1") is None
    recent.add([Refusal(OPTED_OUT, None, ("1",), 0.0)])  # and out again
    assert recent.matcher(Scope()).kind_of("1") == OPTED_OUT
    assert not Scope(None, True).stops(Refusal(CONSENTED, None, ("2",), 0.0))


def test_destination_read_in_place() -> None:
    pdu = SubmitSm(
        source_addr="ULAK", destination_addr="905321234567", short_message=b"hi", service_type="CMT"
    )
    assert destination_of(preencode(pdu)) == destination_of(pdu) == "905321234567"


def test_guard_drops_queued_messages_not_started() -> None:
    guard = RefusalGuard(wall=lambda: 1.5)
    guard.set_scope("a", Scope("acme", False))
    guard.set_scope("b", Scope("other", False))
    queue: FairQueue[OutboundPart] = FairQueue()
    queue.extend(_message("a", 1, "111", parts=2)[1:])  # a started message: its first part went
    queue.extend(_message("a", 2, "111", parts=3))
    queue.extend(_message("a", 3, "222"))
    queue.extend(_message("b", 1, "111"))  # another brand's job
    events = guard.purge(queue, [Refusal(OPTED_OUT, "acme", ("111",), 0.0)])
    assert events == [RowStopped("a", 2, 3, OPTED_OUT, 1500)]
    assert [(p.job, p.row, p.part) for p in queue.of("a")] == [("a", 1, 2), ("a", 3, 1)]
    assert len(queue) == 3 and [p.row for p in queue.of("b")] == [1]
    # a batch given later with a row of a number refused lately: left out at once
    kept, stopped = guard.admit(_message("a", 7, "111", parts=2) + _message("a", 8, "333"))
    assert [p.row for p in kept] == [8] and stopped == [RowStopped("a", 7, 2, OPTED_OUT, 1500)]
    assert guard.stopped == 2


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["1", "2", "3"]), st.integers(1, 3)),
        max_size=30,
    ),
    st.sets(st.sampled_from(["1", "2", "3"])),
)
def test_purge_keeps_everything_else_in_order(rows: list[tuple[str, str, int]], refused: set[str]) -> None:
    """Whatever the queue holds: exactly the messages of refused numbers go, each row stopped once,
    the ledger counts them, and what stays is the queue as it was without them."""
    guard = RefusalGuard(wall=lambda: 0.0)
    queue: FairQueue[OutboundPart] = FairQueue()
    messages = [_message(job, i, number, parts) for i, (job, number, parts) in enumerate(rows)]
    for m in messages:
        queue.extend(m)
    events = guard.purge(queue, [Refusal(OPTED_OUT, None, tuple(sorted(refused)), 0.0)])
    gone = {(m[0].job, m[0].row) for m in messages if destination_of(m[0].pdu) in refused}
    assert {(e.job, e.row) for e in events} == gone and len(events) == len(gone)
    for job in ("a", "b"):
        expected = [p for m in messages if m[0].job == job and (job, m[0].row) not in gone for p in m]
        assert queue.of(job) == expected
    assert len(queue) == sum(len(m) for m in messages) - sum(e.parts for e in events)
    ledger = MemoryLedger()
    ledger.apply([*events, PartSent(events[0].job, events[0].row, 1, events[0].parts)] if events else [])
    stopped = sum(c["stopped_opted_out"] for c in ledger.counters.values())
    assert stopped == len(events) and sum(c["submitted"] for c in ledger.counters.values()) == 0
