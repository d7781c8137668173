"""What a job's actor does: ingest the upload, feed its rows to the binds, wait for answers and receipts.

:class:`JobRunner` is restartable from Redis alone. Everything it needs to continue is there or in the
job's directory: the state, the prepared rows (``accepted.parquet``, written once by ingest), and the
ledger, which records every part a bind has sent. A runner that finds a job already sending first takes
the job's queued parts back from every bind (which also writes the binds' pending ledger events), then
skips every part the ledger knows: nothing submitted is submitted again, nothing unsent is lost.

Pause and cancel arrive as state changes made by the API; the runner polls the state every ``poll``
seconds (0.2 s) and takes the job's queued parts back from the binds, so the binds stop within a
second. A message already started (its first part sent) is finished rather than cut in half: a
recipient would otherwise get part 1 of 3 and never the rest.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import structlog

from cluster.jobs.record import YES, ledgers_field
from cluster.jobs.states import InvalidTransition, JobEvent, JobState
from cluster.jobs.store import JobStore
from cluster.jobs.views import RECEIPT_OUTCOMES
from cluster.send import winner
from cluster.send.pool import BindDied, BindRef, Take, operator_state
from ingest.collect import ACCEPTED_FILE
from ingest.errors import IngestError
from ingest.prepare import LinkSpec, prepare
from ulak import keys, redisclient
from ulak.dispatch.ledger import Event, LedgerReader, PartUnknown, RedisLedger
from ulak.dispatch.message import PlanCache, SubmitBodies, relative_validity
from ulak.dispatch.part import OutboundPart, outbound_part
from ulak.jobfiles import JobFiles
from ulak.records import PartState, SurveyAsked
from ulak.settings import Settings
from ulak.variants import REST

log = structlog.get_logger("ulak.job")

CHUNK_PARTS = 500  # parts per enqueue call (a batch across the process boundary)
MAX_PENDING_PARTS = 200_000  # parts the runner holds in memory ahead of the binds
_END: Any = object()  # the rows are all read
MAX_BIND_REPLACEMENTS = 12  # binds replaced under one job past this: the runner backs off between them
REPLACE_BACKOFF_MAX = 60.0
RECOVER_PAUSE = 0.5  # seconds before resuming after a bind error that left nothing to replace
STALL_SECONDS = 10.0  # a sending job with no part sent for this long says what it waits on
REDIS_RETRY_MAX = 5.0  # seconds between tries while Redis is unreachable
REDIS_DOWN = redisclient.UNREACHABLE  # Redis away: the runner waits (run())

Row = list[OutboundPart]  # a message: its parts, always handed to one bind together


class Pool(Protocol):
    """What the runner asks of the binds (``cluster.send.pool.BindPool``; the tests' ``FakePool``)."""

    def feed(self, job: str, operators: list[str], take: Take, *, weight: float = 1.0) -> int: ...

    def enqueue(self, ref: BindRef, parts: list[OutboundPart], *, weight: float = 1.0) -> None: ...

    def withdraw(self, job: str) -> list[tuple[BindRef, list[OutboundPart]]]: ...

    def pending(self, job: str) -> int: ...

    def queued(self, job: str) -> int: ...

    def describe(self) -> dict[str, list[dict[str, Any]]]: ...

    def recover(self) -> tuple[list[BindRef], list[BindRef]]: ...

    def close(self) -> None: ...


class JobRunner:
    """Drives one job from its Redis record to a terminal state (see the module docstring)."""

    def __init__(
        self,
        job_id: str,
        *,
        settings: Settings,
        redis_url: str,
        namespace: str,
        pool: Pool,
        poll: float = 0.2,
    ) -> None:
        self.job_id = job_id
        self.settings = settings
        self.redis_url = redis_url
        self.namespace = namespace
        self.poll = poll
        self.client = redisclient.client(redis_url)
        self.store = JobStore(self.client)
        self.options = self.store.options(job_id)
        self.directory = JobFiles.configured(settings.jobs).dir(self.store.record(job_id).dir)
        self._log = log.bind(job_id=job_id)
        self._ledger_reader: LedgerReader | None = None
        self._last_sample = 0.0
        self._progress: tuple[int, float] = (-1, 0.0)  # parts sent when last looked, and since when
        self._counters_read: dict[str, int] = {}
        self._counters_at = -1.0  # when _counters_read was read (monotonic; -1: never)
        self._described_at = 0.0
        self._waiting = ""
        self.pool = pool
        self._replaced = 0
        self._taken_back = -1  # the last pause answered with ``taken_back`` (Plane.pause waits for it)
        # What this runner wrote that decides what it does next, kept to write again if Redis loses
        # it (a crash with ``appendfsync everysec`` loses its last second): the prepared job's fields
        # and counters, and whether sending began. Without them a runner that outlived such a crash
        # prepared the job again and sent every part a second time (``_restore``).
        self._prepared: tuple[dict[str, str], dict[Any, int], JobState] | None = None
        self._began = False

    # ----------------------------------------------------------------------------------- driver

    def run(self) -> JobState:
        """Work until the job is done, failed or cancelled; return that state.

        Redis unreachable (restarted, failing over, the network) fails nothing: the runner waits,
        backing off to ``REDIS_RETRY_MAX`` seconds, and goes on as a restarted runner would (taking
        the job back from the binds, skipping what the ledger has seen sent). Before, the error
        failed the job, or, when Redis was too far gone to record even that, ended the runner with
        the job still "sending" and its actor idle for good."""
        delay = 0.5
        while True:
            try:
                return self._run()
            except REDIS_DOWN as exc:
                self._log.warning(
                    "job.redis_unavailable", error=f"{type(exc).__name__}: {exc}", retry_in=delay
                )
                time.sleep(delay)
                delay = min(delay * 2, REDIS_RETRY_MAX)

    def _run(self) -> JobState:
        try:
            while True:
                state = self.store.state(self.job_id)
                if state.terminal:
                    break
                state = self._restore(state)
                try:
                    if not self.store.record(self.job_id).prepared:
                        self._ingest(state)
                    elif state is JobState.DRAINING:
                        self._drain()
                    else:
                        self._send()
                except BindDied as exc:
                    self._recover_binds(exc)  # then carry on as a resumed runner would
        except IngestError as exc:
            self._log.warning("job.refused", code=exc.code, error=exc.message)
            self.store.fail(self.job_id, code=exc.code, message=exc.message, field=exc.field)
        except REDIS_DOWN:
            raise  # not the job's failure: run() waits for Redis
        except Exception as exc:
            self._log.exception("job.crashed")
            self.store.fail(self.job_id, code="internal_error", message=f"{type(exc).__name__}: {exc}")
        final = self.store.state(self.job_id)
        self.store.announce(self.job_id, final)
        if final.terminal and not self.settings.jobs.keep_uploads:
            self._discard_upload()
        return final

    def _discard_upload(self) -> None:
        """The uploaded file holds personal data and is needed only until the rows are prepared:
        it goes when the job ends, whatever the end (``jobs.keep_uploads`` keeps it)."""
        upload = self.store.record(self.job_id).upload
        if upload:
            self.directory.delete(_name(upload))

    def close(self) -> None:
        self.client.close()
        self.pool.close()

    # ----------------------------------------------------------------------------------- ingest

    def _links(self) -> LinkSpec | None:
        """How this job's ``{link}`` is filled, if it has a link_url (``ulak.links``)."""
        if self.options.link_url is None:
            return None
        config = self.settings.links
        return LinkSpec(
            job_id=self.job_id,
            prefix=config.prefix,
            code_length=config.code_length,
            ttl=config.expire_days * 86400,
            redis_url=self.redis_url,
        )

    def _ingest(self, state: JobState) -> None:
        if state is JobState.QUEUED:
            # Paused or cancelling while queued: prepare anyway, the send loop obeys.
            with contextlib.suppress(InvalidTransition):
                self.store.transition(self.job_id, JobEvent.INGEST)
        opts = self.options
        spec = opts.campaign_spec(self.job_id)
        record = self.store.record(self.job_id)
        started = time.perf_counter()
        # Writes accepted.parquet and rejected.parquet into the job's directory, whole or not at all.
        assert record.upload is not None, "the upload is fetched before ingest"
        with self.directory.local(_name(record.upload)) as upload:
            prepared = prepare(
                upload,
                spec,
                config=self.settings.ingest,
                operators=self.settings.operators,
                redis_url=self.redis_url,
                directory=self.directory,
                name=record.filename,
                read_here=not self.directory.is_local,
                links=self._links(),
                optout_instruction=self.settings.replies.optout_instruction,
            )
        preview = prepared.preview
        counters: dict[Any, int] = {
            "rows": preview.rows,
            "accepted": preview.accepted,
            "rows_rejected": preview.rows - preview.accepted - preview.held_out,
            "held_out": preview.held_out,
            "parts_total": preview.parts,
        }
        fields = {
            "preview": json.dumps(preview.as_dict()),
            "ledgers": ledgers_field(self.settings.operator(op) for op in preview.operators),  # its figures
            "prepared": YES,
        }
        after = JobState.DONE if opts.dry_run or preview.accepted == 0 else JobState.SCHEDULED
        self._prepared = (fields, counters, after)
        seconds = time.perf_counter() - started
        self.client.hset(keys.job_counters(self.job_id), mapping=counters)
        self.store.update(self.job_id, **fields)
        _count_ingest(self.client, rows=preview.rows, accepted=preview.accepted, seconds=seconds)
        self._log.info("job.prepared", rows=preview.rows, accepted=preview.accepted, seconds=seconds)
        self._prepared_state(after)

    def _prepared_state(self, after: JobState) -> None:
        """From ingesting to *after* (scheduled, or done for a dry run or a job with no rows)."""
        event = JobEvent.NOTHING_TO_SEND if after is JobState.DONE else JobEvent.PREPARED
        try:
            self.store.transition(self.job_id, event)
        except InvalidTransition as exc:
            if exc.state == JobState.PAUSED.value:  # paused while ingesting: resume goes to scheduled
                self.store.update(self.job_id, paused_from=JobState.SCHEDULED.value)

    # ------------------------------------------------------------------------------------- send

    def _recover_binds(self, cause: BindDied) -> None:
        """A bind died under the job, or stopped answering (its node lost or cut off: issue 30).

        The pool settles a dead bind (its send record's parts without an outcome become
        ``unknown``) and makes it again, on another node when its own is gone. One that does not
        answer may still be alive and sending, so the runner waits until it answers again or Ray
        declares it dead (a few seconds on a node ``ulak node`` started), saying so in the job's
        ``waiting``; the binds still up go on sending what they hold meanwhile. Then the runner
        resumes as a new runner would: it takes the job back from the binds and sends again what
        the ledger has not seen sent. A job never fails for this: binds that keep dying make the
        runner wait longer between replacements (up to ``REPLACE_BACKOFF_MAX`` seconds), and say why.
        """
        self._log.warning("job.binds_lost", error=str(cause))
        began = time.monotonic()
        while True:
            replaced, unreachable = self.pool.recover()
            if not replaced and not unreachable:
                time.sleep(RECOVER_PAUSE)  # between Ray's states: look again before resuming
            for ref in replaced:
                self._replaced += 1
                self._log.warning("job.bind_replaced", operator=ref.operator, bind=ref.bind)
            if not unreachable:
                break
            names = ", ".join(f"{r.operator}/{r.bind}" for r in unreachable)
            self._say_waiting(
                f"bind {names} not answering for {time.monotonic() - began:.0f} s (its node may be "
                "lost or cut off); what it holds is sent elsewhere once Ray declares it dead"
            )
            if self.store.state(self.job_id) is JobState.CANCELLING:
                return
            time.sleep(0.5)
        self._not_waiting()
        if self._replaced > MAX_BIND_REPLACEMENTS:
            delay = min(REPLACE_BACKOFF_MAX, 2.0 ** (self._replaced - MAX_BIND_REPLACEMENTS))
            self._say_waiting(
                f"{self._replaced} binds were replaced under this job; waiting {delay:.0f} s before "
                "going on (see the binds' logs for why their processes die)"
            )
            time.sleep(delay)
            self._not_waiting()

    def _pending(self) -> int:
        """The job's parts the binds still hold: queued, or sent and not yet answered."""
        return self.pool.pending(self.job_id)

    def _queued(self) -> int:
        """The job's parts the binds hold and have not sent yet."""
        return self.pool.queued(self.job_id)

    def _withdraw_all(self) -> None:
        """Take the job's queued parts back from every bind, discarding them; each bind writes its
        ledger events first, so afterwards the ledger holds every part of the job sent so far."""
        self.pool.withdraw(self.job_id)

    def _quiesce(self) -> None:
        """Take the job back from every bind until none holds any of it, so that the ledger then
        has the outcome of every part that was sent.

        One withdraw is not enough: the parts on the wire at that moment are answered later, and one
        answered "slow down" goes back into its bind's queue (and its send out of the ledger). So:
        withdraw, wait for the answers, withdraw again, until nothing is pending; the last withdraw
        also writes the binds' last events."""
        deadline = time.monotonic() + self.settings.jobs.drain_timeout
        while True:
            self._withdraw_all()
            if not self._pending():
                self._withdraw_all()
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the binds did not answer this job's parts in flight within "
                    f"{self.settings.jobs.drain_timeout:g} s (jobs.drain_timeout)"
                )
            time.sleep(0.05)

    def _index_survey(self) -> None:
        """Make this job the most recent survey of each of its recipients, for replies to its
        reply_to (``keys.survey_index``): from when it first began sending, for its window. Done
        again by a resumed runner: the same values."""
        survey, reply_to = self.options.survey, self.options.survey_reply_to()
        assert survey is not None and reply_to is not None
        self.client.hsetnx(keys.job(self.job_id), "survey_since", f"{time.time():.3f}")
        since = self.store.record(self.job_id).survey_since
        assert since is not None  # set just above
        asked = SurveyAsked(self.job_id, float(since), survey.window_hours * 3600, survey.kind)
        value = asked.write(since=since)
        rows_file = pq.ParquetFile(self.directory.open_input(ACCEPTED_FILE))
        key = keys.survey_index(reply_to)
        for batch in rows_file.iter_batches(batch_size=10_000, columns=["msisdn"]):
            numbers = batch.column("msisdn").to_pylist()
            if numbers:
                self.client.hset(key, mapping=dict.fromkeys(numbers, value))
        self._log.info("job.survey_indexed", reply_to=reply_to, rows=rows_file.metadata.num_rows)

    def _restore(self, state: JobState) -> JobState:
        """Write again what this runner wrote and Redis no longer has (see ``__init__``): a Redis
        that came back from a crash without its last second may hold the job as not yet prepared,
        or not yet sending, while the rows file is written and the binds have sent parts of it."""
        if self._prepared is None:
            return state
        fields, counters, after = self._prepared
        record = self.store.record(self.job_id)
        lost = list(fields) if not record.prepared else []  # one write made them all
        if self._began and not record.sending_began:
            lost.append("sending_began")
        if not lost:
            return state
        self._log.warning(
            "job.record_restored",
            fields=lost,
            state=state.value,
            hint="Redis lost its last writes (a crash with appendfsync everysec); written again",
        )
        self.client.hset(keys.job_counters(self.job_id), mapping=counters)
        self.store.update(self.job_id, **fields, **({"sending_began": YES} if self._began else {}))
        if state is JobState.QUEUED:
            with contextlib.suppress(InvalidTransition):
                self.store.transition(self.job_id, JobEvent.INGEST)
        if self.store.state(self.job_id) is JobState.INGESTING:
            self._prepared_state(after)
        return self.store.state(self.job_id)

    def _send(self) -> None:
        # Resuming: a runner before this one sent parts of the job, or this one did before Redis
        # went away. The record's flag alone is not enough: Redis may have lost it (``_restore``
        # writes it again when this runner set it; a new runner asks the ledger and the binds).
        resuming = (
            self._began
            or self.store.record(self.job_id).sending_began
            or self._counters(fresh=True).get("submitted", 0) > 0
            or self._pending() > 0
        )
        self._began = True
        if resuming:
            # A previous runner may have left parts queued in the binds: take them back (discarding
            # them: the ledger says what was sent, and the rest is read again from the rows file).
            self._quiesce()
            self._log.info("job.resuming")
        else:
            self.store.update(self.job_id, sending_began=YES)
        if self.options.survey is not None:
            self._index_survey()
        rows = self._rows(skip_sent=resuming)
        pending = _Pending(op.name for op in self.settings.operators)
        # Rows read ahead per operator: enough for a batch to each of its binds, twice over.
        binds = max((len(op.binds) for op in self.settings.operators), default=1)
        read_ahead = 2 * CHUNK_PARTS * binds
        exhausted = deciding = False
        last_poll = 0.0
        while True:
            now = time.monotonic()
            if now - last_poll >= self.poll:
                last_poll = now
                state = self._steer(pending)
                if state is None:
                    return
                if state is not JobState.SENDING:
                    self._not_waiting()  # paused, or outside its window: not stalled
                    time.sleep(self.poll)
                    continue
            while not exhausted and pending.parts < MAX_PENDING_PARTS and pending.wants_more(read_ahead):
                batch = next(rows, _END)
                if batch is _END:
                    exhausted = True
                    break
                deciding = batch is None
                if batch is None:  # test then winner: the rest waits for the winner
                    break
                assert isinstance(batch, dict)
                for name, message_rows in batch.items():
                    pending.extend(name, message_rows)
            if deciding and not pending.parts:
                self._maybe_sample()
                time.sleep(self.poll)
                continue
            if exhausted and not pending.parts:
                # Everything is handed to the binds, but the job stays *sending* (pausable and
                # cancellable, its queued parts withdrawable) until the binds have sent it all:
                # draining means only answers and receipts are left to wait for.
                if self._queued():
                    self._watch_progress()
                    time.sleep(self.poll)
                    continue
                try:
                    self.store.transition(self.job_id, JobEvent.ALL_HANDED)
                except InvalidTransition:
                    last_poll = 0.0  # paused or cancelled at the last moment: steer again
                    continue
                self._not_waiting()
                return
            # A round gives a batch to every bind with room (``BindPool.feed``).
            sent = self.pool.feed(
                self.job_id,
                pending.operators(),
                lambda name: pending.take(name, CHUNK_PARTS),
                weight=self.options.weight,
            )
            if not sent:
                time.sleep(0.02)  # every bind is full: let them drain
            self._maybe_sample()
            self._watch_progress()

    def _not_waiting(self) -> None:
        """Not sending: no stall to explain (the clock starts again when it sends)."""
        self._progress = (-1, 0.0)
        if self._waiting:
            self._waiting = ""
            self.store.update(self.job_id, waiting="")

    def _watch_progress(self) -> None:
        """A sending job whose parts stopped going out says why in its record (``waiting``): the
        operators its binds cannot send for, with their binds' states and errors. It reads the
        counters the rate samples read (``_counters``: once a second at most, shared), and asks the
        binds only after ``STALL_SECONDS`` without a part sent (and again every ``STALL_SECONDS``
        while it lasts); cleared when parts move again."""
        sent = self._counters().get("parts_sent", 0)
        now = self._counters_at
        if sent != self._progress[0]:
            if self._waiting:
                self._log.info("job.moving_again")
            self._not_waiting()
            self._progress = (sent, now)
            return
        if now - self._progress[1] < STALL_SECONDS or now - self._described_at < STALL_SECONDS:
            return
        self._described_at = now
        down = []
        for name, binds in self.pool.describe().items():
            state, reason = operator_state(binds)
            if state != "up":
                down.append(f"{name} {state}: {reason}")
        waiting = "; ".join(down) or f"no part sent for {STALL_SECONDS:g} s; every operator is up"
        if waiting != self._waiting:
            self._waiting = waiting
            self.store.update(self.job_id, waiting=waiting)
            self._log.warning("job.waiting", waiting=waiting)

    def _steer(self, pending: _Pending) -> JobState | None:
        """Obey the job's state: returns SENDING to keep feeding, another state to wait, None to stop."""
        state = self.store.state(self.job_id)
        self._maybe_sample()
        if state.terminal:
            return None
        if state is JobState.CANCELLING:
            self._cancel()
            return None
        if state in (JobState.QUEUED, JobState.INGESTING):  # resumed to where it was paused; it is prepared
            try:
                self.store.transition(self.job_id, JobEvent.PREPARED)
            except InvalidTransition:
                return self.store.state(self.job_id)
            state = JobState.SCHEDULED
        now = datetime.now(UTC)
        if state is JobState.SENDING and not self.options.may_send(now):
            try:
                self.store.transition(self.job_id, JobEvent.WINDOW_CLOSES)
                self._log.info("job.outside_window")
                state = JobState.SCHEDULED
            except InvalidTransition:
                return self.store.state(self.job_id)
        if state is JobState.SCHEDULED and self.options.may_send(now):
            try:
                self.store.transition(self.job_id, JobEvent.WINDOW_OPENS)
                return JobState.SENDING
            except InvalidTransition:
                return self.store.state(self.job_id)
        if state is JobState.PAUSED:
            # Read before the take-back: a pause that comes after it has a higher number, and is
            # answered at the next poll.
            pause = self.store.pause_number(self.job_id)
            self._take_back(pending)
            if pause != self._taken_back:
                self.store.update(self.job_id, taken_back=pause)
                self._taken_back = pause
        elif state is JobState.SCHEDULED:
            self._take_back(pending)
        return state

    def _take_back(self, pending: _Pending) -> None:
        """Withdraw the job's queued parts from every bind, back to the front of *pending*; a message
        whose first part is already sent goes back to its bind to be finished."""
        for ref, parts in self.pool.withdraw(self.job_id):
            if not parts:
                continue
            keep, finish = _split_started(parts)
            if finish:
                self.pool.enqueue(ref, finish, weight=self.options.weight)
            pending.put_back(ref.operator, keep)

    def _cancel(self) -> None:
        deadline = time.monotonic() + self.settings.jobs.drain_timeout
        self._take_back(_Pending(op.name for op in self.settings.operators))
        # Wait for the answers to what is in flight (and the started messages' last parts).
        while self._pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._withdraw_all()
        self._reconcile(cancelled=True)  # no row left in flight: the chaos test found one
        counters = self.store.counters(self.job_id)
        cancelled = counters["accepted"] - counters["submitted"]
        self.client.hset(keys.job_counters(self.job_id), "cancelled", cancelled)
        self.store.transition(self.job_id, JobEvent.CANCELLED)
        self._sample()
        self._log.info("job.cancelled", cancelled=cancelled, submitted=counters["submitted"])

    # ------------------------------------------------------------------------------------ drain

    def _drain(self) -> None:
        """Wait for every part's answer, then for receipts (up to ``jobs.receipt_wait`` of quiet)."""
        deadline = time.monotonic() + self.settings.jobs.drain_timeout
        while self._pending():
            if time.monotonic() > deadline:
                self.store.fail(
                    self.job_id,
                    code="drain_timeout",
                    message="the binds did not answer every part within "
                    f"{self.settings.jobs.drain_timeout:g} s (jobs.drain_timeout)",
                )
                return
            self._maybe_sample()
            time.sleep(0.05)
        self._quiesce()
        if self._reconcile():
            # Parts never sent, in no bind (a bind lost them before they left): send them, as a
            # resumed runner would; the job drains again after.
            with contextlib.suppress(InvalidTransition):
                self.store.transition(self.job_id, JobEvent.PARTS_LEFT)
            return
        quiet_since = time.monotonic()
        last = -1
        while True:
            c = self.store.counters(self.job_id)
            received = sum(c[o] for o in RECEIPT_OUTCOMES)
            if received != last:
                last, quiet_since = received, time.monotonic()
            if received >= c["acked"] or time.monotonic() - quiet_since > self.settings.jobs.receipt_wait:
                break
            if self.store.state(self.job_id) is not JobState.DRAINING:
                return
            self._maybe_sample()
            time.sleep(self.poll)
        try:
            self.store.transition(self.job_id, JobEvent.SETTLED)
        except InvalidTransition:
            return
        self._sample()
        self._log.info("job.done", **{k: c[k] for k in ("submitted", "acked", "failed", "delivered")})

    def _reconcile(self, *, cancelled: bool = False) -> int:
        """Before a job is done, every row must have a final state. With nothing left in any bind,
        a part the ledger has seen sent without an outcome may have reached the SMSC: it becomes
        ``unknown`` (never sent twice). Returns how many parts were never sent at all, which the
        caller sends. The counters say whether there is anything to look for, so a job whose figures
        add up costs no scan of its rows. For a *cancelled* job, a started row's parts never sent
        (the rest of a message the cancel cut, a bind lost meanwhile) make it ``unknown`` too: its
        recipient may have part of it."""
        c = self.store.counters(self.job_id)
        in_flight = c["submitted"] - c["acked"] - c["failed"] - c["unknown"]
        unsent = c["accepted"] - c["submitted"]
        if in_flight <= 0 and unsent <= 0:
            return 0
        lost: dict[str, list[Event]] = {}  # per operator: each has its own ledger
        never = 0
        rows_file = pq.ParquetFile(self.directory.open_input(ACCEPTED_FILE))
        columns = ["row", "parts", "operator"]
        reader = self._reader()
        for batch in rows_file.iter_batches(batch_size=self.settings.jobs.batch_rows, columns=columns):
            states = self._part_states(batch)
            started: set[int] = set()
            if cancelled:
                rows: list[int] = batch.column("row").to_pylist()
                ops: list[str] = batch.column("operator").to_pylist()
                row_states = reader.fields("rows", ops, [[str(r)] for r in rows])
                sent = PartState.SENT.encode()
                started = {r for r, v in zip(rows, row_states, strict=True) if v[0] == sent}
            for (op, row, part, parts), value in states:
                if value == PartState.SENT.encode() or (value is None and row in started):
                    lost.setdefault(op, []).append(PartUnknown(self.job_id, row, part, parts))
                elif value is None:
                    never += 1
        for op, events in lost.items():
            RedisLedger(self.client, ledger=reader.ledgers.get(op, op)).apply_in_batches(events)
        unknown = sum(len(events) for events in lost.values())
        if unknown or never:
            self._log.warning("job.reconciled", unknown=unknown, unsent=never)
        return never

    # ------------------------------------------------------------------------------------- rows

    def _rows(self, *, skip_sent: bool) -> Iterator[dict[str, list[Row]] | None]:
        """The job's messages as parts, per operator, a file batch at a time (in row order). Test
        then winner: the test slice first, then None while the winner is not known yet (the caller
        keeps steering and feeding), then the rest with the winner's text (``cluster.send.winner``)."""
        if self.options.test_share is None:
            yield from self._timed_rows(skip_sent=skip_sent)
            return
        yield from self._file_rows(skip_sent=skip_sent, rest=False)
        while self.store.record(self.job_id).winner is None:
            if not self._decide_now():
                yield None
        yield from self._file_rows(skip_sent=skip_sent, rest=True)

    def _timed_rows(self, *, skip_sent: bool) -> Iterator[dict[str, list[Row]] | None]:
        """Every row; in a send-time test, each variant's rows once its ``send_at`` has come (None
        until then, so the caller keeps steering: pause and cancel work while it waits)."""
        groups = self.options.send_times()
        if not groups:
            yield from self._file_rows(skip_sent=skip_sent, rest=None)
            return
        for at, names in groups:
            while time.time() < at:
                when = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
                self._say_waiting(f"A/B send-time test: variant {', '.join(names)} is sent from {when}")
                yield None
            yield from self._file_rows(skip_sent=skip_sent, rest=None, only=set(names))

    def _say_waiting(self, message: str) -> None:
        if self._waiting != message:
            self._waiting = message
            self.store.update(self.job_id, waiting=message)

    def _decide_now(self) -> bool:
        """Pick the winner if the decision period is over (and say when it will be, while not)."""
        decide_at = self.store.record(self.job_id).decide_at
        if decide_at is None:
            decide_at = time.time() + self.options.decide_after_minutes * 60
            self.store.update(self.job_id, decide_at=round(decide_at, 3))
        if time.time() < decide_at:
            when = datetime.fromtimestamp(decide_at, UTC).isoformat(timespec="seconds")
            by = self.options.winner_by
            self._say_waiting(f"A/B test: the test slice is sent; the winner (by {by}) is picked at {when}")
            return False
        decision = winner.decide(
            self.client, self.job_id, self.directory, options=self.options, ledgers=self._reader().ledgers
        )
        delta = winner.rewrite(self.directory, decision["winner"])
        if delta:
            self.client.hincrby(keys.job_counters(self.job_id), "parts_total", delta)
        self.store.update(self.job_id, decision=json.dumps(decision), winner=decision["winner"], waiting="")
        self._waiting = ""
        self._log.info(
            "job.winner", winner=decision["winner"], by=decision["by"], variants=decision["variants"]
        )
        return True

    def _file_rows(
        self, *, skip_sent: bool, rest: bool | None, only: set[str] | None = None
    ) -> Iterator[dict[str, list[Row]]]:
        """The rows of the rows file as parts (*rest*: only the rest, or only the test slice; None:
        all; *only*: only these variants' rows)."""
        operators = {op.name: op for op in self.settings.operators}
        opts = self.options
        validity = relative_validity(opts.validity_minutes) if opts.validity_minutes else ""
        job_id = self.job_id
        plans = PlanCache()
        bodies = SubmitBodies(source_addr=opts.sender, validity_period=validity)
        senders = {  # an A/B test's variants with a sender of their own
            v.name: SubmitBodies(source_addr=v.sender, validity_period=validity)
            for v in opts.variants or ()
            if v.sender is not None
        }
        rows_file = pq.ParquetFile(self.directory.open_input(ACCEPTED_FILE))
        with_variants = "variant" in rows_file.schema_arrow.names
        for whole in rows_file.iter_batches(batch_size=self.settings.jobs.batch_rows):
            batch = whole
            if rest is not None:
                is_rest = pc.fill_null(pc.equal(whole.column("phase"), REST), False)
                batch = whole.filter(is_rest if rest else pc.invert(is_rest))
            if only is not None:
                batch = batch.filter(pc.is_in(batch.column("variant"), pa.array(sorted(only))))
            sent = self._sent_parts(batch) if skip_sent else None
            out: dict[str, list[Row]] = {}
            variants = batch.column("variant").to_pylist() if with_variants else [None] * batch.num_rows
            for row, msisdn, op_name, text, variant in zip(
                *(batch.column(c).to_pylist() for c in ("row", "msisdn", "operator", "text")),
                variants,
                strict=True,
            ):
                op = operators[op_name]
                message = plans.plan(text, op, row=row)
                pdus = senders.get(variant, bodies).parts(message, destination=msisdn, bind=op.binds[0])
                items = [
                    outbound_part(job_id, row, i, len(pdus), pdu)
                    for i, pdu in enumerate(pdus, 1)
                    if sent is None or (row, i) not in sent
                ]
                if items:
                    out.setdefault(op_name, []).append(items)
            yield out

    def _reader(self) -> LedgerReader:
        """The job's ledgers, as its record names them once it is prepared (read once)."""
        if self._ledger_reader is None:
            self._ledger_reader = self.store.reader(self.job_id)
        return self._ledger_reader

    def _sent_parts(self, batch: pa.RecordBatch) -> set[tuple[int, int]]:
        """Which (row, part) of *batch* the ledger has seen sent (in any state)."""
        return {(row, part) for (_, row, part, _), v in self._part_states(batch) if v is not None}

    def _part_states(self, batch: pa.RecordBatch) -> list[tuple[tuple[str, int, int, int], bytes | None]]:
        """Each part of *batch*'s rows, as (operator, row, part, parts), with its state in the ledger
        (None: never seen sent), read in one round trip (``LedgerReader.fields``)."""
        rows: list[int] = batch.column("row").to_pylist()
        counts: list[int] = batch.column("parts").to_pylist()
        ops: list[str] = batch.column("operator").to_pylist()
        names = [[f"{r}:{p}" for p in range(1, n + 1)] for r, n in zip(rows, counts, strict=True)]
        values = self._reader().fields("parts", ops, names)
        return [
            ((op, row, part, n), value)
            for op, row, n, found in zip(ops, rows, counts, values, strict=True)
            for part, value in enumerate(found, 1)
        ]

    # ---------------------------------------------------------------------------------- samples

    def _maybe_sample(self) -> None:
        if time.monotonic() - self._last_sample >= 1.0:
            self._sample()

    def _sample(self) -> None:
        self._last_sample = time.monotonic()
        self.store.sample(self.job_id, self._counters(fresh=True))

    def _counters(self, *, fresh: bool = False) -> dict[str, int]:
        """The job's counters, read again only if *fresh* or the last read is a second old: the
        samples and the stall watch share one read a second."""
        now = time.monotonic()
        if fresh or now - self._counters_at >= 1.0:
            self._counters_read, self._counters_at = self.store.counters(self.job_id), now
        return self._counters_read


class _Pending:
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

    def take(self, name: str, limit: int) -> list[OutboundPart]:
        """Whole messages from the front, about *limit* parts (a message is never split)."""
        queue = self._queues[name]
        chunk: list[OutboundPart] = []
        while queue and (not chunk or len(chunk) + len(queue[0]) <= limit):
            chunk.extend(queue.popleft())
        self.parts -= len(chunk)
        return chunk


def _split_started(parts: list[OutboundPart]) -> tuple[list[Row], list[OutboundPart]]:
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


def _name(upload: str) -> str:
    """The upload's file name in the job's folder (older records kept its whole local path)."""
    return upload.rpartition("/")[2]


def _count_ingest(client: Any, *, rows: int, accepted: int, seconds: float) -> None:
    """Add a job's ingest to the cluster's totals (``keys.INGEST_STATS``, read by ``/metrics``)."""
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(keys.INGEST_STATS, "jobs", 1)
    pipe.hincrby(keys.INGEST_STATS, "rows", rows)
    pipe.hincrby(keys.INGEST_STATS, "accepted", accepted)
    pipe.hincrbyfloat(keys.INGEST_STATS, "seconds", seconds)
    pipe.execute()
