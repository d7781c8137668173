"""The row-level report of a job: every accepted row with what happened to it, streamed in batches.

Rows come from the job's ``accepted.parquet`` in file order; outcomes from the ledger's hashes in
Redis, fetched with one pipelined HGETALL a bucket of rows per batch (never a round trip per row).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import redis

from cluster.jobs.states import JobState
from ingest.collect import ACCEPTED_FILE, REJECTED_FILE
from ingest.formulas import neutralised
from ulak import keys
from ulak.dispatch.ledger import LedgerReader, outcome_of
from ulak.jobfiles import JobDir
from ulak.money import from_micros
from ulak.records import DELIVERED, Ack, PartState, Receipt, Stopped
from ulak.smpp.constants import status_name

VALUE = pa.decimal128(24, 6)

REPORT_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("msisdn", pa.string()),
        ("operator", pa.string()),
        ("parts", pa.int32()),
        ("encoding", pa.string()),
        ("variant", pa.string()),  # of an A/B test (ulak.variants); empty without one
        ("phase", pa.string()),  # test then winner: test (the slice) or rest (the winner's); else empty
        # pending, cancelled, in_flight, acked, failed, unknown; opted_out, no_consent or
        # frequency_capped: stopped unsent
        # unsent while the job ran (its time in error)
        ("status", pa.string()),
        ("receipt", pa.string()),  # delivered, undelivered, expired, rejected, deleted, receipt_unknown
        ("error", pa.string()),  # SMPP status of a failed part, or a negative receipt's err code
        ("message_ids", pa.string()),  # the SMSC's ids of the parts, space-separated, in part order
        ("acked_at", pa.timestamp("ms", tz="UTC")),  # the last part's submit_sm_resp
        ("receipt_at", pa.timestamp("ms", tz="UTC")),  # the last part's delivery receipt
        ("link_code", pa.string()),  # the row's tracked link's code ({link}: ulak.links)
        ("clicks", pa.int64()),  # people's clicks on it (bots apart: they are the job's, not a row's)
        ("first_click_at", pa.timestamp("ms", tz="UTC")),
        ("conversions", pa.int64()),  # attributed to this job (cluster.engagement.conversions)
        ("value", VALUE),  # theirs, in measurement.currency
    ]
)


def report_batches(
    client: redis.Redis,
    job_id: str,
    directory: JobDir,
    *,
    state: JobState,
    ledgers: Mapping[str, str],
    batch_rows: int = 10_000,
    engagement: bool = True,
    outcomes: Iterator[pa.RecordBatch] | None = None,
) -> Iterator[pa.RecordBatch]:
    """The report of *job_id* in row order (empty before the job's rows are prepared); *ledgers*: its
    operators' (``JobRecord.ledgers``). Without *engagement* the clicks and conversions columns are
    left empty (the summary reads them on their own). *outcomes*: an ended job's outcomes snapshot
    (``cluster.reports.snapshot.current_outcomes``: ``row`` and :data:`OUTCOME_COLUMNS` in row
    order; where it stops short, the ledgers answer), read instead of every row's ledger: a million
    rows' ledgers took ~40 s, the snapshot's columns none (clicks and conversions are read fresh).
    The snapshot is read in step with the rows file, a batch at a time: the report's memory does not
    grow with the job."""
    if not directory.exists(ACCEPTED_FILE):
        return
    unsent = "cancelled" if state is JobState.CANCELLED else "pending"
    snapshot = _InStep(outcomes) if outcomes is not None else None
    for batch in directory.parquet(ACCEPTED_FILE).iter_batches(batch_size=batch_rows):
        rows: list[int] = batch.column("row").to_pylist()
        known = _from_snapshot(snapshot.take(batch.num_rows), batch) if snapshot is not None else None
        columns = known or _from_ledgers(client, job_id, ledgers, batch, rows, unsent=unsent)
        if engagement:
            codes, clicks, first_click = _clicks(client, job_id, batch, rows)
            conversions, value = _conversions(client, job_id, rows)
        else:
            n = len(rows)
            codes, clicks = _column(batch, "link_code"), pa.nulls(n, pa.int64())
            first_click = pa.nulls(n, pa.timestamp("ms", tz="UTC"))
            conversions, value = pa.nulls(n, pa.int64()), pa.nulls(n, VALUE)
        yield pa.RecordBatch.from_arrays(
            [
                batch.column("row"),
                batch.column("msisdn"),
                batch.column("operator"),
                batch.column("parts"),
                batch.column("encoding"),
                _column(batch, "variant"),
                _column(batch, "phase"),
                *columns,
                codes,
                clicks,
                first_click,
                conversions,
                value,
            ],
            schema=REPORT_SCHEMA,
        )


OUTCOME_COLUMNS = ("status", "receipt", "error", "message_ids", "acked_at", "receipt_at")
_IN_STEP = pa.schema([REPORT_SCHEMA.field(name) for name in ("row", *OUTCOME_COLUMNS)])


class _InStep:
    """An outcomes snapshot read alongside the rows file (the same rows in the same order): the next
    *n* rows at a time, holding no more than a batch or two of them."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self._batches = batches
        self._held = _IN_STEP.empty_table()

    def take(self, n: int) -> pa.Table:
        """The next *n* rows (fewer at the end)."""
        while self._held.num_rows < n:
            more = next(self._batches, None)
            if more is None:
                break
            more_table = pa.Table.from_batches([more]).select(_IN_STEP.names).cast(_IN_STEP)
            self._held = pa.concat_tables([self._held, more_table])
        piece, self._held = self._held.slice(0, n), self._held.slice(n)
        return piece


def _from_snapshot(piece: pa.Table, batch: pa.RecordBatch) -> list[pa.Array] | None:
    """The outcome columns of *batch* from *piece*, the snapshot's rows in step with it; None if they
    are not the same rows (then the ledgers)."""
    if piece.num_rows != batch.num_rows or not piece.column("row").combine_chunks().equals(
        batch.column("row")
    ):
        return None
    return [piece.column(name).combine_chunks() for name in OUTCOME_COLUMNS]


def _from_ledgers(
    client: redis.Redis,
    job_id: str,
    ledgers: Mapping[str, str],
    batch: pa.RecordBatch,
    rows: list[int],
    *,
    unsent: str,
) -> list[pa.Array]:
    """The outcome columns of *batch* from its rows' ledger fields: one HGETALL a bucket of rows,
    pipelined."""
    parts: list[int] = batch.column("parts").to_pylist()
    operators: list[str] = batch.column("operator").to_pylist()
    buckets = LedgerReader(client, job_id, ledgers).hashes(operators, rows)
    found: list[_RowOutcome] = []
    for r, n, its in zip(rows, parts, buckets, strict=True):
        key = keys.row_field(r).encode()
        got = None
        if n == 1:
            got = _one_part_outcome(key, its.get(key), its, unsent=unsent)
        if got is None:
            got = _row_outcome(
                n,
                [its.get(key), its.get(key + b":o"), its.get(key + b":x")],
                [its.get(b"%s:%d:%s" % (key, p, x)) for p in range(1, n + 1) for x in (b"m", b"e", b"r")],
                unsent=unsent,
            )
        found.append(got)
    status, receipt, error, ids, acked_at, receipt_at = (list(c) for c in zip(*found, strict=True))
    return [
        pa.array(status, pa.string()),
        pa.array(receipt, pa.string()),
        pa.array(error, pa.string()),
        pa.array(ids, pa.string()),
        pa.array(acked_at, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        pa.array(receipt_at, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
    ]


_ACKED = PartState.ACKED.encode()

_RowOutcome = tuple[str, str | None, str | None, str | None, int | None, int | None]

_STATUS_OF = {state.encode(): state.status for state in PartState}


def _one_part_outcome(
    key: bytes, state: bytes | None, row: Mapping[bytes, bytes], *, unsent: str
) -> _RowOutcome | None:
    """What :func:`_row_outcome` finds for the one-part row *key* (``keys.row_field``) in *state*,
    read from its bucket's hash *row* without building a record a field: a report, and the snapshot
    a job takes as it ends, read every row (10M rows: ~250 s through ``_row_outcome``). None for a
    row it leaves to ``_row_outcome``: stopped unsent, or a state it does not know."""
    status = unsent if state is None else _STATUS_OF.get(state)
    if status is None or key + b":x" in row:
        return None
    outcome = row.get(key + b":o")
    receipt = outcome.decode() if outcome is not None else None
    ack, fault, got = row.get(key + b":1:m"), row.get(key + b":1:e"), row.get(key + b":1:r")
    ids: str | None = None
    acked: int | None = None
    if ack is not None:
        message_id, acked = Ack.unpack(ack)
        ids = message_id or None
    error = _failure_text(fault) if fault is not None else None
    received: int | None = None
    if got is not None:
        said, err, received = Receipt.unpack(got)
        if receipt is None and state == _ACKED:
            receipt = outcome_of(said)
        if error is None and said != DELIVERED:
            error = _negative_text(said, err)
    return status, receipt, error, ids, acked, received


def _failure_text(raw: bytes) -> str:
    """A failed part's error as the report shows it: its SMPP status, in hex and by name."""
    code = int(raw)
    return f"0x{code:08X} {status_name(code)}"


def _negative_text(status: str, error: str) -> str:
    """A negative receipt's error as the report shows it: its stat and err fields."""
    return f"{status} err:{error}"


def _row_outcome(n: int, row: list[bytes | None], mine: list[bytes | None], *, unsent: str) -> _RowOutcome:
    """One row's (status, receipt outcome, error, message ids, acked at, receipt at) from its ledger
    fields (*row*: its state and outcome; *mine*: each of its *n* parts' ack, error and receipt)."""
    state_raw, outcome, stopped_raw = row
    status = PartState.read(state_raw).status if state_raw is not None else unsent
    if stopped_raw is not None:  # never sent: the recipient refused while it waited
        stopped = Stopped.read(stopped_raw)
        when = datetime.fromtimestamp(stopped.at_ms / 1000, UTC).isoformat(timespec="seconds")
        why = {
            "frequency_capped": f"not sent ({when}): the recipient's frequency cap was reached",
            "expired": f"not sent ({when}): the recipient's send window opens only past its validity",
        }.get(stopped.reason, f"stopped at {when}: the recipient refused while the job ran")
        return stopped.reason, None, why, None, None, None
    receipts = [Receipt.read(r) if r is not None else None for r in mine[2::3]]  # each read once
    if outcome is None and n == 1 and state_raw == _ACKED and receipts[0] is not None:
        # a single-part row's outcome is its receipt's (the ledger keeps no field for it)
        derived = outcome_of(receipts[0].status)
        outcome = derived.encode() if derived is not None else None
    row_ids: list[str] = []
    failed: str | None = None
    negative: str | None = None
    acked: int | None = None
    received: int | None = None
    for m, e, got in zip(mine[0::3], mine[1::3], receipts, strict=True):
        if m is not None:
            ack = Ack.read(m)
            row_ids.append(ack.message_id)
            acked = max(acked or 0, ack.at_ms)
        if e is not None and failed is None:
            failed = _failure_text(e)
        if got is not None:
            received = max(received or 0, got.at_ms)
            if not got.delivered and negative is None:
                negative = _negative_text(got.status, got.error)
    receipt = outcome.decode() if outcome is not None else None
    return status, receipt, failed or negative, " ".join(row_ids) or None, acked, received


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    """A column of *batch*, or nulls for a file written before it existed."""
    at = batch.schema.get_field_index(name)
    return batch.column(at) if at >= 0 else pa.nulls(batch.num_rows, pa.string())


def _clicks(
    client: redis.Redis, job_id: str, batch: pa.RecordBatch, rows: list[int]
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """A batch's link codes, and its rows' clicks and first click times: one HMGET for the batch,
    none for a job without links (or prepared before they existed: its file has no codes)."""
    n = len(rows)
    codes = _column(batch, "link_code")
    if not n or codes.null_count == n:
        return codes, pa.nulls(n, pa.int64()), pa.nulls(n, pa.timestamp("ms", tz="UTC"))
    fields = [f for r in rows for f in (str(r), f"{r}:t")]
    raw: list[bytes | None] = client.hmget(keys.job_clicked_rows(job_id), fields)  # type: ignore[assignment]
    clicks = [int(c) if (c := raw[2 * i]) is not None else 0 for i in range(n)]
    first = [int(t) if (t := raw[2 * i + 1]) is not None else None for i in range(n)]
    return (
        codes,
        pa.array(clicks, pa.int64()),
        pa.array(first, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
    )


def _conversions(client: redis.Redis, job_id: str, rows: list[int]) -> tuple[pa.Array, pa.Array]:
    """A batch's rows' attributed conversions and their value: one HMGET for the batch (none when the
    job has none)."""
    n = len(rows)
    if not n or not client.exists(keys.job_converted_rows(job_id)):
        return pa.nulls(n, pa.int64()), pa.nulls(n, VALUE)
    fields = [f for r in rows for f in (str(r), f"{r}:v")]
    raw: list[bytes | None] = client.hmget(keys.job_converted_rows(job_id), fields)  # type: ignore[assignment]
    count = [int(c) if (c := raw[2 * i]) is not None else 0 for i in range(n)]
    value = [from_micros(int(v)) if (v := raw[2 * i + 1]) is not None else None for i in range(n)]
    return pa.array(count, pa.int64()), pa.array(value, VALUE)


def rejected_batches(directory: JobDir) -> Iterator[pa.RecordBatch]:
    """The rejected-rows report (row, reason, detail, the row's original values), in row order."""
    if directory.exists(REJECTED_FILE):
        yield from directory.parquet(REJECTED_FILE).iter_batches(batch_size=10_000)


def rejected_schema(directory: JobDir) -> pa.Schema | None:
    if not directory.exists(REJECTED_FILE):
        return None
    return directory.parquet(REJECTED_FILE).schema_arrow


class _Sink(io.RawIOBase):
    """A write-only file that hands out what was written so far (streams a Parquet file)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.chunks = b"".join(self.chunks), []
        return out


def as_csv(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    """CSV bytes: the header line first, before the first batch is asked for (a client has its
    first bytes while the rows are still being gathered), then a batch at a time; cells a
    spreadsheet would run as formulas are quoted (``ingest.formulas``)."""
    buffer = io.BytesIO()
    pacsv.write_csv(schema.empty_table(), buffer)
    yield buffer.getvalue()
    for batch in batches:
        buffer = io.BytesIO()
        pacsv.write_csv(
            _utc_as_text(neutralised(pa.Table.from_batches([batch], schema))),
            buffer,
            pacsv.WriteOptions(include_header=False),
        )
        yield buffer.getvalue()


def _utc_as_text(table: pa.Table) -> pa.Table:
    """*table* with its UTC times as the text the CSV writer makes of them (``2026-12-06
    10:00:00.123Z``), made without a time-zone lookup a cell: the writer's own took ~1 µs a cell,
    80 % of writing a report (its two times: 0.4 s of 0.5 a 200k rows). Text cells come out quoted,
    which changes no value read back."""
    for at, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz == "UTC":
            naive = table.column(at).cast(pa.timestamp(field.type.unit))
            text = pc.binary_join_element_wise(naive.cast(pa.string()), pa.scalar("Z"), "")
            table = table.set_column(at, field.name, text)
    return table


def as_parquet(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    """Parquet bytes, a row group at a time (the footer comes last)."""
    sink = _Sink()
    with pq.ParquetWriter(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            chunk = sink.take()
            if chunk:
                yield chunk
    yield sink.take()
