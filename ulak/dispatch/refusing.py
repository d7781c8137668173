"""A bind's side of refusals (``ulak.refusals``): the messages it holds for numbers that refused since
their job's runner checked them are never sent.

Two moments matter. When the stream names new refusals, the bind drops every queued message of
those numbers whose first part is still queued (one whose first part went is finished: its parts
belong together) in the jobs they concern (each job's ``Scope``). And a batch given to the bind
later may hold a row its runner read before the refusal: it is checked against the refusals named
in the last ``refusals.RECENT`` seconds. Either way the bind writes a ``RowStopped`` for each row
dropped, through its ledger writer like every other event, so the row ends ``opted_out`` or
``no_consent`` with the time. Plain Python, no I/O: the send path calls it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ulak.dispatch.fairqueue import FairQueue
from ulak.dispatch.ledger import RowStopped
from ulak.dispatch.part import OutboundPart
from ulak.refusals import Matcher, Recent, Refusal, Scope
from ulak.smpp.codec import destination_of

UNSCOPED = Scope()  # a job the bind was given no scope for: the global opt-out list only


class RefusalGuard:
    """The jobs' scopes and the refusals named lately, for one bind (see the module docstring)."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time
    ) -> None:
        self.recent = Recent(clock=clock)
        self._scopes: dict[str, Scope] = {}
        self._wall = wall
        self.stopped = 0  # rows this bind stopped (describe, /metrics)

    def set_scope(self, job: str, scope: Scope | None) -> None:
        if scope is not None:
            self._scopes[job] = scope

    def admit(self, parts: list[OutboundPart]) -> tuple[list[OutboundPart], list[RowStopped]]:
        """*parts* (whole messages, as a runner hands them) without the rows of numbers refused
        lately, and a ``RowStopped`` for each row left out."""
        if not self.recent or not parts:
            return parts, []
        matchers: dict[str, Matcher] = {}
        stop: dict[tuple[str, int], str] = {}
        for p in parts:
            if p.part != 1:
                continue
            matcher = matchers.get(p.job)
            if matcher is None:
                matcher = matchers[p.job] = self.recent.matcher(self._scopes.get(p.job, UNSCOPED))
            if matcher and (kind := matcher.kind_of(destination_of(p.pdu))):
                stop[(p.job, p.row)] = kind
        if not stop:
            return parts, []
        kept = [p for p in parts if (p.job, p.row) not in stop]
        return kept, self._events(parts, stop)

    def purge(self, queue: FairQueue[OutboundPart], refusals: list[Refusal]) -> list[RowStopped]:
        """Drop from *queue* the messages not started of the numbers *refusals* name (each in the
        jobs it concerns); a ``RowStopped`` for each row dropped. Remembers *refusals* for
        :meth:`admit`."""
        self.recent.add(refusals)
        events: list[RowStopped] = []
        for job in list(queue.jobs()):
            matcher = Matcher.of(refusals, self._scopes.get(job, UNSCOPED))
            if not matcher:
                continue
            stop: dict[tuple[str, int], str] = {}
            for p in queue.of(job):
                if p.part == 1 and (kind := matcher.kind_of(destination_of(p.pdu))):
                    stop[(job, p.row)] = kind
            if stop:
                rows = set(stop)
                dropped = queue.remove(job, lambda p: (p.job, p.row) in rows)  # noqa: B023 (called here)
                events += self._events(dropped, stop)
        return events

    def _events(self, parts: list[OutboundPart], stop: dict[tuple[str, int], str]) -> list[RowStopped]:
        at_ms = int(self._wall() * 1000)
        seen: dict[tuple[str, int], int] = {}
        for p in parts:
            if (p.job, p.row) in stop:
                seen[(p.job, p.row)] = p.parts
        self.stopped += len(seen)
        return [RowStopped(job, row, n, stop[(job, row)], at_ms) for (job, row), n in seen.items()]

    def forget(self, job: str) -> None:
        self._scopes.pop(job, None)
