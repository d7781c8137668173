"""A sending job's progress as its record shows it: the rate samples, the counters they read (once a
second at most), and ``waiting``: why a job that should be sending is not (stalled binds, a
variant's send time, an A/B decision). :class:`Progress` owns all three for one runner."""

from __future__ import annotations

import time

from cluster.send.job import Job, Pool
from cluster.send.pool import operator_state

STALL_SECONDS = 10.0  # a sending job with no part sent for this long says what it waits on


class Progress:
    """One job's samples, counters and ``waiting`` (see the module docstring)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._last_sample = 0.0
        self._progress: tuple[int, float] = (-1, 0.0)  # parts sent when last looked, and since when
        self._counters_read: dict[str, int] = {}
        self._per_ledger: dict[str, int] = {}  # parts sent per ledger, read with the counters
        self._counters_at = -1.0  # when _counters_read was read (monotonic; -1: never)
        self._described_at = 0.0
        self.waiting = ""

    def say_waiting(self, message: str) -> None:
        if self.waiting != message:
            self.waiting = message
            self.job.store.update(self.job.job_id, waiting=message)

    def not_waiting(self) -> None:
        """Not sending: no stall to explain (the clock starts again when it sends)."""
        self._progress = (-1, 0.0)
        if self.waiting:
            self.waiting = ""
            self.job.store.update(self.job.job_id, waiting="")

    def watch(self, pool: Pool) -> None:
        """A sending job whose parts stopped going out says why in its record (``waiting``): the
        operators its binds cannot send for, with their binds' states and errors. It reads the
        counters the rate samples read (``_counters``: once a second at most, shared), and asks the
        binds only after ``STALL_SECONDS`` without a part sent (and again every ``STALL_SECONDS``
        while it lasts); cleared when parts move again."""
        sent = self.counters().get("parts_sent", 0)
        now = self._counters_at
        if sent != self._progress[0]:
            if self.waiting:
                self.job.log.info("job.moving_again")
            self.not_waiting()
            self._progress = (sent, now)
            return
        if now - self._progress[1] < STALL_SECONDS or now - self._described_at < STALL_SECONDS:
            return
        self._described_at = now
        down = []
        for name, binds in pool.describe().items():
            state, reason = operator_state(binds)
            if state != "up":
                down.append(f"{name} {state}: {reason}")
        waiting = "; ".join(down) or f"no part sent for {STALL_SECONDS:g} s; every operator is up"
        if waiting != self.waiting:
            self.waiting = waiting
            self.job.store.update(self.job.job_id, waiting=waiting)
            self.job.log.warning("job.waiting", waiting=waiting)

    def maybe_sample(self) -> None:
        if time.monotonic() - self._last_sample >= 1.0:
            self.sample()

    def sample(self) -> None:
        self._last_sample = time.monotonic()
        counters = self.counters(fresh=True)
        self.job.store.sample(self.job.job_id, counters, ledgers=self._per_ledger)

    def counters(self, *, fresh: bool = False) -> dict[str, int]:
        """The job's counters, read again only if *fresh* or the last read is a second old: the
        samples and the stall watch share one read a second."""
        now = time.monotonic()
        if fresh or now - self._counters_at >= 1.0:
            self._counters_read, self._per_ledger = self.job.store.progress(self.job.job_id)
            self._counters_at = now
        return self._counters_read
