"""``cluster.send.backlog``: a full bind is asked how far it got about when it is back under the limit,
not at every round of the runner's loop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.send.backlog import FIRST_WAIT, MAX_WAIT, MIN_WAIT, Backlogs


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bind_over_the_limit_is_not_fed_and_is_asked_after_a_first_wait() -> None:
    clock = Clock()
    backlogs = Backlogs(4000, clock=clock)
    assert not backlogs.full("b1")  # never heard of: fed
    backlogs.fed("b1", 4000)
    assert not backlogs.full("b1")  # at the limit, not over it
    backlogs.fed("b1", 4500)
    assert backlogs.full("b1")
    clock.now += FIRST_WAIT - 0.001
    assert not backlogs.due("b1")
    clock.now += 0.001
    assert backlogs.due("b1")
    backlogs.answered("b1", 3999)
    assert not backlogs.full("b1")


def test_its_pace_decides_when_it_is_asked_again() -> None:
    clock = Clock()
    backlogs = Backlogs(4000, clock=clock)
    backlogs.answered("b1", 6000)
    clock.now += 0.1
    backlogs.answered("b1", 5000)  # 10,000 parts a second: 1,000 over the limit is 0.1 s
    clock.now += 0.099
    assert not backlogs.due("b1")
    clock.now += 0.001
    assert backlogs.due("b1")
    # A batch given since does not lose the pace: the next question waits for it again.
    backlogs.fed("b1", 4400)
    clock.now += 0.039
    assert not backlogs.due("b1")
    clock.now += 0.001
    assert backlogs.due("b1")


@pytest.mark.parametrize(
    ("first", "second", "seconds", "wait"),
    [
        (5000, 5000, 0.1, MAX_WAIT),  # sent nothing: a stuck bind, asked four times a second
        (50_000, 40_000, 0.1, MAX_WAIT),  # far over the limit: asked again after the longest wait
        (4100, 4010, 0.01, MIN_WAIT),  # about to be under it: not sooner than the loop goes round
    ],
)
def test_the_wait_stays_within_its_bounds(first: int, second: int, seconds: float, wait: float) -> None:
    clock = Clock()
    backlogs = Backlogs(4000, clock=clock)
    backlogs.answered("b1", first)
    clock.now += seconds
    backlogs.answered("b1", second)
    clock.now += wait - 0.001
    assert not backlogs.due("b1")
    clock.now += 0.001
    assert backlogs.due("b1")


def test_a_bind_made_again_starts_afresh() -> None:
    backlogs = Backlogs(10, clock=Clock())
    backlogs.fed("b1", 11)
    backlogs.forget("b1")
    assert not backlogs.full("b1") and backlogs.due("b1")


@given(
    share=st.floats(0.05, 1.0),
    limit=st.integers(2_000, 8_000),
    chunk=st.integers(200, 2_000),
)
def test_a_bind_sending_at_a_steady_pace_is_asked_seldom_and_never_runs_dry(
    share: float, limit: int, chunk: int
) -> None:
    """A runner's loop every 20 ms (a batch of *chunk* parts a round at most) against a bind that
    sends up to what the loop can give it, at most 10,000 parts a second: once it has been full, it
    never runs out of parts, and it is asked about once for every batch it takes (not at every round
    it is full, as before)."""
    pace = min(10_000, max(100, int(share * chunk / 0.02)))
    clock = Clock()
    backlogs = Backlogs(limit, clock=clock)
    queued, asked, batches, been_full = 0.0, 0, 0, False
    for _ in range(1_000):  # twenty seconds
        if backlogs.full("b1"):
            been_full = True
            if backlogs.due("b1"):
                asked += 1
                backlogs.answered("b1", int(queued))
        else:
            queued += chunk
            batches += 1
            backlogs.fed("b1", int(queued))
        clock.now += 0.02
        queued = max(0.0, queued - pace * 0.02)
        assert queued > 0 or not been_full
    assert asked <= 2 * batches + 1  # asked at every full round, it was full_rounds
