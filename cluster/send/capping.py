"""A job's runner's side of frequency caps (``ulak.caps``): each batch of messages it hands to a bind
is checked and counted in one round trip, and a message past its recipient's cap waits or ends.

A capped message of a ``defer`` job leaves the runner's queue and waits as a row number until the
cap lets it go (``cluster.send.deferred``); then it is read again and checked again: a cap another
job filled meanwhile holds it longer. A message the cap would hold past its validity
(``validity_minutes`` from when it was first held), and every capped message of a ``refuse`` job,
ends as ``frequency_capped``, a final state in the ledger like a refusal's.
"""

from __future__ import annotations

from collections.abc import Sequence

from cluster.send.deferred import CAP, Deferred
from cluster.send.job import Job
from cluster.send.rows import Row
from ingest.collect import ACCEPTED_FILE
from ulak.caps import Gate
from ulak.smpp.codec import destination_of

CAPPED = "frequency_capped"  # the reason a refused row ends with (its ledger's stopped_<reason>)


class Capping:
    """One job's frequency caps (see the module docstring)."""

    def __init__(self, job: Job, deferred: Deferred) -> None:
        self.job = job
        self.deferred = deferred
        options = job.options
        self.mode = options.capping()
        commercial = options.category == "commercial"
        rules = (
            job.settings.frequency_caps.rules(brand=options.brand, commercial=commercial) if self.mode else ()
        )
        self.gate = (
            Gate(
                job.client,
                rules,
                job_id=job.job_id,
                brand=options.brand,
                commercial=commercial,
                keep=job.settings.frequency_caps.longest(),
            )
            if rules
            else None
        )

    def admit(self, name: str, messages: list[Row], refused: list[tuple[str, int, int, str]]) -> list[Row]:
        """The messages of *messages* (about to be handed to a bind of operator *name*) within every
        cap, counted; the others are deferred, or put in *refused* as (operator, row, parts, reason).
        A started message (its first part sent) is always let through: its parts belong together."""
        gate = self.gate
        if gate is None or not messages:
            return messages
        fresh = [i for i, m in enumerate(messages) if m[0].part == 1]
        now = self.job.clock.time()
        capped = gate.admit([(destination_of(messages[i][0].pdu), messages[i][0].row) for i in fresh], now)
        if not capped:
            return messages
        out_of = {fresh[i]: at for i, at in capped.items()}
        admitted: list[Row] = []
        for i, message in enumerate(messages):
            at = out_of.get(i)
            if at is None:
                admitted.append(message)
                continue
            row = message[0].row
            if self.mode == "refuse" or not self.deferred.hold(row, at, now=now, why=CAP):
                refused.append((name, row, message[0].parts, CAPPED))
        return admitted

    def release(self, messages: Sequence[Row]) -> None:
        """Give back the count of messages taken back from the binds unsent (a pause, the window
        closing, a cancel): until handed again they have not reached anyone."""
        if self.gate is not None:
            fresh = [m[0] for m in messages if m and m[0].part == 1]
            self.gate.release([(destination_of(p.pdu), p.row) for p in fresh])


def capped_now(job: Job) -> int | None:
    """How many of the job's prepared rows their frequency cap would hold if they went now (a dry
    run's ``frequency_capped``; None: the job is not capped). Only looks: nothing is counted."""
    capping = Capping(job, Deferred())
    if capping.gate is None:
        return None
    rows_file = job.directory.parquet(ACCEPTED_FILE)
    capped = 0
    now = job.clock.time()
    for batch in rows_file.iter_batches(batch_size=5000, columns=["msisdn", "row"]):
        numbers: list[str] = batch.column("msisdn").to_pylist()
        rows: list[int] = batch.column("row").to_pylist()
        capped += len(capping.gate.admit(list(zip(numbers, rows, strict=True)), now, record=False))
    return capped
