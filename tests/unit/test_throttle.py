"""The operator limiter: never more than the cap in any sliding second, and close to the cap."""

from __future__ import annotations

import asyncio
import bisect

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import FakeClock
from ulak.dispatch.throttle import (
    BothLimits,
    LocalTokenSource,
    Settlement,
    SlidingWindowLimiter,
    limits_for,
)


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best = 0
    for i, t in enumerate(times):
        # PDUs in [t, t + window): the SMSC's sliding window starting at this send
        j = bisect.bisect_left(times, t + window - 1e-9)
        best = max(best, j - i)
    return best


def simulate(
    rate: int, binds: int, seconds: float, *, hold: float = 0.05, tick: float = 0.005
) -> list[float]:
    """Binds lease ~hold worth of tokens, send them at once, settle, repeat; returns send times."""
    clock = FakeClock()
    limiter = SlidingWindowLimiter(rate, clock=clock)
    sends: list[float] = []
    next_try = [clock.now] * binds
    end = clock.now + seconds
    while clock.now < end:
        for b in range(binds):
            if clock.now < next_try[b]:
                continue
            lease = limiter.acquire(max(1, int(rate * hold)), hold=hold)
            if not lease.tokens:
                next_try[b] = clock.now + min(lease.retry_after, hold)
                continue
            sends.extend([clock.now] * lease.tokens)
            limiter.settle(lease.lease_id, used=lease.tokens, last_sent_after=0.0)
        clock.now += tick
    return sends


@pytest.mark.parametrize(("rate", "binds"), [(300, 3), (100, 1), (1000, 4), (7, 2)])
def test_never_over_the_cap_and_close_to_it(rate: int, binds: int) -> None:
    sends = simulate(rate, binds, seconds=20)
    assert max_in_any_window(sends) <= rate
    achieved = len(sends) / 20
    assert achieved >= 0.97 * rate


def test_unused_tokens_come_back() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(100, clock=clock)
    lease = limiter.acquire(100)
    assert lease.tokens == 100
    assert limiter.acquire(1).tokens == 0
    limiter.settle(lease.lease_id, used=40, last_sent_after=0.01)
    assert limiter.available() == 60


def test_unsettled_lease_is_charged_for_its_whole_hold() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(10, clock=clock)
    limiter.acquire(10, hold=0.5)
    clock.now += 1.2  # hold (0.5) + window (1.0) + margin not yet passed
    assert limiter.acquire(1).tokens == 0
    clock.now += 0.5
    assert limiter.acquire(10).tokens == 10


def test_retry_after_says_when_tokens_return() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(10, clock=clock)
    lease = limiter.acquire(10)
    limiter.settle(lease.lease_id, used=10, last_sent_after=0.0)
    refused = limiter.acquire(1)
    assert refused.tokens == 0
    assert refused.retry_after == pytest.approx(1.0 + limiter.margin)
    clock.now += refused.retry_after
    assert limiter.acquire(1).tokens == 1


def test_a_lease_answered_after_its_hold_stays_charged_until_a_window_after_the_answer() -> None:
    # The SMSC may count a PDU as late as it answers it: a lease whose last PDU was answered 0.3 s
    # after it arrived (the hold was 0.05 s) keeps its tokens until a window after that.
    clock = FakeClock()
    limiter = SlidingWindowLimiter(10, clock=clock)
    lease = limiter.acquire(10, hold=0.05)
    clock.now += 0.3
    limiter.settle(lease.lease_id, used=10, last_sent_after=0.3)
    clock.now += 1.0  # a window after the hold, not yet a window after the answer
    assert limiter.acquire(1).tokens == 0
    clock.now += limiter.margin + 0.001
    assert limiter.acquire(10).tokens == 10


def test_settling_twice_or_late_is_harmless() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(10, clock=clock)
    lease = limiter.acquire(5)
    limiter.settle(lease.lease_id, used=0, last_sent_after=None)
    limiter.settle(lease.lease_id, used=5, last_sent_after=0.0)
    limiter.settle(999, used=1, last_sent_after=0.0)
    assert limiter.available() == 10


def test_rate_change_applies_to_new_leases() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(10, clock=clock)
    limiter.acquire(10)
    limiter.set_rate(20)
    assert limiter.acquire(20).tokens == 10


@given(
    st.lists(
        st.tuples(
            st.floats(0, 0.3),  # time until this bind asks
            st.integers(1, 60),  # tokens wanted
            st.floats(0.01, 0.2),  # hold
            st.floats(0, 1),  # fraction of the lease used
            st.floats(0, 1),  # where in the hold the last PDU went out
        ),
        min_size=1,
        max_size=200,
    )
)
def test_any_schedule_stays_under_the_cap(steps: list[tuple[float, int, float, float, float]]) -> None:
    clock = FakeClock()
    rate = 50
    limiter = SlidingWindowLimiter(rate, clock=clock)
    sends: list[float] = []
    for wait, want, hold, fraction, spread in steps:
        clock.now += wait
        lease = limiter.acquire(want, hold=hold)
        if not lease.tokens:
            continue
        used = int(lease.tokens * fraction)
        last = spread * hold
        # the PDUs go out anywhere between the grant and the reported last send
        sends.extend(clock.now + last * (i / max(1, used - 1)) for i in range(used))
        limiter.settle(lease.lease_id, used=used, last_sent_after=last if used else None)
    assert max_in_any_window(sends) <= rate


