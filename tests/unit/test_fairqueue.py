"""FairQueue: jobs share a bind by weight; each job's own order is kept exactly."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ulak.dispatch.fairqueue import FairQueue


@dataclass(frozen=True)
class Part:
    job: str
    n: int


def parts(job: str, count: int, start: int = 0) -> list[Part]:
    return [Part(job, i) for i in range(start, start + count)]


def test_weights_share_a_busy_stretch_three_to_one() -> None:
    q: FairQueue[Part] = FairQueue(quantum=10)
    q.set_weight("a", 3.0)
    q.extend(parts("a", 3000))
    q.extend(parts("b", 3000))
    first = Counter(q.popleft().job for _ in range(2000))
    assert first == {"a": 1500, "b": 500}


def test_a_lone_job_takes_everything_and_an_idle_one_keeps_no_credit() -> None:
    q: FairQueue[Part] = FairQueue(quantum=10)
    q.extend(parts("a", 50))
    assert [q.popleft().n for _ in range(50)] == list(range(50))
    assert not q
    with pytest.raises(IndexError):
        q.popleft()
    q.extend(parts("a", 30, 50))
    q.extend(parts("b", 30))
    order = [q.popleft().job for _ in range(40)]
    assert Counter(order) == {"a": 20, "b": 20}  # a's earlier turns did not bank credit


def test_resends_go_first_in_their_own_job_and_withdraw_takes_one_job() -> None:
    q: FairQueue[Part] = FairQueue(quantum=1)
    q.extend(parts("a", 3))
    q.extend(parts("b", 3))
    taken = [q.popleft(), q.popleft()]
    q.extendleft(taken)  # both lost in flight: resent first, in their order
    assert len(q) == 6 and q.count("a") == 3
    assert q.withdraw("b") == parts("b", 3)
    assert [q.popleft() for _ in range(3)] == parts("a", 3)
    assert q.withdraw("b") == [] and len(q) == 0 and q.jobs() == {}


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 20), st.booleans()), max_size=60))
def test_every_part_comes_out_once_in_its_jobs_order(ops: list[tuple[str, int, bool]]) -> None:
    q: FairQueue[Part] = FairQueue(quantum=3)
    next_n: Counter[str] = Counter()
    out: list[Part] = []
    for job, count, pop in ops:
        q.set_weight(job, 1 + "abc".index(job))
        q.extend(parts(job, count, next_n[job]))
        next_n[job] += count
        if pop:
            out += [q.popleft() for _ in range(min(len(q), count))]
    while q:
        out.append(q.popleft())
    for job in "abc":
        assert [p.n for p in out if p.job == job] == list(range(next_n[job]))
