"""The driver's ordered pass over the prepared blocks: de-duplicate, count, and write both reports.

Blocks arrive in file order. Each is checked against every number seen before it (first row wins,
:class:`ingest.dedupe.FirstSeen`), its rows to send are appended to ``accepted.parquet`` and its
refused rows to ``rejected.parquet``, the preview's counts grow, and the block is dropped. Nothing
holds the whole upload: memory grows with the number of distinct numbers (16 bytes each), not with
the file (BENCHMARKS.md, ingest).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingest.dedupe import FirstSeen
from ingest.formulas import neutralised
from ingest.numbers import as_uint64
from ingest.sources import ROW, Source
from ulak.jobfiles import JobDir
from ulak.variants import HOLDOUT, REST

ACCEPTED_FILE = "accepted.parquet"  # the rows to send, in file order (ACCEPTED_SCHEMA)
REJECTED_FILE = "rejected.parquet"  # the refused rows: row, reason, detail, the row's original values
HOLDOUT_FILE = "holdout.parquet"  # a job with a holdout: the rows kept unsent (HOLDOUT_SCHEMA)
REST_FILE = "rest.parquet"  # test then winner: each rest row's text, parts, encoding per variant

REASONS = (
    "malformed_row",  # a CSV line whose fields do not match the header
    "invalid_number",
    "not_mobile",
    "unknown_operator",  # no configured (or allowed) operator serves the number
    "empty_text",
    "template_error",  # a template field is empty in this row
    "too_many_parts",  # more parts than the operator's max_parts
    "opted_out",
    "no_consent",  # a commercial job's row whose number has no consent (ONAY) on record
    "no_optout_text",  # a commercial job's own text (a text column) does not say how to opt out
    "duplicate",  # the same number on an earlier row
)

# Columns each prepared block adds to the file's own.
MSISDN, OPERATOR, TEXT, ENCODING, PARTS, REASON, DETAIL = (
    "__msisdn",
    "__operator",
    "__text",
    "__encoding",
    "__parts",
    "__reason",
    "__detail",
)
LINK_CODE = "__link_code"  # the row's tracked-link code (ulak.links), null without {link}
VARIANT = "__variant"  # the row's variant of an A/B test, or "holdout" (ulak.variants); null: none
PHASE = "__phase"  # test then winner: "test" (the slice split across variants) or "rest"; null: none

# What a row to send carries (and a preview sample shows), in accepted.parquet.
ACCEPTED_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("msisdn", pa.string()),
        ("operator", pa.string()),
        ("text", pa.string()),
        ("parts", pa.int32()),
        ("encoding", pa.string()),
        ("link_code", pa.string()),
        ("variant", pa.string()),
        ("phase", pa.string()),
    ]
)
# Each of those columns' name in a prepared block.
ACCEPTED_COLUMNS = dict(
    zip(
        ACCEPTED_SCHEMA.names,
        (ROW, MSISDN, OPERATOR, TEXT, PARTS, ENCODING, LINK_CODE, VARIANT, PHASE),
        strict=True,
    )
)


def rest_columns(variant: str) -> tuple[str, str, str]:
    """A prepared block's (and ``rest.parquet``'s, without the ``__``) text, parts and encoding of a
    rest row under *variant* (test then winner: ``ulak.variants.REST``)."""
    return f"__text@{variant}", f"__parts@{variant}", f"__encoding@{variant}"


def rest_schema(variants: Sequence[str]) -> pa.Schema:
    fields = [("row", pa.int64())]
    for name in variants:
        fields += [
            (f"text@{name}", pa.string()),
            (f"parts@{name}", pa.int32()),
            (f"encoding@{name}", pa.string()),
        ]
    return pa.schema(fields)


# The rows a holdout keeps unsent: valid, routed, not opted out, each number once, like those sent.
HOLDOUT_SCHEMA = pa.schema([("row", pa.int64()), ("msisdn", pa.string()), ("operator", pa.string())])


def rejected_schema(columns: Sequence[str]) -> pa.Schema:
    return pa.schema(
        [("row", pa.int64()), ("reason", pa.string()), ("detail", pa.string())]
        + [(c, pa.string()) for c in columns]
    )


@dataclass
class Preview:
    """The cost preview: what would be sent, what was refused and why. Numbers add up:
    ``rows == accepted + held_out + sum(rejected.values())``."""

    rows: int = 0
    accepted: int = 0
    held_out: int = 0  # kept unsent by the job's holdout
    variants: dict[str, int] = field(default_factory=dict)  # messages per variant of an A/B test
    # per variant, per operator: messages and parts (what each variant costs)
    variant_operators: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    operators: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> messages, parts
    encodings: dict[str, int] = field(default_factory=dict)
    parts: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class PreparedCampaign:
    """A prepared upload: ``accepted.parquet`` and ``rejected.parquet`` in *directory*, and the preview."""

    source: Source
    columns: tuple[str, ...]
    directory: JobDir
    blocks: int  # how many blocks the upload was prepared in
    preview: Preview

    def _file(self, name: str) -> pq.ParquetFile:
        return self.directory.parquet(name)

    def accepted(self, batch_rows: int = 65_536) -> Iterator[pa.Table]:
        """Rows to send, in file order, with the columns of :data:`ACCEPTED_SCHEMA`."""
        for batch in self._file(ACCEPTED_FILE).iter_batches(batch_size=batch_rows):
            yield pa.Table.from_batches([batch])

    def accepted_table(self) -> pa.Table:
        return self._file(ACCEPTED_FILE).read()

    def rejected(self, batch_rows: int = 65_536) -> Iterator[pa.Table]:
        """Refused rows, in file order: ``row, reason, detail`` and the row's original values."""
        for batch in self._file(REJECTED_FILE).iter_batches(batch_size=batch_rows):
            yield pa.Table.from_batches([batch])

    def write_rejected(self, path: Path) -> int:
        """Write the rejected-rows report as CSV (formulas quoted: ``ingest.formulas``) or Parquet (by
        *path*'s suffix) to the local file *path*; return its row count."""
        if path.suffix.lower() == ".parquet":
            if str(path.resolve()) != self.directory.file(REJECTED_FILE):
                with self.directory.open_input(REJECTED_FILE) as source, path.open("wb") as sink:
                    shutil.copyfileobj(source, sink, length=1 << 20)
        else:
            with pacsv.CSVWriter(path, rejected_schema(self.columns)) as writer:
                for table in self.rejected():
                    writer.write_table(neutralised(table))
        return int(self._file(REJECTED_FILE).metadata.num_rows)


