"""Test then send the winner: pick the variant that did best in the test slice, and give it to the rest.

A job with ``test_share`` sends its test slice (``phase`` = test: the recipients split across the
variants) first. The rest (``phase`` = rest) were prepared with every variant's text in
``rest.parquet``, and wait. ``decide_after_minutes`` after the last test message was handed to the
binds, the runner calls :func:`decide`: per variant, the test slice's delivered recipients and how
many of them clicked (or converted: ``winner_by``), the highest rate wins (on a tie, or with nothing
to go by, the first variant listed), and :func:`rewrite` gives every rest row the winner's text,
parts, encoding and name in ``accepted.parquet`` (a new file moved over the old: the report, the
ledger's readers and a resumed runner then all see the rows as sent). The decision and its figures
are kept in the job record (``decision``), and ``winner`` is set last: until it is, nothing of the
rest has been sent, and deciding again is harmless.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import redis

from cluster.jobs.options import JobOptions
from cluster.jobs.states import JobState
from cluster.reports.report import report_batches
from ingest.collect import ACCEPTED_FILE, ACCEPTED_SCHEMA, REST_FILE
from ulak.jobfiles import JobDir
from ulak.variants import REST, compare


def figures(
    client: redis.Redis, job_id: str, directory: JobDir, *, names: tuple[str, ...], ledgers: Mapping[str, str]
) -> dict[str, dict[str, int]]:
    """Per variant, the test slice's delivered recipients and how many of them clicked and converted."""
    found = {name: {"delivered": 0, "clicked": 0, "converted": 0} for name in names}
    for batch in report_batches(client, job_id, directory, state=JobState.SENDING, ledgers=ledgers):
        test = pc.fill_null(pc.not_equal(batch.column("phase"), REST), True)
        delivered = pc.and_(test, pc.fill_null(pc.equal(batch.column("receipt"), "delivered"), False))
        rows = batch.filter(delivered)
        variant = rows.column("variant").to_pylist()
        clicked = np.asarray(pc.fill_null(rows.column("clicks"), 0).to_numpy()) > 0
        converted = np.asarray(pc.fill_null(rows.column("conversions"), 0).to_numpy()) > 0
        for i, name in enumerate(variant):
            if name in found:
                found[name]["delivered"] += 1
                found[name]["clicked"] += int(clicked[i])
                found[name]["converted"] += int(converted[i])
    return found


def decide(
    client: redis.Redis,
    job_id: str,
    directory: JobDir,
    *,
    options: JobOptions,
    ledgers: Mapping[str, str],
    now: float | None = None,
) -> dict[str, Any]:
    """The winner by ``options.winner_by``, with the figures it was picked on."""
    names = tuple(v.name for v in options.variants or ())
    found = figures(client, job_id, directory, names=names, ledgers=ledgers)
    metric = "clicked" if options.winner_by == "clicks" else "converted"
    successes = [found[n][metric] for n in names]
    trials = [found[n]["delivered"] for n in names]
    rates = [s / t if t else 0.0 for s, t in zip(successes, trials, strict=True)]
    best = max(range(len(names)), key=lambda i: (rates[i], -i))  # a tie: the first listed
    tested = compare(names, successes, trials)
    return {
        "winner": names[best],
        "by": options.winner_by,
        "rate": f"{'unique clicks' if metric == 'clicked' else 'converters'} / delivered",
        "decided_at": round(now if now is not None else time.time(), 3),
        "variants": {n: {**found[n], "rate": round(r, 4)} for n, r in zip(names, rates, strict=True)},
        "p_value": tested["p_value"],
        "significant": tested["significant"],
        "probability_best": tested["probability_best"],
        "reason": None if any(successes) else f"nothing {metric} in the test slice: the first variant",
    }


class _RestRows:
    """``rest.parquet`` read in step with the rest rows of ``accepted.parquet`` (the same order)."""

    def __init__(self, directory: JobDir) -> None:
        self._batches: Iterator[pa.RecordBatch] = directory.parquet(REST_FILE).iter_batches(batch_size=50_000)
        self._buffer = pa.table({"row": pa.array([], pa.int64())})
        self._at = 0

    def take(self, n: int) -> pa.Table:
        while self._buffer.num_rows - self._at < n:
            batch = next(self._batches)
            rest = self._buffer.slice(self._at)
            self._buffer = (
                pa.concat_tables([rest, pa.Table.from_batches([batch])])
                if rest.num_rows
                else (pa.Table.from_batches([batch]))
            )
            self._at = 0
        out = self._buffer.slice(self._at, n)
        self._at += n
        return out


def rewrite(directory: JobDir, winner: str) -> int:
    """Give every rest row of ``accepted.parquet`` *winner*'s text, parts, encoding and name; returns
    how many parts the rest has now less the parts it was counted with (the first variant's)."""
    source = directory.parquet(ACCEPTED_FILE)
    rest = _RestRows(directory)
    delta = 0
    with (
        directory.open_output(ACCEPTED_FILE + ".tmp") as sink,
        pq.ParquetWriter(
            sink,
            ACCEPTED_SCHEMA,
            use_dictionary=["operator", "encoding", "variant", "phase"],
            write_statistics=["row"],
        ) as writer,
    ):
        for batch in source.iter_batches(batch_size=50_000):
            table = pa.Table.from_batches([batch])
            mask = pc.fill_null(pc.equal(table.column("phase"), REST), False).combine_chunks()
            where = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
            if where.size:
                theirs = rest.take(int(where.size))
                if not pc.all(
                    pc.equal(theirs.column("row"), table.column("row").take(pa.array(where)))
                ).as_py():
                    raise RuntimeError("rest.parquet is out of step with accepted.parquet")
                delta += int(pc.sum(theirs.column(f"parts@{winner}")).as_py() or 0)
                delta -= int(pc.sum(table.column("parts").take(pa.array(where))).as_py() or 0)
                table = _replaced(table, mask, theirs, winner)
            writer.write_table(table.cast(ACCEPTED_SCHEMA))
    directory.move(ACCEPTED_FILE + ".tmp", ACCEPTED_FILE)
    return delta


def _replaced(table: pa.Table, mask: pa.Array, theirs: pa.Table, winner: str) -> pa.Table:
    """*table* with the masked rows' text, parts, encoding and variant the winner's."""
    swaps = {
        "text": theirs.column(f"text@{winner}"),
        "parts": theirs.column(f"parts@{winner}"),
        "encoding": theirs.column(f"encoding@{winner}"),
        "variant": pa.array([winner] * theirs.num_rows, pa.string()),
    }
    for name, given in swaps.items():
        at = table.schema.get_field_index(name)
        column = table.column(at).combine_chunks()
        values = given.combine_chunks() if isinstance(given, pa.ChunkedArray) else given
        table = table.set_column(at, name, pc.replace_with_mask(column, mask, values.cast(column.type)))
    return table


def describe(decision: str | None) -> dict[str, Any] | None:
    """A job record's ``decision`` as the summary shows it."""
    return json.loads(decision) if decision else None
