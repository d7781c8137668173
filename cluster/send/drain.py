"""The end of a job's sending: take it back from every bind until none holds any of it, wait for the
answers and receipts, and give every row a final state (``reconcile``) before the job is done."""

from __future__ import annotations

import contextlib
import time

from cluster.jobs.states import InvalidTransition, JobEvent, JobState
from cluster.jobs.views import RECEIPT_OUTCOMES, stopped
from cluster.reports.summary import warm
from cluster.send.job import Job, Pool
from cluster.send.progress import Progress
from cluster.send.rows import RowReader
from ingest.collect import ACCEPTED_FILE
from ulak import keys
from ulak.dispatch.ledger import Event, PartUnknown, RedisLedger
from ulak.records import PartState


class Drain:
    """Draining and settling one job (see the module docstring)."""

    def __init__(self, job: Job, *, pool: Pool, progress: Progress, rows: RowReader, poll: float) -> None:
        self.job, self.pool, self.progress, self.rows, self.poll = job, pool, progress, rows, poll

    def withdraw_all(self) -> None:
        """Take the job's queued parts back from every bind, discarding them; each bind writes its
        ledger events first, so afterwards the ledger holds every part of the job sent so far."""
        self.pool.withdraw(self.job.job_id)

    def quiesce(self) -> None:
        """Take the job back from every bind until none holds any of it, so that the ledger then
        has the outcome of every part that was sent.

        One withdraw is not enough: the parts on the wire at that moment are answered later, and one
        answered "slow down" goes back into its bind's queue (and its send out of the ledger). So:
        withdraw, wait for the answers, withdraw again, until nothing is pending; the last withdraw
        also writes the binds' last events."""
        deadline = time.monotonic() + self.job.settings.jobs.drain_timeout
        while True:
            self.withdraw_all()
            if not self.pool.pending(self.job.job_id):
                self.withdraw_all()
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the binds did not answer this job's parts in flight within "
                    f"{self.job.settings.jobs.drain_timeout:g} s (jobs.drain_timeout)"
                )
            time.sleep(0.05)

    def drain(self) -> None:
        """Wait for every part's answer, then for receipts (up to ``jobs.receipt_wait`` of quiet)."""
        deadline = time.monotonic() + self.job.settings.jobs.drain_timeout
        while self.pool.pending(self.job.job_id):
            if time.monotonic() > deadline:
                self.job.store.fail(
                    self.job.job_id,
                    code="drain_timeout",
                    message="the binds did not answer every part within "
                    f"{self.job.settings.jobs.drain_timeout:g} s (jobs.drain_timeout)",
                )
                return
            self.progress.maybe_sample()
            time.sleep(0.05)
        self.quiesce()
        if self.reconcile():
            # Parts never sent, in no bind (a bind lost them before they left): send them, as a
            # resumed runner would; the job drains again after.
            with contextlib.suppress(InvalidTransition):
                self.job.store.transition(self.job.job_id, JobEvent.PARTS_LEFT)
            return
        quiet_since = time.monotonic()
        last = -1
        while True:
            c = self.job.store.counters(self.job.job_id)
            received = sum(c[o] for o in RECEIPT_OUTCOMES)
            if received != last:
                last, quiet_since = received, time.monotonic()
            if received >= c["acked"] or time.monotonic() - quiet_since > self.job.settings.jobs.receipt_wait:
                break
            if self.job.store.state(self.job.job_id) is not JobState.DRAINING:
                return
            self.progress.maybe_sample()
            time.sleep(self.poll)
        try:
            self.job.store.transition(self.job.job_id, JobEvent.SETTLED)
        except InvalidTransition:
            return
        self.progress.sample()
        self.job.log.info("job.done", **{k: c[k] for k in ("submitted", "acked", "failed", "delivered")})
        try:
            # Its summary's snapshot now, while nobody waits for it: the first read is then quick.
            warm(self.job.store, self.job.job_id, self.job.directory)
        except Exception as exc:  # the first summary read takes the snapshot instead
            self.job.log.warning("summary.warm_failed", error=f"{type(exc).__name__}: {exc}")

    def reconcile(self, *, cancelled: bool = False) -> int:
        """Before a job is done, every row must have a final state. With nothing left in any bind,
        a part the ledger has seen sent without an outcome may have reached the SMSC: it becomes
        ``unknown`` (never sent twice). Returns how many parts were never sent at all, which the
        caller sends. The counters say whether there is anything to look for, so a job whose figures
        add up costs no scan of its rows. For a *cancelled* job, a started row's parts never sent
        (the rest of a message the cancel cut, a bind lost meanwhile) make it ``unknown`` too: its
        recipient may have part of it."""
        c = self.job.store.counters(self.job.job_id)
        in_flight = c["submitted"] - c["acked"] - c["failed"] - c["unknown"]
        unsent = c["accepted"] - c["submitted"] - stopped(c)
        if in_flight <= 0 and unsent <= 0:
            return 0
        lost: dict[str, list[Event]] = {}  # per operator: each has its own ledger
        never = 0
        rows_file = self.job.directory.parquet(ACCEPTED_FILE)
        columns = ["row", "parts", "operator"]
        reader = self.job.reader()
        for batch in rows_file.iter_batches(batch_size=self.job.settings.jobs.batch_rows, columns=columns):
            states = self.rows.part_states(batch)
            started: set[int] = set()
            if cancelled:
                rows: list[int] = batch.column("row").to_pylist()
                ops: list[str] = batch.column("operator").to_pylist()
                row_states = reader.fields(ops, rows, [[keys.row_field(r)] for r in rows])
                sent = PartState.SENT.encode()
                started = {r for r, v in zip(rows, row_states, strict=True) if v[0] == sent}
            for (op, row, part, parts), value in states:
                if value == PartState.SENT.encode() or (value is None and row in started):
                    lost.setdefault(op, []).append(PartUnknown(self.job.job_id, row, part, parts))
                elif value is None:
                    never += 1
        for op, events in lost.items():
            RedisLedger(self.job.client, ledger=reader.ledgers.get(op, op)).apply_in_batches(events)
        unknown = sum(len(events) for events in lost.values())
        if unknown or never:
            self.job.log.warning("job.reconciled", unknown=unknown, unsent=never)
        return never