class Collector:
    """Consumes prepared blocks in file order (see the module docstring); :meth:`finish` makes the
    two files visible at once, so a half-written upload never looks prepared."""

    def __init__(
        self,
        directory: JobDir,
        *,
        source: Source,
        columns: tuple[str, ...],
        operators: Sequence[str],
        samples: int,
        holdout: bool = False,
        rest_variants: Sequence[str] = (),
    ) -> None:
        self.directory = directory
        self._variant_parts: Counter[tuple[str, str]] = Counter()
        self._variant_messages: Counter[tuple[str, str]] = Counter()
        self.source = source
        self.columns = columns
        self.samples = samples
        self._operators = pa.array(list(operators), pa.string())
        self._messages = np.zeros(len(operators), dtype=np.int64)
        self._parts = np.zeros(len(operators), dtype=np.int64)
        self._reasons: Counter[str] = Counter()
        self._encodings: Counter[str] = Counter()
        self._seen = FirstSeen()
        self.preview = Preview()
        self.blocks = 0
        self._rejected_schema = rejected_schema(columns)
        # Streams of the job's filesystem: on an object store each becomes one object when closed.
        self._files = (
            ACCEPTED_FILE,
            REJECTED_FILE,
            *((HOLDOUT_FILE,) if holdout else ()),
            *((REST_FILE,) if rest_variants else ()),
        )
        self._sinks = [directory.open_output(name + ".tmp") for name in self._files]
        # Dictionaries and statistics only where they pay: personalised texts and numbers are nearly
        # all distinct, and building both for them doubled the write (BENCHMARKS.md, ingest).
        self._accepted = pq.ParquetWriter(
            self._sinks[0],
            ACCEPTED_SCHEMA,
            use_dictionary=["operator", "encoding", "variant", "phase"],
            write_statistics=["row"],
        )
        self._held = (
            pq.ParquetWriter(self._sinks[2], HOLDOUT_SCHEMA, use_dictionary=["operator"]) if holdout else None
        )
        self._rest_variants = tuple(rest_variants)
        self._rest = (
            pq.ParquetWriter(self._sinks[-1], rest_schema(rest_variants), write_statistics=["row"])
            if rest_variants
            else None
        )
        self._refused = pq.ParquetWriter(
            self._sinks[1],
            self._rejected_schema,
            use_dictionary=["reason"],
            write_statistics=["row"],
        )

    def add(self, table: pa.Table) -> None:
        """One prepared block, the next in file order."""
        self.blocks += 1
        n = table.num_rows
        self.preview.rows += n
        reason = table.column(REASON).combine_chunks()
        ok = np.asarray(pc.is_null(reason).to_numpy(zero_copy_only=False), dtype=bool)
        candidates = np.flatnonzero(ok)
        numbers = as_uint64(table.column(MSISDN).combine_chunks().take(pa.array(candidates)))
        first = self._seen.check(numbers, table.column(ROW).to_numpy()[candidates])
        repeats = candidates[first >= 0]
        duplicate = np.zeros(n, dtype=bool)
        duplicate[repeats] = True

        keep = ok & ~duplicate
        if self._held is not None:
            held = keep & np.asarray(
                pc.fill_null(pc.equal(table.column(VARIANT), HOLDOUT), False).to_numpy(zero_copy_only=False),
                dtype=bool,
            )
            if held.any():
                out_rows = table.filter(pa.array(held))
                self.preview.held_out += out_rows.num_rows
                self._held.write_table(
                    pa.table([out_rows.column(c) for c in (ROW, MSISDN, OPERATOR)], schema=HOLDOUT_SCHEMA)
                )
                keep &= ~held
        sent = table.filter(pa.array(keep))
        self._count(sent)
        if self._rest is not None:
            rest = sent.filter(pc.fill_null(pc.equal(sent.column(VARIANT), REST), False))
            if rest.num_rows:
                columns = [rest.column(ROW)] + [
                    rest.column(c) for name in self._rest_variants for c in rest_columns(name)
                ]
                self._rest.write_table(pa.table(columns, schema=rest_schema(self._rest_variants)))
        self._accepted.write_table(
            pa.table([sent.column(c) for c in ACCEPTED_COLUMNS.values()], schema=ACCEPTED_SCHEMA)
        )

        detail = table.column(DETAIL).combine_chunks()
        if repeats.size:
            mask = pa.array(duplicate)
            reason = pc.replace_with_mask(reason, mask, pa.array(["duplicate"] * repeats.size))
            detail = pc.replace_with_mask(
                detail,
                mask,
                pa.array([f"same number as row {r}" for r in first[first >= 0].tolist()], pa.string()),
            )
        refused = pc.is_valid(reason)
        self._reasons.update(
            {d["values"]: d["counts"] for d in pc.value_counts(reason.filter(refused)).to_pylist()}
        )
        out = pa.table(
            [
                table.column(ROW).combine_chunks(),
                reason,
                detail,
                *(table.column(c).combine_chunks() for c in self.columns),
            ],
            names=self._rejected_schema.names,
        ).filter(refused)
        if out.num_rows:
            self._refused.write_table(out.cast(self._rejected_schema))

    def _count(self, sent: pa.Table) -> None:
        preview = self.preview
        preview.accepted += sent.num_rows
        if not sent.num_rows:
            return
        op = np.asarray(
            pc.index_in(sent.column(OPERATOR), value_set=self._operators).to_numpy(zero_copy_only=False),
            dtype=np.int64,
        )
        size = len(self._operators)
        self._messages += np.bincount(op, minlength=size)
        self._parts += np.bincount(op, weights=sent.column(PARTS).to_numpy(), minlength=size).astype(np.int64)
        self._encodings.update(
            {d["values"]: d["counts"] for d in pc.value_counts(sent.column(ENCODING)).to_pylist()}
        )
        if sent.column(VARIANT).null_count < sent.num_rows:
            grouped = sent.group_by([VARIANT, OPERATOR]).aggregate([(PARTS, "sum"), (PARTS, "count")])
            columns = (VARIANT, OPERATOR, f"{PARTS}_sum", f"{PARTS}_count")
            for variant, op, parts, messages in zip(
                *(grouped.column(c).to_pylist() for c in columns), strict=True
            ):
                if variant:
                    self._variant_parts[variant, op] += parts
                    self._variant_messages[variant, op] += messages
        if len(preview.samples) < self.samples:
            for row in sent.slice(0, self.samples - len(preview.samples)).to_pylist():
                preview.samples.append({name: row[column] for name, column in ACCEPTED_COLUMNS.items()})

    def finish(self) -> PreparedCampaign:
        self._close()
        if self._held is not None:
            self.directory.move(HOLDOUT_FILE + ".tmp", HOLDOUT_FILE)
        if self._rest is not None:
            self.directory.move(REST_FILE + ".tmp", REST_FILE)
        self.directory.move(REJECTED_FILE + ".tmp", REJECTED_FILE)
        self.directory.move(ACCEPTED_FILE + ".tmp", ACCEPTED_FILE)  # last: it marks "prepared"
        preview = self.preview
        preview.rejected = {r: self._reasons[r] for r in REASONS if self._reasons.get(r)}
        names = self._operators.to_pylist()
        preview.operators = {
            name: {"messages": int(self._messages[i]), "parts": int(self._parts[i])}
            for i, name in enumerate(names)
            if self._messages[i]
        }
        preview.parts = int(self._parts.sum())
        preview.encodings = dict(self._encodings)
        for variant, op in sorted(self._variant_messages):
            preview.variants[variant] = preview.variants.get(variant, 0) + self._variant_messages[variant, op]
            preview.variant_operators.setdefault(variant, {})[op] = {
                "messages": self._variant_messages[variant, op],
                "parts": self._variant_parts[variant, op],
            }
        return PreparedCampaign(self.source, self.columns, self.directory, self.blocks, preview)

    def abort(self) -> None:
        """Close and remove the half-written files (the upload was refused or the run failed)."""
        with contextlib.suppress(OSError, ValueError):
            self._close()
        for name in self._files:
            with contextlib.suppress(OSError):
                self.directory.delete(name + ".tmp")

    def _close(self) -> None:
        extra = [w for w in (self._held, self._rest) if w is not None]
        for writer in (self._accepted, self._refused, *extra):
            writer.close()
        for sink in self._sinks:
            sink.close()
