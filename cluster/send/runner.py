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

import ctypes
import functools
import itertools
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import structlog

from cluster.jobs.record import YES
from cluster.jobs.states import InvalidTransition, JobEvent, JobState
from cluster.jobs.store import JobStore
from cluster.jobs.views import stopped
from cluster.send.capping import Capping
from cluster.send.deferred import Deferred
from cluster.send.drain import Drain
from cluster.send.handoff import Handoff
from cluster.send.job import Job, Pool
from cluster.send.localtime import LocalWindows
from cluster.send.pool import BindDied
from cluster.send.progress import Progress
from cluster.send.rows import Gate, Pending, Row, RowReader
from cluster.send.stops import Stops
from ingest.errors import IngestError
from ulak import keys, redisclient
from ulak.clock import clock
from ulak.jobfiles import JobFiles
from ulak.settings import Settings

log = structlog.get_logger("ulak.job")

CHUNK_PARTS = 500  # parts per enqueue call (a batch across the process boundary)
MAX_PENDING_PARTS = 200_000  # parts the runner holds in memory ahead of the binds
_END: Any = object()  # the rows are all read
MAX_BIND_REPLACEMENTS = 12  # binds replaced under one job past this: the runner backs off between them
REPLACE_BACKOFF_MAX = 60.0
RECOVER_PAUSE = 0.5  # seconds before resuming after a bind error that left nothing to replace
REDIS_RETRY_MAX = 5.0  # seconds between tries while Redis is unreachable
REDIS_DOWN = redisclient.UNREACHABLE  # Redis away: the runner waits (run())


