"""The bind's reconnect backoff: however its jitter falls, an outage costs a bounded number of attempts."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from ulak.dispatch.bind import Backoff


def attempts_in(backoff: Backoff, seconds: float) -> int:
    """Attempts a bind makes in *seconds* of failures: the first at once, one after each wait."""
    attempts, clock = 1, 0.0
    while True:
        clock += backoff.next_delay()
        if clock > seconds:
            return attempts
        attempts += 1


@given(
    seed=st.integers(0, 2**32 - 1),
    cap=st.floats(0.5, 60.0),
    seconds=st.floats(0.0, 3600.0),
)
def test_an_outage_costs_at_most_the_stated_number_of_attempts(seed: int, cap: float, seconds: float) -> None:
    backoff = Backoff(cap=cap, rng=random.Random(seed))
    assert attempts_in(backoff, seconds) <= Backoff(cap=cap).attempts_bound(seconds)


def test_ten_minutes_away_with_the_default_cap_is_at_most_a_few_dozen_attempts() -> None:
    # 0.1 + 0.2 + … + 5 s of ramp (6 attempts), then one at least every 5 s: 126 in all.
    assert Backoff().attempts_bound(600) <= 126


def test_waits_grow_to_the_cap_and_a_bind_bound_again_starts_short() -> None:
    backoff = Backoff(base=0.2, cap=10.0, rng=random.Random(1))
    waits = [backoff.next_delay() for _ in range(12)]
    assert 0.1 <= waits[0] <= 0.2 and all(5.0 <= w <= 10.0 for w in waits[6:])
    backoff.reset()
    assert backoff.next_delay() <= 0.2


def test_a_day_of_outage_keeps_waiting_at_the_cap() -> None:
    # 2**1024 overflowed a float: the bind's loop ended after about three hours at a 10 s cap.
    backoff = Backoff(cap=10.0, rng=random.Random(2))
    waits = [backoff.next_delay() for _ in range(20_000)]
    assert all(5.0 <= w <= 10.0 for w in waits[-100:])
