"""The stager: parts between a bind's queue and the wire, each in one place, in sending order."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from ulak.dispatch.stager import SEQUENCE_SPAN, Stager


@dataclass(frozen=True)
class Part:
    job: str
    n: int


def test_throttled_parts_go_again_in_the_order_they_were_sent() -> None:
    """Two throttled in a row were put back one by one at the front, so they went out reversed."""
    stager: Stager[Part] = Stager()
    stager.begin([Part("j", 10), Part("j", 11)])
    stager.commit()
    # parts 1..3 were sent as sequences 7, 8, 9; their "slow down" answers come 9, 7, 8
    for sequence, n in ((9, 3), (7, 1), (8, 2)):
        stager.returned(sequence, Part("j", n))
    assert stager.ready == 5
    stager.merge()
    assert [p.n for p in stager.staged] == [1, 2, 3, 10, 11]


def test_the_order_survives_the_sequence_wrapping() -> None:
    stager: Stager[Part] = Stager()
    stager.returned(2, Part("j", 3))
    stager.returned(SEQUENCE_SPAN - 1, Part("j", 1))
    stager.returned(1, Part("j", 2))
    stager.merge()
    assert [p.n for p in stager.staged] == [1, 2, 3]


def test_a_withdraw_takes_a_job_from_everywhere_and_nothing_else() -> None:
    stager: Stager[Part] = Stager()
    stager.begin([Part("a", 1), Part("b", 2)])
    stager.commit()
    stager.begin([Part("a", 3), Part("b", 4)])  # being recorded
    stager.returned(5, Part("a", 0))
    assert stager.count("a") == 3
    taken = stager.withdraw("a")
    assert [p.n for p in taken] == [0, 1, 3]
    assert stager.count("a") == 0
    stager.commit()
    assert [p.n for p in stager.staged] == [2, 4]
    assert len(stager) == 2


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["stage", "return", "withdraw"])), max_size=60)
)
def test_every_part_is_in_exactly_one_place(steps: list[tuple[str, str]]) -> None:
    """Random staging, returns and withdraws: every part is either here (once) or taken back (once)."""
    stager: Stager[Part] = Stager()
    made: list[Part] = []
    taken: list[Part] = []
    sequence = 0
    for n, (job, action) in enumerate(steps):
        if action == "stage":
            part = Part(job, n)
            made.append(part)
            stager.begin([part])
            stager.commit()
        elif action == "return" and stager.staged:
            sequence += 1
            stager.returned(sequence, stager.staged.popleft())  # sent, then answered "slow down"
        elif action == "withdraw":
            taken += stager.withdraw(job)
    here = stager.unsettled()
    assert sorted(p.n for p in here + taken) == sorted(p.n for p in made)
    assert len(here) == len(stager)
