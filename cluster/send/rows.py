"""A job's rows as the binds take them: read from its rows file a batch at a time and planned into
parts (skipping what the ledger has seen sent, for a resumed job), in the order an A/B test wants
them (a test slice, then the winner's; or each variant at its send time); and the messages read
but not yet handed to a bind (:class:`Pending`), which a pause takes back."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cluster.send import winner
from cluster.send.job import Job, Pool
from cluster.send.progress import Progress
from cluster.send.sendtimes import PLAN_FILE, planned_times
from cluster.send.stops import Stops
from ingest.collect import ACCEPTED_FILE
from ulak import keys
from ulak.dispatch.message import PlanCache, SubmitBodies, relative_validity
from ulak.dispatch.part import OutboundPart, outbound_part
from ulak.records import SurveyAsked
from ulak.variants import REST

Row = list[OutboundPart]  # a message: its parts, always handed to one bind together
# Checks a batch of messages about to be handed to operator *name*'s bind: returns those that may
# go, holds or puts in the list (operator, row, parts, reason) the others (``Pending.take``).
Gate = Callable[[str, list[Row], list[tuple[str, int, int, str]]], list[Row]]


class RowReader:
    """The job's rows as parts (see the module docstring)."""

    def __init__(self, job: Job, progress: Progress, stops: Stops) -> None:
        self.job = job
        self.progress = progress
        self.stops = stops

    def read(self, *, skip_sent: bool) -> Iterator[dict[str, list[Row]] | None]:
        """The job's messages as parts, per operator, a file batch at a time (in row order). Test
        then winner: the test slice first, then None while the winner is not known yet (the caller
        keeps steering and feeding), then the rest with the winner's text (``cluster.send.winner``)."""
        if self.job.options.send_time == "optimized":
            yield from self._planned(skip_sent=skip_sent)
            return
        if self.job.options.test_share is None:
            yield from self._timed(skip_sent=skip_sent)
            return
        yield from self._file(skip_sent=skip_sent, rest=False)
        while self.job.store.record(self.job.job_id).winner is None:
            if not self._decide_now():
                yield None
        yield from self._file(skip_sent=skip_sent, rest=True)

    def again(self, rows: set[int]) -> Iterator[dict[str, list[Row]]]:
        """Only *rows* (deferred by a frequency cap, ``cluster.send.capping``), skipping what the
        ledger has seen sent of them."""
        yield from self._file(skip_sent=True, rest=None, rows=rows)

    def _timed(self, *, skip_sent: bool) -> Iterator[dict[str, list[Row]] | None]:
        """Every row; in a send-time test, each variant's rows once its ``send_at`` has come (None
        until then, so the caller keeps steering: pause and cancel work while it waits)."""
        groups = self.job.options.send_times()
        if not groups:
            yield from self._file(skip_sent=skip_sent, rest=None)
            return
        for at, names in groups:
            while self.job.clock.time() < at:
                when = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
                self.progress.say_waiting(
                    f"A/B send-time test: variant {', '.join(names)} is sent from {when}"
                )
                yield None
            yield from self._file(skip_sent=skip_sent, rest=None, only=set(names))

    def _planned(self, *, skip_sent: bool) -> Iterator[dict[str, list[Row]] | None]:
        """An optimised job: the rows of each planned time once it has come (``cluster.send.sendtimes``;
        None until then, so the caller keeps steering). A time passed while the job was paused or
        its runner away is read at once."""
        if not self.job.directory.exists(PLAN_FILE):  # prepared by a version that did not plan
            self.job.log.warning("sendtimes.no_plan", hint="sent as soon as it may, without optimised times")
            yield from self._timed(skip_sent=skip_sent)
            return
        plan = planned_times(self.job.directory)
        times, counts = np.unique(plan, return_counts=True)
        left = int(counts.sum())
        for at, n in zip(times.tolist(), counts.tolist(), strict=True):
            while self.job.clock.time() < at:
                when = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
                self.progress.say_waiting(
                    f"send-time optimisation: {left:,} recipients wait for their hour; the next {n:,} "
                    f"go at {when}"
                )
                yield None
            self.progress.say_waiting("")
            yield from self._file(skip_sent=skip_sent, rest=None, slot=(plan, at))
            left -= n

    def _decide_now(self) -> bool:
        """Pick the winner if the decision period is over (and say when it will be, while not)."""
        decide_at = self.job.store.record(self.job.job_id).decide_at
        if decide_at is None:
            decide_at = self.job.clock.time() + self.job.options.decide_after_minutes * 60
            self.job.store.update(self.job.job_id, decide_at=round(decide_at, 3))
        if self.job.clock.time() < decide_at:
            when = datetime.fromtimestamp(decide_at, UTC).isoformat(timespec="seconds")
            by = self.job.options.winner_by
            self.progress.say_waiting(
                f"A/B test: the test slice is sent; the winner (by {by}) is picked at {when}"
            )
            return False
        decision = winner.decide(
            self.job.client,
            self.job.job_id,
            self.job.directory,
            options=self.job.options,
            ledgers=self.job.reader().ledgers,
        )
        delta = winner.rewrite(self.job.directory, decision["winner"])
        if delta:
            self.job.client.hincrby(keys.job_counters(self.job.job_id), "parts_total", delta)
        self.job.store.update(
            self.job.job_id, decision=json.dumps(decision), winner=decision["winner"], waiting=""
        )
        self.progress.waiting = ""
        self.job.log.info(
            "job.winner", winner=decision["winner"], by=decision["by"], variants=decision["variants"]
        )
        return True

    def _file(
        self,
        *,
        skip_sent: bool,
        rest: bool | None,
        only: set[str] | None = None,
        rows: set[int] | None = None,
        slot: tuple[np.ndarray[Any, Any], int] | None = None,
    ) -> Iterator[dict[str, list[Row]]]:
        """The rows of the rows file as parts (*rest*: only the rest, or only the test slice; None:
        all; *only*: only these variants' rows; *rows*: only these rows; *slot*: (each row's planned
        time, in file order; a time): only the rows planned for that time)."""
        operators = {op.name: op for op in self.job.settings.operators}
        opts = self.job.options
        validity = relative_validity(opts.validity_minutes) if opts.validity_minutes else ""
        job_id = self.job.job_id
        plans = PlanCache()
        bodies = SubmitBodies(source_addr=opts.sender, validity_period=validity)
        senders = {  # an A/B test's variants with a sender of their own
            v.name: SubmitBodies(source_addr=v.sender, validity_period=validity)
            for v in opts.variants or ()
            if v.sender is not None
        }
        rows_file = self.job.directory.parquet(ACCEPTED_FILE)
        with_variants = "variant" in rows_file.schema_arrow.names
        with_encodings = "encoding" in rows_file.schema_arrow.names  # ingest's choice, when it says
        offset = 0
        for whole in rows_file.iter_batches(batch_size=self.job.settings.jobs.batch_rows):
            batch = whole
            if slot is not None:
                planned, at = slot
                batch = whole.filter(pa.array(planned[offset : offset + whole.num_rows] == at))
                offset += whole.num_rows
                if not batch.num_rows:
                    continue
            if rest is not None:
                is_rest = pc.fill_null(pc.equal(whole.column("phase"), REST), False)
                batch = whole.filter(is_rest if rest else pc.invert(is_rest))
            if only is not None:
                batch = batch.filter(pc.is_in(batch.column("variant"), pa.array(sorted(only))))
            if rows is not None:
                batch = batch.filter(
                    pc.is_in(batch.column("row"), pa.array(sorted(rows), batch.column("row").type))
                )
                if not batch.num_rows:
                    continue
            sent = self._sent_parts(batch) if skip_sent else None
            out: dict[str, list[Row]] = {}
            nothing = [None] * batch.num_rows
            variants = batch.column("variant").to_pylist() if with_variants else nothing
            encodings = batch.column("encoding").to_pylist() if with_encodings else nothing
            numbers: list[str] = batch.column("msisdn").to_pylist()
            # Refused since ingest (ulak.refusals): stopped here, unless a part of it was sent.
            refused = self.stops.refused(numbers)
            stops: list[tuple[str, int, int, str]] = []
            op_names: list[str] = batch.column("operator").to_pylist()
            texts: list[str] = batch.column("text").to_pylist()
            counts: list[int] = batch.column("parts").to_pylist()
            # The one-part GSM texts' septets, for the whole batch at once (SubmitBodies.septets_of)
            septets = SubmitBodies.septets_of(
                texts,
                [operators[name] for name in op_names],
                [e if n == 1 else None for e, n in zip(encodings, counts, strict=True)],
            )
            for i, row, msisdn, op_name, text, encoding, variant, n, units in zip(
                range(batch.num_rows),
                batch.column("row").to_pylist(),
                numbers,
                op_names,
                texts,
                encodings,
                variants,
                counts,
                septets,
                strict=True,
            ):
                if i in refused and (sent is None or not any((row, p) in sent for p in range(1, n + 1))):
                    stops.append((op_name, row, n, refused[i]))
                    continue
                op = operators[op_name]
                encoder = senders.get(variant, bodies)
                one = None
                if n == 1 and encoding is not None:  # ingest found one part: no plan needed
                    one = encoder.one_part(
                        text, op, encoding=encoding, destination=msisdn, bind=op.binds[0], septets=units
                    )
                if one is not None:
                    pdus = [one]
                else:
                    message = plans.plan(text, op, row=row, encoding=encoding)
                    pdus = encoder.parts(message, destination=msisdn, bind=op.binds[0])
                items = [
                    outbound_part(job_id, row, i, len(pdus), pdu)
                    for i, pdu in enumerate(pdus, 1)
                    if sent is None or (row, i) not in sent
                ]
                if items:
                    out.setdefault(op_name, []).append(items)
            self.stops.record(stops)
            yield out

    def _sent_parts(self, batch: pa.RecordBatch) -> set[tuple[int, int]]:
        """Which (row, part) of *batch* the ledger has seen sent (in any state)."""
        return {(row, part) for (_, row, part, _), v in self.part_states(batch) if v is not None}

    def part_states(self, batch: pa.RecordBatch) -> list[tuple[tuple[str, int, int, int], bytes | None]]:
        """Each part of *batch*'s rows, as (operator, row, part, parts), with its state in the ledger
        (None: never seen sent), read in one round trip (``LedgerReader.fields``)."""
        rows: list[int] = batch.column("row").to_pylist()
        counts: list[int] = batch.column("parts").to_pylist()
        ops: list[str] = batch.column("operator").to_pylist()
        names = [
            [f"{keys.row_field(r)}:{p}" for p in range(1, n + 1)] for r, n in zip(rows, counts, strict=True)
        ]
        values = self.job.reader().fields(ops, rows, names)
        return [
            ((op, row, part, n), value)
            for op, row, n, found in zip(ops, rows, counts, values, strict=True)
            for part, value in enumerate(found, 1)
        ]

    def index_survey(self) -> None:
        """Make this job the most recent survey of each of its recipients, for replies to its
        reply_to (``keys.survey_index``): from when it first began sending, for its window. Done
        again by a resumed runner: the same values."""
        survey, reply_to = self.job.options.survey, self.job.options.survey_reply_to()
        assert survey is not None and reply_to is not None
        self.job.client.hsetnx(keys.job(self.job.job_id), "survey_since", f"{time.time():.3f}")
        since = self.job.store.record(self.job.job_id).survey_since
        assert since is not None  # set just above
        asked = SurveyAsked(self.job.job_id, float(since), survey.window_hours * 3600, survey.kind)
        value = asked.write(since=since)
        rows_file = self.job.directory.parquet(ACCEPTED_FILE)
        key = keys.survey_index(reply_to)
        for batch in rows_file.iter_batches(batch_size=10_000, columns=["msisdn"]):
            numbers = batch.column("msisdn").to_pylist()
            if numbers:
                self.job.client.hset(key, mapping=dict.fromkeys(numbers, value))
        self.job.log.info("job.survey_indexed", reply_to=reply_to, rows=rows_file.metadata.num_rows)


