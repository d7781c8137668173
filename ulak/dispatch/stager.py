"""A bind's parts between its queue and the wire: the one owner of where each of them stands.

A part taken from the bind's queue is, until its PDU is written to the socket, in exactly one of:

* **staging**: in a batch whose send-record write is under way (``ulak.dispatch.sendrecord``: nothing
  is sent before it is recorded);
* **staged**: recorded, next to go, in order;
* **returned**: sent, and answered ESME_RTHROTTLED or ESME_RMSGQFUL: the SMSC does not have it, and it
  goes again, before anything staged, in the order it was first sent.

Returned parts wait apart until the next send because their answers can come in any order and over
several reads: put back one by one at the front of the staged ones, two throttled in a row went out
again reversed (issue 14, item 11). Each is kept with its send order (the submit_sm's sequence
number) and they rejoin the front sorted by it.

A withdraw (pause, cancel, a runner taking a job back) takes a job's parts from all three; what is on
the wire is the session's, and stays there until it is answered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

SEQUENCE_SPAN = 1 << 31  # SMPP sequence numbers run 1..0x7FFFFFFF, then wrap


class _Part(Protocol):
    @property
    def job(self) -> str: ...


P = TypeVar("P", bound=_Part)


class Stager(Generic[P]):
    """Staging, staged and returned parts of one bind (see the module docstring)."""

    def __init__(self) -> None:
        self.staged: deque[P] = deque()  # the send path pops from here directly: never replaced
        self.staging: list[P] = []
        self._returned: list[tuple[int, P]] = []

    def __len__(self) -> int:
        return len(self.staged) + len(self.staging) + len(self._returned)

    @property
    def ready(self) -> int:
        """Parts that may be sent now (staged or returned)."""
        return len(self.staged) + len(self._returned)

    def begin(self, parts: list[P]) -> None:
        """*parts* are being recorded (``staging``); :meth:`commit` or :meth:`abort` follows."""
        self.staging = parts

    def commit(self) -> None:
        """The record write succeeded: what a withdraw left of the batch is staged."""
        self.staged.extend(self.staging)
        self.staging = []

    def abort(self) -> list[P]:
        """The record write failed: the batch (what a withdraw left of it), to go back to the queue."""
        parts, self.staging = self.staging, []
        return parts

    def returned(self, sequence: int, part: P) -> None:
        """*part*, sent as *sequence*, was answered "slow down": it goes again before the staged ones."""
        self._returned.append((sequence, part))

    def front(self, parts: Iterable[P]) -> None:
        """*parts* (in their order) go before everything else (at-least-once resends of lost ones)."""
        self.merge()
        self.staged.extendleft(reversed(list(parts)))

    def merge(self) -> None:
        """Put the returned parts in front of the staged ones, in the order they were first sent."""
        if not self._returned:
            return
        returned, self._returned = self._returned, []
        first = returned[0][0]
        # Sorted by distance from the first one's sequence, so a wrap (0x7FFFFFFF → 1) inside one
        # window keeps the order: a window's sequences lie within far less than half the span.
        returned.sort(key=lambda r: (r[0] - first + SEQUENCE_SPAN // 2) % SEQUENCE_SPAN)
        self.staged.extendleft(reversed([p for _, p in returned]))

    def withdraw(self, job: str) -> list[P]:
        """Take *job*'s parts out, in their sending order (returned ones first)."""
        self.merge()
        taken = [p for p in self.staged if p.job == job]
        if taken:  # in place: the send path holds this deque
            kept = [p for p in self.staged if p.job != job]
            self.staged.clear()
            self.staged.extend(kept)
        staging = [p for p in self.staging if p.job == job]
        if staging:
            taken += staging
            self.staging[:] = [p for p in self.staging if p.job != job]
        return taken

    def count(self, job: str) -> int:
        """*job*'s parts here."""
        return (
            sum(1 for p in self.staged if p.job == job)
            + sum(1 for p in self.staging if p.job == job)
            + sum(1 for _, p in self._returned if p.job == job)
        )

    def unsettled(self) -> list[P]:
        """Every part here (what the send record must hold of them)."""
        return [*self.staging, *(p for _, p in self._returned), *self.staged]