@given(
    st.lists(
        st.tuples(st.floats(0, 0.3), st.integers(1, 60), st.floats(0.01, 0.2), st.floats(0, 1)),
        min_size=1,
        max_size=100,
    )
)
def test_exchange_is_settle_then_acquire_and_the_pool_refills(
    steps: list[tuple[float, int, float, float]],
) -> None:
    """One call per lease while busy (settle the last, lease the next) changes nothing the limiter
    decides; and once a window has passed with nothing leased, every token is free again."""
    clocks = FakeClock(), FakeClock()
    paired = SlidingWindowLimiter(50, clock=clocks[0])
    merged = SlidingWindowLimiter(50, clock=clocks[1])
    last: Settlement | None = None
    for wait, want, hold, fraction in steps:
        for clock in clocks:
            clock.now += wait
        if last is not None:
            paired.settle(last.lease_id, used=last.used, last_sent_after=last.last_sent_after)
        expected = paired.acquire(want, hold=hold)
        lease = merged.exchange(last, want, hold=hold)
        assert lease == expected
        used = int(lease.tokens * fraction)
        last = Settlement(lease.lease_id, used, hold * fraction if used else None) if lease.tokens else None
    for clock in clocks:
        clock.now += 2.0
    assert paired.available() == merged.available() == 50


@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),  # which bind asks
            st.floats(0, 0.1),  # time until it asks
            st.integers(1, 40),  # tokens wanted
            st.floats(0, 1),  # fraction of the lease used
            st.floats(0, 1),  # where in the hold the last PDU went out
        ),
        min_size=1,
        max_size=300,
    ),
    st.sampled_from([(20, 50), (20, 100), (30, 60)]),  # (each bind's cap, the account's)
)
def test_both_limits_hold_at_once(
    steps: list[tuple[int, float, int, float, float]], caps: tuple[int, int]
) -> None:
    """Four binds, each with its own cap, share an account cap: no sliding second ever sees more than
    a bind's cap from one bind, or more than the account's from all of them."""
    bind_cap, account_cap = caps
    clock = FakeClock()
    account = SlidingWindowLimiter(account_cap, clock=clock)
    shared = LocalTokenSource(account)
    binds = [BothLimits(SlidingWindowLimiter(bind_cap, clock=clock), shared) for _ in range(4)]
    sends: list[list[float]] = [[] for _ in binds]
    hold = 0.05

    async def run() -> None:
        for b, wait, want, fraction, spread in steps:
            clock.now += wait
            lease = await binds[b].exchange(None, want, hold=hold)
            if not lease.tokens:
                continue
            used = int(lease.tokens * fraction)
            last = spread * hold
            sends[b].extend(clock.now + last * (i / max(1, used - 1)) for i in range(used))
            await binds[b].settle(lease.lease_id, used=used, last_sent_after=last if used else None)

    asyncio.run(run())
    assert all(max_in_any_window(s) <= bind_cap for s in sends)
    assert max_in_any_window([t for s in sends for t in s]) <= account_cap


def test_a_bind_with_its_own_cap_gets_all_of_it_and_no_more() -> None:
    """One bind capped at 100 under an account of 400: it sends its 100 a second, not the account's."""
    clock = FakeClock()
    account = LocalTokenSource(SlidingWindowLimiter(400, clock=clock))
    both = BothLimits(SlidingWindowLimiter(100, clock=clock), account)
    sent: list[float] = []

    async def run() -> None:
        while clock.now < 110.0:
            lease = await both.exchange(None, 5, hold=0.05)
            if lease.tokens:
                sent.extend([clock.now] * lease.tokens)
                await both.settle(lease.lease_id, used=lease.tokens, last_sent_after=0.001)
            clock.now += 0.005

    asyncio.run(run())
    assert max_in_any_window(sent) == 100
    assert len(sent) >= 0.97 * 100 * 10


def test_independent_binds_never_ask_the_account() -> None:
    """Binds whose own caps add up to no more than the account's cannot exceed it: no shared calls."""
    shared = LocalTokenSource(SlidingWindowLimiter(400))
    independent = limits_for(100, account_tps=400, bind_caps=[100] * 4, shared=shared)
    assert isinstance(independent, BothLimits) and independent.shared is None
    tight = limits_for(100, account_tps=300, bind_caps=[100] * 4, shared=shared)
    assert isinstance(tight, BothLimits) and tight.shared is shared
    assert limits_for(None, account_tps=300, bind_caps=[None], shared=shared) is shared


def test_a_restarted_limiter_grants_nothing_for_a_window() -> None:
    """Its previous life's leases may still be spent: a fresh second at once would go over the cap."""
    clock = FakeClock()
    limiter = SlidingWindowLimiter(100, clock=clock)
    limiter.assume_full()
    assert limiter.acquire(10).tokens == 0
    clock.now += 0.5
    assert limiter.acquire(10).tokens == 0
    clock.now += 0.51
    assert limiter.acquire(10).tokens == 10


def test_a_paced_limiter_spreads_its_second_over_the_second() -> None:
    """Paced (a bind's own cap), 100/s goes out 5 at a time every 50 ms, not 100 at once: no 100 ms
    of it holds more than 15, and every second still gets its 95-100."""
    clock = FakeClock(0.0)
    limiter = SlidingWindowLimiter(100, pace=0.05, clock=clock)
    sends: list[float] = []
    while clock.now < 10.0:
        lease = limiter.acquire(50, hold=0.05)
        sends += [clock.now] * lease.tokens
        if lease.tokens:
            limiter.settle(lease.lease_id, used=lease.tokens, last_sent_after=0.0)
        clock.advance(0.001)
    assert max_in_any_window(sends, 0.1) <= 15
    assert max_in_any_window(sends) <= 100
    assert all(95 <= sum(1 for t in sends if s <= t < s + 1) <= 100 for s in range(1, 9))
