"""An ended job's outcomes snapshot: every row's outcome read from the ledgers once, and kept.

A job that has ended with every receipt in keeps its rows' outcomes (status, receipt, error, times,
message ids) in its folder, so that its summary and its report read a file instead of every row's
ledger fields (a million rows' ledgers take seconds; ten million, minutes). The snapshot is stamped
with the ledger counters it was taken at (:func:`stamp`): a late receipt changes them, and the next
summary takes a new one.

Layout: ``outcomes/<token>/<index>.parquet``, :data:`CHUNK_ROWS` rows a chunk, in row order (the
rows file's), each chunk written whole before the next is begun. The job record names the current
snapshot (``outcomes_stamp`` and ``outcomes_files``: ``<token> <chunks>``, set together once its
last chunk is written); an older one is removed once a newer is named.

One process takes it (the job's actor as the job ends, or a summary's first read of a job whose
snapshot is stale), holding ``keys.job_summary_lock`` with the snapshot's token. A report asked for
meanwhile *follows* it: it reads each chunk as it is written, rather than read every row's ledger
beside it, which took as long again and slowed both (a 10M-row job's report right after ``done``:
139 s with the two reading; a chunk is ~1 s of the taker's work, so the report's client never waits
long for its next bytes). A taker that dies lets its lock go within :data:`LOCK_SECONDS`; its
follower then reads the rows it has not had from the ledgers.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import structlog

from cluster.jobs.record import JobRecord
from cluster.jobs.states import JobState
from cluster.jobs.store import JobStore
from cluster.reports.report import OUTCOME_COLUMNS, REPORT_SCHEMA, report_batches
from ulak import keys
from ulak.jobfiles import JobDir

log = structlog.get_logger(__name__)

FOLDER = "outcomes"
LEGACY = "outcomes.parquet"  # a snapshot of one file, before it came in chunks: removed when retaken
CHUNK_ROWS = 100_000
BATCH_ROWS = 20_000
LOCK_SECONDS = 30  # a snapshot's lock, renewed at each batch of rows (keys.job_summary_lock)
# Seconds a report following a snapshot being taken waits for its next chunk before it reads the
# ledgers: it waits in its answer's body, its headers (and a CSV's header line) already sent, so
# this is a gap between two reads for the client, kept under the 60 s a proxy allows one by default
# (nginx's proxy_read_timeout). A chunk normally comes in about a second.
SNAPSHOT_WAIT = 45.0

# The report's outcome of a row as the snapshot keeps it: the report's own columns, of its types (it
# reads them back beside its rows: report._InStep), with parts_acked for the summary's cost.
SLIM = pa.schema(
    [
        *(REPORT_SCHEMA.field(name) for name in ("row", "operator", "variant", "phase", "parts")),
        pa.field("parts_acked", pa.int32()),
        *(REPORT_SCHEMA.field(name) for name in ("status", "receipt", "error", "acked_at", "receipt_at")),
        REPORT_SCHEMA.field("message_ids"),  # for the report alone
    ]
)
SUMMARY_COLUMNS = [name for name in SLIM.names if name != "message_ids"]
F = TypeVar("F", bound="Folder")
_REPORT_COLUMNS = ["row", *OUTCOME_COLUMNS]
_FROM_REPORT = [name for name in SLIM.names if name != "parts_acked"]


def stamp(view: Mapping[str, Any]) -> str:
    """What a snapshot taken now is true for: the job's state and the ledger counters that change
    with any row's outcome."""
    counts, receipts = view["counts"], view["receipts"]
    values = [counts["acked"], counts["failed"], counts["unknown"], counts["cancelled"]]
    values += [counts["opted_out"], counts["no_consent"], counts["frequency_capped"], counts["expired"]]
    values += [receipts["received"], receipts["duplicates"]]
    return f"v5|{view['state']}|" + "|".join(map(str, values))  # v5: and rows capped