class JobRunner:
    """Drives one job from its Redis record to a terminal state (see the module docstring): the
    feeding and steering are its own; ingest hand-off and crash restore (``handoff``), reading the
    rows (``rows``), progress (``progress``) and the drain (``drain``) are the parts it holds."""

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
        job = Job(
            job_id,
            settings,
            redis_url,
            self.client,
            self.store,
            self.options,
            self.directory,
            self._log,
            clock=clock(settings.jobs.clock, self.client),
        )
        self.clock = job.clock
        self.pool = pool
        self.progress = Progress(job)
        self.stops = Stops(job)
        self.deferred = Deferred(validity_minutes=self.options.validity_minutes)  # rows held till a time
        self.capping = Capping(job, self.deferred)
        self.windows = LocalWindows(job, self.deferred)
        self.rows = RowReader(job, self.progress, self.stops)
        self.handoff = Handoff(job)
        self.drain = Drain(job, pool=pool, progress=self.progress, rows=self.rows, poll=poll)
        self._replaced = 0
        self._taken_back = -1  # the last pause answered with ``taken_back`` (Plane.pause waits for it)

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
                state = self.handoff.restore(state)
                try:
                    if not self.store.record(self.job_id).prepared:
                        self.handoff.ingest(state)
                        _hand_back_memory()
                    elif state is JobState.DRAINING:
                        self.drain.drain()
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
            self.handoff.discard_upload()
        return final

    def close(self) -> None:
        self.client.close()
        self.pool.close()

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
            self.progress.say_waiting(
                f"bind {names} not answering for {time.monotonic() - began:.0f} s (its node may be "
                "lost or cut off); what it holds is sent elsewhere once Ray declares it dead"
            )
            if self.store.state(self.job_id) is JobState.CANCELLING:
                return
            time.sleep(0.5)
        self.progress.not_waiting()
        if self._replaced > MAX_BIND_REPLACEMENTS:
            delay = min(REPLACE_BACKOFF_MAX, 2.0 ** (self._replaced - MAX_BIND_REPLACEMENTS))
            self.progress.say_waiting(
                f"{self._replaced} binds were replaced under this job; waiting {delay:.0f} s before "
                "going on (see the binds' logs for why their processes die)"
            )
            time.sleep(delay)
            self.progress.not_waiting()

    def _send(self) -> None:
        resuming = self._begin()
        rows = self.rows.read(skip_sent=resuming)
        pending = Pending(op.name for op in self.settings.operators)
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
                    self.progress.not_waiting()  # paused, or outside its window: not stalled
                    time.sleep(self.poll)
                    continue
            if not exhausted:
                exhausted, deciding = self._read(rows, pending, read_ahead, deciding=deciding)
            if (exhausted or deciding) and not pending.parts and self.deferred:
                due = self.deferred.due(self.clock.time())
                if due:  # read again the rows whose cap or window now lets them go, then the rest
                    rows = itertools.chain(self.rows.again(due), () if exhausted else rows)
                    exhausted = deciding = False
                    continue
            if deciding and not pending.parts:
                self.progress.maybe_sample()
                time.sleep(self.poll)
                continue
            if exhausted and not pending.parts and self.deferred:
                self._say_deferred()
                time.sleep(self.poll)
                continue
            if exhausted and not pending.parts:
                handed = self._all_handed()
                if handed:
                    return
                if handed is None:
                    last_poll = 0.0  # paused or cancelled at the last moment: steer again
                continue
            # A round gives a batch to every bind with room (``BindPool.feed``); a message whose
            # number refused since it was read is not handed (``cluster.send.stops``), nor one past
            # its recipient's local send window or frequency cap (``cluster.send.localtime``,
            # ``cluster.send.capping``).
            why = self.stops.why_not()
            stopped: list[tuple[str, int, int, str]] = []
            gate = self._gate()
            sent = self.pool.feed(
                self.job_id,
                pending.operators(),
                functools.partial(pending.take, limit=CHUNK_PARTS, why=why, stopped=stopped, gate=gate),
                weight=self.options.weight,
                scope=self.stops.scope,
            )
            self.stops.record(stopped)
            if not sent:
                time.sleep(0.02)  # every bind is full: let them drain
            self.progress.maybe_sample()
            self.progress.watch(self.pool)

    def _gate(self) -> Gate | None:
        """What a batch about to be handed is checked with, after the refusals: the recipients'
        local windows, then their frequency caps (a message held by its window counts nothing)."""
        windows = self.windows.admit if self.windows.window is not None else None
        caps = self.capping.admit if self.capping.gate is not None else None
        if windows is None or caps is None:
            return windows or caps

        def both(name: str, messages: list[Row], refused: list[tuple[str, int, int, str]]) -> list[Row]:
            assert windows is not None and caps is not None
            return caps(name, windows(name, messages, refused), refused)

        return both

    def _say_deferred(self) -> None:
        at = self.deferred.next_due()
        assert at is not None
        when = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
        whys = " or ".join(self.deferred.reasons())
        self.progress.say_waiting(
            f"{len(self.deferred):,} messages wait for their recipients' {whys}; the next may go at {when}"
        )

    def _begin(self) -> bool:
        """Start sending; returns whether it is a resumption (parts of the job were sent before)."""
        # A runner before this one sent parts of the job, or this one did before Redis went away.
        # The record's flag alone is not enough: Redis may have lost it (``Handoff.restore`` writes
        # it again when this runner set it; a new runner asks the ledger and the binds).
        resuming = (
            self.handoff.began
            or self.store.record(self.job_id).sending_began
            or self.progress.counters(fresh=True).get("submitted", 0) > 0
            or self.pool.pending(self.job_id) > 0
        )
        self.handoff.began = True
        if resuming:
            # A previous runner may have left parts queued in the binds: take them back (discarding
            # them: the ledger says what was sent, and the rest is read again from the rows file).
            self.drain.quiesce()
            self._log.info("job.resuming")
        else:
            self.store.update(self.job_id, sending_began=YES)
        if self.options.survey is not None:
            self.rows.index_survey()
        return resuming

    def _read(
        self,
        rows: Iterator[dict[str, list[Row]] | None],
        pending: Pending,
        read_ahead: int,
        *,
        deciding: bool,
    ) -> tuple[bool, bool]:
        """Read rows into *pending* until every operator has *read_ahead* messages (or the runner
        holds ``MAX_PENDING_PARTS``). Returns (the rows are all read, the rest waits for the A/B
        winner), the latter as it was when nothing was read."""
        while pending.parts < MAX_PENDING_PARTS and pending.wants_more(read_ahead):
            batch = next(rows, _END)
            if batch is _END:
                return True, deciding
            deciding = batch is None
            if batch is None:  # test then winner: the rest waits for the winner
                break
            assert isinstance(batch, dict)
            for name, message_rows in batch.items():
                pending.extend(name, message_rows)
        return False, deciding

    def _all_handed(self) -> bool | None:
        """Every row is handed to the binds, but the job stays *sending* (pausable and cancellable,
        its queued parts withdrawable) until the binds have sent it all: draining means only answers
        and receipts are left to wait for. True once draining; False while the binds still hold
        parts to send; None if the job was paused or cancelled at the last moment."""
        if self.pool.queued(self.job_id):
            self.progress.watch(self.pool)
            time.sleep(self.poll)
            return False
        try:
            self.store.transition(self.job_id, JobEvent.ALL_HANDED)
        except InvalidTransition:
            return None
        self.progress.not_waiting()
        return True

    def _steer(self, pending: Pending) -> JobState | None:
        """Obey the job's state: returns SENDING to keep feeding, another state to wait, None to stop.
        In every state, it reads the refusals recorded since (``cluster.send.stops``) first."""
        self.stops.follow()
        state = self.store.state(self.job_id)
        self.progress.maybe_sample()
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
        now = datetime.fromtimestamp(self.clock.time(), UTC)
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
            self._take_back_into(pending)
            if pause != self._taken_back:
                self.store.update(self.job_id, taken_back=pause)
                self._taken_back = pause
        elif state is JobState.SCHEDULED:
            self._take_back_into(pending)
        elif state is JobState.SENDING and self.windows.closed_since():
            # A recipient zone's window closed: what the binds hold for it must wait (localtime).
            self._log.info("job.local_window_closed")
            self._take_back_into(pending)
        return state

    def _take_back_into(self, pending: Pending) -> None:
        pending.take_back(self.pool, self.job_id, weight=self.options.weight, release=self.capping.release)

    def _cancel(self) -> None:
        deadline = time.monotonic() + self.settings.jobs.drain_timeout
        self._take_back_into(Pending(op.name for op in self.settings.operators))
        # Wait for the answers to what is in flight (and the started messages' last parts).
        while self.pool.pending(self.job_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.drain.withdraw_all()
        self.drain.reconcile(cancelled=True)  # no row left in flight: the chaos test found one
        counters = self.store.counters(self.job_id)
        cancelled = counters["accepted"] - counters["submitted"] - stopped(counters)
        self.client.hset(keys.job_counters(self.job_id), "cancelled", cancelled)
        self.store.transition(self.job_id, JobEvent.CANCELLED)
        self.progress.sample()
        self._log.info("job.cancelled", cancelled=cancelled, submitted=counters["submitted"])


def _hand_back_memory() -> None:
    """Give the operating system back what this process freed but its allocators keep, once a job's
    ingest ends: Arrow's memory pool's unused pages and the C heap's free ones (glibc's
    ``malloc_trim``; nothing where there is no glibc). The de-duplication runs and the blocks the
    ingest collected are gone by then, but the allocators held their high-water mark for the whole
    send (the job's actor ~200 MiB larger at 10M rows than at 1M)."""
    pa.default_memory_pool().release_unused()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
