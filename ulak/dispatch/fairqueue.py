"""The parts waiting in one bind, per job, shared between jobs by weight.

Two campaigns on the same operator share its binds. A single FIFO would serve whichever job queued
first until it ran dry; :class:`FairQueue` keeps one queue per job and serves them by deficit round
robin (Shreedhar and Varghese, 1995) with unit-size items: in each round a job may take
``quantum × weight`` parts, so over any busy stretch two jobs with weights 3 and 1 get three parts for
every one. Within a job the order is kept exactly (a resend goes back to the front of its own job's
queue). Plain Python, no I/O: the bind calls it from its event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, Protocol, TypeVar


class Item(Protocol):
    @property
    def job(self) -> str: ...


T = TypeVar("T", bound=Item)


class FairQueue(Generic[T]):
    def __init__(self, *, quantum: int = 50) -> None:
        self.quantum = quantum
        self._queues: dict[str, deque[T]] = {}
        self._weights: dict[str, float] = {}
        self._deficit: dict[str, float] = {}
        self._active: deque[str] = deque()  # jobs with parts waiting, in round-robin order
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self) -> Iterator[T]:
        for job in self._active:
            yield from self._queues[job]

    def weight(self, job: str) -> float:
        return self._weights.get(job, 1.0)

    def set_weight(self, job: str, weight: float) -> None:
        if weight <= 0:
            raise ValueError(f"a job's weight must be positive, not {weight}")
        self._weights[job] = weight

    def _queue(self, job: str) -> deque[T]:
        q = self._queues.get(job)
        if q is None:
            q = self._queues[job] = deque()
        if not q and job not in self._deficit:
            self._active.append(job)
            self._deficit[job] = 0.0
        return q

    def extend(self, items: Iterable[T]) -> None:
        """Append *items* to the back of their jobs' queues."""
        for item in items:
            self._queue(item.job).append(item)
            self._len += 1

    def extendleft(self, items: Iterable[T]) -> None:
        """Put *items* back at the front of their jobs' queues, keeping their order (a resend)."""
        for item in reversed(list(items)):
            self._queue(item.job).appendleft(item)
            self._len += 1

    def appendleft(self, item: T) -> None:
        self.extendleft([item])

    def popleft(self) -> T:
        """The next part by weighted round robin; ``IndexError`` when empty."""
        if not self._len:
            raise IndexError("pop from an empty FairQueue")
        while True:
            job = self._active[0]
            if self._deficit[job] >= 1.0:
                self._deficit[job] -= 1.0
                q = self._queues[job]
                item = q.popleft()
                self._len -= 1
                if not q:  # idle jobs keep no credit (DRR's rule), and leave the round
                    self._active.popleft()
                    del self._deficit[job]
                    self._weights.pop(job, None)
                return item
            self._deficit[job] += max(1.0, self.quantum * self.weight(job))
            self._active.rotate(-1)

    def withdraw(self, job: str) -> list[T]:
        """Remove and return every part of *job*, in order."""
        q = self._queues.pop(job, None)
        if not q:
            return []
        self._len -= len(q)
        self._active.remove(job)
        self._deficit.pop(job, None)
        self._weights.pop(job, None)
        return list(q)

    def of(self, job: str) -> list[T]:
        """*job*'s parts waiting, in order (a copy)."""
        return list(self._queues.get(job) or ())

    def remove(self, job: str, drop: Callable[[T], bool]) -> list[T]:
        """Remove and return *job*'s parts for which *drop* is true; the rest keep their order."""
        q = self._queues.get(job)
        if not q:
            return []
        kept: deque[T] = deque()
        dropped: list[T] = []
        for item in q:
            (dropped if drop(item) else kept).append(item)
        if not dropped:
            return []
        if not kept:
            return self.withdraw(job)  # all of them: it leaves the round as a job run dry does
        self._len -= len(dropped)
        self._queues[job] = kept
        return dropped

    def count(self, job: str) -> int:
        q = self._queues.get(job)
        return len(q) if q else 0

    def jobs(self) -> dict[str, int]:
        """Parts waiting per job."""
        return {job: len(self._queues[job]) for job in self._active}