def slim(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A report batch as the snapshot keeps it (:data:`SLIM`)."""
    ids = batch.column("message_ids")
    acked = pc.if_else(pc.is_null(ids), 0, pc.add(pc.count_substring(ids, " "), 1))
    columns = {name: batch.column(name) for name in _FROM_REPORT}
    columns["parts_acked"] = pc.cast(acked, pa.int32())
    return pa.RecordBatch.from_arrays([columns[f.name] for f in SLIM], schema=SLIM)


def from_ledgers(
    store: JobStore, job_id: str, record: JobRecord, directory: JobDir, state: JobState
) -> Iterator[pa.RecordBatch]:
    """The rows' outcomes from the ledgers, in row order, as the snapshot keeps them (:data:`SLIM`)."""
    batches = report_batches(
        store.client,
        job_id,
        directory,
        state=state,
        ledgers=record.ledgers,
        batch_rows=BATCH_ROWS,
        engagement=False,
    )
    return (slim(batch) for batch in batches)


def ensure(
    store: JobStore, job_id: str, record: JobRecord, view: Mapping[str, Any], directory: JobDir
) -> bool:
    """Make the prepared job's snapshot true if it is not (read from the ledgers); False while its
    outcomes may still change (running, or receipts awaited): then there is none."""
    now = stamp(view)
    if is_current(record, now):
        return True
    state = JobState(view["state"])
    if not (state.terminal and view["receipts"]["awaiting"] == 0):
        return False
    # One process reads the ledgers for the snapshot (the job's actor as it ends, or the first
    # reader); another waits for it rather than read every row again beside it.
    lock, token = keys.job_summary_lock(job_id), secrets.token_hex(8)
    while not store.client.set(lock, token, nx=True, ex=LOCK_SECONDS):
        time.sleep(0.2)
        if is_current(store.record(job_id), now):
            return True
    try:
        chunks = _write(store, job_id, record, directory, state, lock=lock, token=token)
        store.update(job_id, outcomes_stamp=now, outcomes_files=f"{token} {chunks}")
    finally:
        if store.client.get(lock) == token.encode():
            store.client.delete(lock)
    _remove_others(directory, token)
    return True


def is_current(record: JobRecord, now: str) -> bool:
    """Whether the job's snapshot was taken at *now* (:func:`stamp` of the job as it is)."""
    return record.outcomes_stamp == now and _files(record) is not None


class Folder(Protocol):
    """What takes a snapshot's chunks one at a time (``cluster.reports.tally.Fold``)."""

    def add(self, table: pa.Table) -> None: ...


def fold(store: JobStore, job_id: str, directory: JobDir, start: Callable[[], F]) -> F | None:
    """The snapshot the job's record names, its chunks (the columns the summary uses: the message
    ids are the report's) added one at a time to a folder *start* makes; None if there is none, or
    it is gone. A newer one, taken since the record was read, removes it: then the record is read
    again and the folding starts over. One gone otherwise (its files deleted by hand, say) is
    forgotten, so that the next summary takes it again."""
    for _ in range(2):
        files = _files(store.record(job_id))
        if files is None:
            return None
        token, chunks = files
        folder = start()
        try:
            for i in range(chunks):
                folder.add(pq.read_table(directory.open_input(_chunk(token, i)), columns=SUMMARY_COLUMNS))
        except FileNotFoundError:
            continue
        return folder
    log.warning("summary.snapshot_gone", job_id=job_id, snapshot=token)
    if _files(store.record(job_id)) == files:
        store.client.hdel(keys.job(job_id), "outcomes_files")
    return None


def current_outcomes(
    store: JobStore, job_id: str, directory: JobDir, *, wait: float = SNAPSHOT_WAIT
) -> Iterator[pa.RecordBatch] | None:
    """The ended job's rows' outcomes from its snapshot (``row`` and the report's outcome columns,
    in row order), for the report to read in step with its rows instead of every row's ledger: the
    current snapshot's, or one being taken, followed as its chunks are written (waiting up to *wait*
    seconds for each). None when there is neither. The batches may stop short of the job's rows (a
    taker that died, a snapshot replaced while read): the report reads the rest from the ledgers."""
    view, record = store.view_and_record(job_id)
    files = _files(record)
    if files is not None and record.outcomes_stamp == stamp(view):
        return _chunks(directory, *files)
    taking = store.client.get(keys.job_summary_lock(job_id))
    if taking is None:
        return None
    token = taking.decode() if isinstance(taking, bytes) else str(taking)
    return _follow(store, job_id, directory, token, wait=wait)


def _write(
    store: JobStore,
    job_id: str,
    record: JobRecord,
    directory: JobDir,
    state: JobState,
    *,
    lock: str,
    token: str,
) -> int:
    """The rows' outcomes from the ledgers, written in chunks a batch at a time (the process that
    takes it holds one batch, not the job: 10M rows' outcomes are ~1 GiB in memory), keeping *lock*
    while it reads; returns the number of chunks."""
    chunks = _Chunks(directory, token)
    try:
        for batch in from_ledgers(store, job_id, record, directory, state):
            chunks.write(batch)
            store.client.expire(lock, LOCK_SECONDS)  # a holder that dies lets go within it
        chunks.close()
    except BaseException:
        chunks.abandon()
        raise
    return chunks.written


class _Chunks:
    """Snapshot *token*'s chunks as they are written, each whole (under a temporary name, then its
    own) before the next is begun: a follower finds a chunk complete or not at all."""

    def __init__(self, directory: JobDir, token: str) -> None:
        self._directory = directory
        self._token = token
        self._sink: pa.NativeFile | None = None
        self._writer: pq.ParquetWriter | None = None
        self._held = 0
        self.written = 0
        directory.make_folder(f"{FOLDER}/{token}")

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._sink = self._directory.open_output(self._name() + ".tmp")
            self._writer = pq.ParquetWriter(self._sink, SLIM, compression="zstd")
        self._writer.write_batch(batch)
        self._held += batch.num_rows
        if self._held >= CHUNK_ROWS:
            self.close()

    def close(self) -> None:
        """The chunk being written, done (nothing when none is)."""
        if self._writer is None or self._sink is None:
            return
        self._writer.close()
        self._sink.close()
        self._directory.move(self._name() + ".tmp", self._name())
        self._writer, self._sink, self._held = None, None, 0
        self.written += 1

    def abandon(self) -> None:
        """The snapshot given up: its folder removed (quietly: the error that stopped it is the one
        its taker raises)."""
        with contextlib.suppress(Exception):
            if self._writer is not None and self._sink is not None:
                self._writer.close()
                self._sink.close()
        with contextlib.suppress(OSError):
            self._directory.delete_folder(f"{FOLDER}/{self._token}")

    def _name(self) -> str:
        return _chunk(self._token, self.written)


def _remove_others(directory: JobDir, token: str) -> None:
    """Every snapshot but *token*'s (a report still reading one finds its next chunk gone and reads
    the rest from the ledgers), and the one-file snapshot of an older Ulak."""
    for other in directory.folders(FOLDER):
        if other != token:
            directory.delete_folder(f"{FOLDER}/{other}")
    directory.delete(LEGACY)


def _files(record: JobRecord) -> tuple[str, int] | None:
    """The named snapshot's token and number of chunks (None: none named)."""
    token, _, chunks = (record.outcomes_files or "").partition(" ")
    return (token, int(chunks)) if token and chunks.isdigit() else None


def _chunk(token: str, index: int) -> str:
    return f"{FOLDER}/{token}/{index:05d}.parquet"


def _chunks(directory: JobDir, token: str, chunks: int) -> Iterator[pa.RecordBatch]:
    for index in range(chunks):
        if not (yield from _read_chunk(directory, _chunk(token, index))):
            return


def _read_chunk(directory: JobDir, name: str) -> Generator[pa.RecordBatch, None, bool]:
    """The report's columns of chunk *name*, a batch at a time; returns False if it is gone (a newer
    snapshot removed it): the follower stops there and the report reads the ledgers."""
    try:
        parquet = directory.parquet(name)
        with contextlib.closing(parquet):
            yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=_REPORT_COLUMNS)
    except OSError as exc:  # FileNotFoundError among them
        log.info("report.snapshot_gone", chunk=name, error=str(exc))
        return False
    return True


def _follow(
    store: JobStore, job_id: str, directory: JobDir, token: str, *, wait: float
) -> Iterator[pa.RecordBatch]:
    """The chunks of snapshot *token* as they are written, until its taker has named it (every chunk
    read) or has given up (died, failed), or no chunk came for *wait* seconds."""
    lock = keys.job_summary_lock(job_id)
    index, since = 0, time.monotonic()
    while True:
        name = _chunk(token, index)
        if directory.exists(name):
            if not (yield from _read_chunk(directory, name)):
                return
            index, since = index + 1, time.monotonic()
            continue
        if store.client.get(lock) != token.encode():  # taken, or given up: the record says which
            files = _files(store.record(job_id))
            if files is None or files[0] != token or index >= files[1]:
                return
            continue  # its last chunks were written between the look above and the lock's end
        if time.monotonic() - since > wait:
            log.warning("report.snapshot_slow", job_id=job_id, chunk=index, waited=wait)
            return
        time.sleep(0.2)
