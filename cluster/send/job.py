"""The job a runner drives, as each part of the runner reads it: its id, the settings, Redis, its
store, options, folder and ledgers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from cluster.jobs.options import JobOptions
from cluster.jobs.store import JobStore
from cluster.send.pool import BindRef, Take
from ulak.clock import Clock, SystemClock
from ulak.dispatch.ledger import LedgerReader
from ulak.dispatch.part import OutboundPart
from ulak.jobfiles import JobDir
from ulak.refusals import Scope
from ulak.settings import Settings


@dataclass
class Job:
    job_id: str
    settings: Settings
    redis_url: str
    client: redis.Redis
    store: JobStore
    options: JobOptions
    directory: JobDir
    log: Any
    clock: Clock = field(default_factory=SystemClock)
    _reader: LedgerReader | None = field(default=None, repr=False)

    def reader(self) -> LedgerReader:
        """The job's ledgers, as its record names them once it is prepared (read once)."""
        if self._reader is None:
            self._reader = self.store.reader(self.job_id)
        return self._reader


class Pool(Protocol):
    """What the runner asks of the binds (``cluster.send.pool.BindPool``; the tests' ``FakePool``)."""

    def feed(
        self, job: str, operators: list[str], take: Take, *, weight: float = 1.0, scope: Scope | None = None
    ) -> int: ...

    def enqueue(self, ref: BindRef, parts: list[OutboundPart], *, weight: float = 1.0) -> None: ...

    def withdraw(self, job: str) -> list[tuple[BindRef, list[OutboundPart]]]: ...

    def pending(self, job: str) -> int: ...

    def queued(self, job: str) -> int: ...

    def describe(self) -> dict[str, list[dict[str, Any]]]: ...

    def recover(self) -> tuple[list[BindRef], list[BindRef]]: ...

    def close(self) -> None: ...
