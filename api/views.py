"""Job views as the API serves them: reads of one job shared while they are fresh.

A dashboard, a script polling every job, and the web manager's live page may ask for the same job
many times a second while it sends at full speed. Each ask is two Redis round trips, and each waits
behind the binds' ledger scripts and for a turn of the CPU the job is using. So concurrent asks for
a job share one read, and an answer serves the asks of the next ``max_age`` seconds (``api.
view_max_age``, 0.1 s by default: the figures are then at most that much older than the read). A
pause, resume or cancel through this process drops the job's answer, so its caller reads the new
state at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

View = dict[str, Any]


class ViewCache:
    """Shared, briefly kept reads of job views (the module docstring); *read* reads one."""

    MAX_JOBS = 4096  # past this many jobs kept, those whose answers are too old are dropped

    def __init__(
        self,
        read: Callable[[str], Awaitable[View]],
        *,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._max_age = max_age
        self._clock = clock
        self._entries: dict[str, tuple[float, asyncio.Future[View]]] = {}

    async def get(self, job_id: str) -> View:
        """The job's view: the read under way or one started at most ``max_age`` ago, else a new one.
        A read that fails fails for everyone waiting on it, and is not kept."""
        if self._max_age <= 0:
            return await self._read(job_id)
        now = self._clock()
        entry = self._entries.get(job_id)
        if entry is not None and (not entry[1].done() or now - entry[0] <= self._max_age):
            return await asyncio.shield(entry[1])
        future = asyncio.ensure_future(self._read(job_id))
        self._entries[job_id] = (now, future)
        future.add_done_callback(lambda done: self._settled(job_id, done))
        if len(self._entries) > self.MAX_JOBS:
            self._prune(now)
        return await asyncio.shield(future)

    def forget(self, job_id: str) -> None:
        """Drop the job's kept answer: the next ask reads it again (after a change made here)."""
        self._entries.pop(job_id, None)

    def _settled(self, job_id: str, done: asyncio.Future[View]) -> None:
        if done.cancelled() or done.exception() is not None:
            entry = self._entries.get(job_id)
            if entry is not None and entry[1] is done:
                del self._entries[job_id]

    def _prune(self, now: float) -> None:
        for job_id, (at, future) in list(self._entries.items()):
            if future.done() and now - at > self._max_age:
                del self._entries[job_id]