class Pending:
    """The job's messages read from its rows file and not yet handed to a bind, per operator, with
    their part count kept in step (a count kept apart once lost the parts a pause took back)."""

    def __init__(self, operators: Iterable[str]) -> None:
        self._queues: dict[str, deque[Row]] = {name: deque() for name in operators}
        self.parts = 0

    def operators(self) -> list[str]:
        """The operators with messages waiting."""
        return [name for name, queue in self._queues.items() if queue]

    def waiting(self, name: str) -> bool:
        """Whether *name* has messages waiting."""
        return bool(self._queues[name])

    def wants_more(self, low: int) -> bool:
        """Whether some operator has fewer than *low* messages waiting (time to read more rows)."""
        return any(len(q) < low for q in self._queues.values())

    def extend(self, name: str, rows: list[Row]) -> None:
        self._queues[name].extend(rows)
        self.parts += sum(len(r) for r in rows)

    def put_back(self, name: str, rows: list[Row]) -> None:
        """Messages taken back from a bind go first again, in their order."""
        self._queues[name].extendleft(reversed(rows))
        self.parts += sum(len(r) for r in rows)

    def take_back(
        self, pool: Pool, job_id: str, *, weight: float, release: Callable[[list[Row]], None] | None = None
    ) -> None:
        """Withdraw the job's queued parts from every bind, back to the front of these; a message
        whose first part is already sent goes back to its bind to be finished. *release* is given
        the messages taken back unsent (their frequency caps' counts: ``cluster.send.capping``)."""
        for ref, parts in pool.withdraw(job_id):
            if not parts:
                continue
            keep, finish = split_started(parts)
            if finish:
                pool.enqueue(ref, finish, weight=weight)
            if release is not None and keep:
                release(keep)
            self.put_back(ref.operator, keep)

    def take(
        self,
        name: str,
        limit: int,
        *,
        why: Callable[[Row], str | None] | None = None,
        stopped: list[tuple[str, int, int, str]] | None = None,
        gate: Gate | None = None,
    ) -> list[OutboundPart]:
        """Whole messages from the front, about *limit* parts (a message is never split). With
        *why*, a message it names a reason for is not taken but put in *stopped* as (operator, row,
        parts, reason): checked as it leaves, not by scanning what waits (200,000 parts held while
        refusals came at 20 a second cost the job's actor six times its CPU). With *gate* (the
        frequency caps: ``cluster.send.capping``), the messages taken are checked as one batch and
        only those it lets through are handed; the others it defers or puts in *stopped*."""
        queue = self._queues[name]
        messages: list[Row] = []
        size = 0
        while queue and (not messages or size + len(queue[0]) <= limit):
            message = queue.popleft()
            self.parts -= len(message)
            if why is not None and (reason := why(message)) is not None:
                assert stopped is not None
                stopped.append((name, message[0].row, message[0].parts, reason))
                continue
            messages.append(message)
            size += len(message)
        if gate is not None and messages:
            assert stopped is not None
            messages = gate(name, messages, stopped)
        return [part for message in messages for part in message]


def split_started(parts: list[OutboundPart]) -> tuple[list[Row], list[OutboundPart]]:
    """Withdrawn parts as (messages not started, parts finishing started messages)."""
    rows: dict[int, Row] = {}
    for p in parts:
        rows.setdefault(p.row, []).append(p)
    keep: list[Row] = []
    finish: list[OutboundPart] = []
    for row_parts in rows.values():
        row_parts.sort(key=lambda p: p.part)
        if row_parts[0].part == 1:
            keep.append(row_parts)
        else:
            finish.extend(row_parts)
    return keep, finish
