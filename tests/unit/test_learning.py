"""The learned rate: a bind finds the limit an SMSC really enforces from its "slow down" answers, never
exceeds what was declared, and follows a limit that drops and recovers. Driven against a model SMSC
(a sliding second, as the simulator and most SMSCs count) on a fake clock, through the same
``BothLimits`` and paced limiter a bind uses."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import FakeClock
from ulak.dispatch.learning import AcceptCounter, RateLearner
from ulak.dispatch.throttle import PACE, BothLimits, Settlement, SlidingWindowLimiter, learner_for

TICK = 0.002  # seconds per step of the model


class ModelSmsc:
    """Accepts at most ``limit(now)`` submits in any sliding second (refused ones do not count)."""

    def __init__(self, limit: Callable[[float], float]) -> None:
        self.limit = limit
        self.window: deque[float] = deque()

    def submit(self, now: float) -> bool:
        while self.window and self.window[0] <= now - 1.0:
            self.window.popleft()
        if len(self.window) >= self.limit(now):
            return False
        self.window.append(now)
        return True


class FixedSecond(ModelSmsc):
    """Counts per calendar second instead (a burst is allowed at each second's turn)."""

    def submit(self, now: float) -> bool:
        while self.window and int(self.window[0]) < int(now):
            self.window.popleft()
        if len(self.window) >= self.limit(now):
            return False
        self.window.append(now)
        return True


def drive(
    smsc: ModelSmsc, seconds: float, *, ceiling: float, start: float | None = None
) -> tuple[list[tuple[int, int]], RateLearner]:
    """A bind with an endless queue against :class:`ModelSmsc`: per second of the model's time,
    (accepted, answered "slow down"). It leases as ``SendPath`` does (a share of the learned rate
    for 50 ms), is answered at once, and after a "slow down" gives up its lease and pauses 50 ms."""
    clock = FakeClock(0.0)
    learner = RateLearner(ceiling, start=start, clock=clock)
    limits = BothLimits(SlidingWindowLimiter(learner.rate, pace=PACE, clock=clock), None, learner)
    accepts = AcceptCounter()
    per_second = [[0, 0] for _ in range(int(seconds))]
    pause_until = 0.0

    async def run() -> None:
        nonlocal pause_until
        settlement: Settlement | None = None
        while clock.now < seconds:
            if clock.now < pause_until:
                clock.advance(TICK)
                continue
            want = max(1, int(learner.rate * 0.05))
            lease = await limits.exchange(settlement, want, hold=0.05)
            settlement = None
            used = 0
            for _ in range(lease.tokens):
                used += 1
                second = per_second[int(clock.now)]
                if smsc.submit(clock.now):
                    second[0] += 1
                    accepts.add(clock.now)
                else:
                    second[1] += 1
                    learner.throttled(accepted_last_second=accepts.last_second(clock.now))
                    pause_until = clock.now + 0.05
                    break
            if lease.tokens:
                settlement = Settlement(lease.lease_id, used, 0.0)
            clock.advance(TICK)

    asyncio.run(run())
    return [(a, t) for a, t in per_second], learner


def test_an_undeclared_per_bind_limit_is_learned_and_held_with_few_slow_downs() -> None:
    """Told only the account's 400/s, the SMSC allowing the bind 100: after 10 s of learning, at
    least 90 % of the real limit goes, and no more than 1 % of submits are answered 0x58."""
    seconds, learner = drive(ModelSmsc(lambda now: 100), 60, ceiling=400, start=100)
    steady = seconds[10:]
    accepted = sum(a for a, _ in steady)
    throttled = sum(t for _, t in steady)
    assert accepted / len(steady) >= 90
    assert throttled <= 0.01 * (accepted + throttled)
    assert 85 <= learner.rate <= 110
    assert learner.learned


def test_a_limit_that_drops_and_recovers_is_followed_within_ten_seconds_each_way() -> None:
    """100/s, 50/s from second 20 to 40, 100/s again: the storm of 0x58 after the drop is over within
    10 s (a second with fewer than 5), and 90/s is reached again within 10 s of the restore."""

    def limit(now: float) -> float:
        return 50 if 20 <= now < 40 else 100

    seconds, _ = drive(ModelSmsc(limit), 60, ceiling=400, start=100)
    calm = next(k for k in range(20, 40) if seconds[k][1] < 5)
    assert calm - 20 <= 10
    assert max(a for a, _ in seconds[calm:40]) <= 50
    back = next(k for k in range(40, 60) if seconds[k][0] >= 90)
    assert back - 40 <= 10
    # ...and held there, with few slow-downs, after it came back.
    tail = seconds[back + 1 :]
    assert sum(t for _, t in tail) <= 0.01 * sum(a + t for a, t in tail)


def test_a_declared_cap_is_never_exceeded_when_the_smsc_would_allow_more() -> None:
    """Declared 100/s on an SMSC that allows 250: the bind sends its 100 and never probes above it."""
    seconds, learner = drive(ModelSmsc(lambda now: 250), 20, ceiling=100)
    assert all(t == 0 for _, t in seconds)
    assert all(a <= 100 for a, _ in seconds)
    assert sum(a for a, _ in seconds[1:]) / 19 >= 95
    assert learner.rate == 100 and not learner.learned


def test_a_fixed_second_smsc_is_learned_as_well() -> None:
    """An SMSC that counts per calendar second (allowing a burst at each second's turn) is learned
    the same way: most of its limit, few slow-downs."""

    seconds, _ = drive(FixedSecond(lambda now: 80), 40, ceiling=400, start=100)
    steady = seconds[10:]
    accepted = sum(a for a, _ in steady)
    throttled = sum(t for _, t in steady)
    assert accepted / len(steady) >= 0.9 * 80
    assert throttled <= 0.01 * (accepted + throttled)


def slowed(accepted: int) -> tuple[FakeClock, RateLearner]:
    """A learner of 400/s started at 100/s, just slowed down with *accepted* accepted last second."""
    clock = FakeClock(0.0)
    learner = RateLearner(400, start=100, clock=clock)
    assert learner.throttled(accepted_last_second=accepted)
    return clock, learner


def test_an_idle_bind_does_not_creep_upward() -> None:
    """Growth counts only the time the learned rate held the bind back: a bind slowed to 47.5/s
    that then has nothing to send for a minute is still at 47.5/s."""
    clock, learner = slowed(50)
    for _ in range(600):
        clock.advance(0.1)
        assert learner.held_back(False) == 47.5


def test_one_burst_of_slow_downs_lowers_the_rate_once() -> None:
    clock, learner = slowed(100)
    for _ in range(9):
        clock.advance(0.1)
        assert not learner.throttled(accepted_last_second=100)
    assert learner.rate == 95
    clock.advance(0.2)
    assert learner.throttled(accepted_last_second=100)


@given(
    st.lists(
        st.tuples(st.sampled_from(["throttled", "held", "idle"]), st.floats(0, 3), st.integers(0, 2000)),
        max_size=200,
    ),
    st.floats(1, 5000),
)
def test_the_learned_rate_stays_between_floor_and_ceiling(
    steps: list[tuple[str, float, int]], ceiling: float
) -> None:
    clock = FakeClock(0.0)
    learner = RateLearner(ceiling, start=ceiling / 4, clock=clock)
    for kind, advance, accepted in steps:
        clock.advance(advance)
        if kind == "throttled":
            learner.throttled(accepted_last_second=accepted)
        else:
            learner.held_back(kind == "held")
        assert learner.floor <= learner.rate <= ceiling


def test_accepts_are_counted_over_the_last_second() -> None:
    counter = AcceptCounter()
    for i in range(300):  # 100/s for 3 s
        counter.add(10.0 + i * 0.01)
    assert 90 <= counter.last_second(12.995) <= 100
    assert counter.last_second(20.0) == 0


def test_a_bind_learns_from_what_was_declared_never_above_it_nor_to_a_halt() -> None:
    """The ceiling is what was declared (the bind's cap, else the account's); with only the account's,
    a bind starts at its share; the floor is a twentieth of the ceiling, at most 10/s, so that an
    operator configured "uncapped" can still learn a real SMSC's limit."""
    own = learner_for(100, account_tps=400, binds=4)
    assert (own.ceiling, own.rate, own.floor) == (100, 100, 5)
    shared = learner_for(None, account_tps=400, binds=4)
    assert (shared.ceiling, shared.rate, shared.floor) == (400, 100, 10)
    uncapped = learner_for(None, account_tps=10_000_000, binds=4)
    assert uncapped.floor == 10
