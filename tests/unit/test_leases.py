"""A bind's lease accounts, on a fake clock: what it may spend, and what it reports when it settles."""

from __future__ import annotations

from tests.helpers import FakeClock
from ulak.dispatch.leases import SPEND_FRACTION, LeaseMeter
from ulak.dispatch.throttle import Lease, Settlement


def lease(lease_id: int, tokens: int, hold: float = 0.05) -> Lease:
    return Lease(lease_id=lease_id, tokens=tokens, hold=hold, retry_after=0.0)


def test_a_lease_is_spent_within_its_hold_and_no_further() -> None:
    clock = FakeClock()
    meter = LeaseMeter(clock)
    meter.begin(lease(1, 10, hold=1.0), asked=99.9)
    assert meter.left == 10 and meter.live(clock.now)
    meter.spent(4)
    assert meter.left == 6
    assert meter.live(100.0 + SPEND_FRACTION * 1.0 - 0.001)
    assert not meter.live(100.0 + SPEND_FRACTION * 1.0)


def test_a_used_lease_settles_once_its_pdus_are_answered_with_offsets_from_the_asking() -> None:
    clock = FakeClock()
    meter = LeaseMeter(clock)
    meter.begin(lease(7, 10), asked=99.98)  # the answer came 20 ms after the asking
    clock.now = 100.01
    meter.spent(3)  # last PDU out at 100.01: 30 ms after the asking
    meter.end()
    assert meter.next_settlement() is None and meter.unconfirmed
    meter.confirm(oldest_unanswered=100.01, last_answer=100.02)  # one of them still on the wire
    assert meter.next_settlement() is None
    meter.confirm(oldest_unanswered=None, last_answer=100.05)  # all answered, the last at 100.05
    settled = meter.next_settlement()
    assert settled is not None
    assert (settled.lease_id, settled.used) == (7, 3)
    assert abs(settled.last_sent_after - 0.07) < 1e-9  # charged until the last answer
    assert not meter.unconfirmed


def test_a_lease_never_used_settles_at_once_for_nothing() -> None:
    meter = LeaseMeter(FakeClock())
    meter.begin(lease(3, 10), asked=100.0)
    meter.end()
    assert meter.next_settlement() == Settlement(3, 0, None)
    assert meter.left == 0 and meter.lease is None


def test_leases_settle_in_order_and_a_settlement_not_sent_comes_first_again() -> None:
    clock = FakeClock()
    meter = LeaseMeter(clock)
    for lease_id in (1, 2):
        meter.begin(lease(lease_id, 5), asked=clock.now)
        clock.now += 0.01
        meter.spent(5)
        meter.end()
    meter.confirm(oldest_unanswered=None, last_answer=clock.now)
    first = meter.next_settlement()
    assert first is not None and first.lease_id == 1
    meter.keep(first)
    assert [s.lease_id for s in meter.take_ready()] == [1, 2]
    assert meter.take_ready() == []


def test_a_dropped_lease_is_forgotten_unsettled() -> None:
    meter = LeaseMeter(FakeClock())
    meter.begin(lease(9, 5), asked=100.0)
    meter.spent(2)
    meter.drop()
    meter.end()
    meter.confirm(oldest_unanswered=None, last_answer=101.0)
    assert meter.take_ready() == [] and meter.left == 0
