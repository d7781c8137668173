"""A job's runner's side of refusals (``ulak.refusals``): rows whose recipient refused after ingest
are never handed to a bind.

Each batch of rows the runner reads is checked against the opt-out lists and consent records as
they are now (one round trip a batch: ``RowCheck``), so a job paused for a day, scheduled for
tonight or waiting for its A/B winner sends nothing to who refused meanwhile. It reads the
refusals stream at every poll of the job's state, whatever the state, and each message it has read
is checked against every refusal read since as it is handed to a bind (``why_not``). A row
stopped so is written to its ledger as ``RowStopped`` (final: ``opted_out`` or ``no_consent``,
with the time). The binds do the same for what they hold (``ulak.dispatch.refusing``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from cluster.send.job import Job
from ulak.dispatch.ledger import RedisLedger, RowStopped
from ulak.dispatch.part import OutboundPart
from ulak.refusals import Follower, Matcher, Recent, RowCheck, Scope
from ulak.smpp.codec import destination_of


class Stops:
    """One job's refusals, as its runner checks them (see the module docstring)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        options = job.options
        self.scope = Scope(
            brand=options.brand,
            commercial=options.category == "commercial",
            optouts=not options.confirms_optout,
        )
        self.check = RowCheck(job.client, self.scope)
        self.follower = Follower()
        # Every refusal read since the runner started (not only the last minutes, as a bind keeps:
        # a paused job holds its messages here for as long as the pause lasts).
        self.seen = Recent(keep=math.inf)
        self.matcher: Matcher | None = None
        self.stopped = 0

    def refused(self, numbers: Sequence[str]) -> dict[int, str]:
        """Index in *numbers* -> why, for each number the job may no longer send to."""
        return self.check.refused(numbers)

    def follow(self) -> None:
        """Read the refusals recorded since the last call (at every poll of the job's state)."""
        refusals = self.follower.read(self.job.client)
        if refusals:
            self.seen.add(refusals)
            matcher = self.seen.matcher(self.scope)
            self.matcher = matcher if matcher else None

    def why_not(self) -> Callable[[Sequence[OutboundPart]], str | None] | None:
        """What a message about to be handed to a bind is checked with (None: nothing to check)."""
        matcher = self.matcher
        if matcher is None:
            return None
        return lambda message: self.why(matcher, message)

    @staticmethod
    def why(matcher: Matcher, message: Sequence[OutboundPart]) -> str | None:
        """Why *message* may not go (None: it may), if it is not started (its first part in it)."""
        first = message[0]
        if first.part != 1:
            return None  # started: its parts belong together
        return matcher.kind_of(destination_of(first.pdu))

    def record(self, stops: Sequence[tuple[str, int, int, str]]) -> None:
        """Write each (operator, row, parts, reason) stopped to its operator's ledger."""
        if not stops:
            return
        at_ms = int(self.job.clock.time() * 1000)
        ledgers = self.job.reader().ledgers
        by_ledger: dict[str, list[RowStopped]] = {}
        for op, row, parts, reason in stops:
            by_ledger.setdefault(ledgers.get(op, op), []).append(
                RowStopped(self.job.job_id, row, parts, reason, at_ms)
            )
        for ledger, events in by_ledger.items():
            RedisLedger(self.job.client, ledger=ledger).apply_in_batches(events)
        self.stopped += len(stops)
        self.job.log.info("rows.stopped", rows=len(stops), by="runner")
