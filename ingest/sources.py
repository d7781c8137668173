"""Read a campaign file (CSV, Parquet, XLSX/XLS/ODS) as Ray Data blocks of string columns.

Every block carries ``__row``, the 1-based number of the data row in the file (the header is not
counted: in a spreadsheet, sheet row ``n`` is data row ``n - 1``), so a rejected row can be found in the
original. Every other column is read as text: phone numbers keep their leading ``0`` and ``+``, and a
template renders values as the file wrote them.

The file's format is recognised by its content (magic bytes), and must agree with its name's extension.
Problems with the file as a whole raise :mod:`ingest.errors` before any row is processed.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import io
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import fastexcel
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray.data
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ingest import sheets
from ingest.errors import (
    CorruptFile,
    EmptyFile,
    EncryptedFile,
    FileTooLarge,
    FormatMismatch,
    NoRows,
    NotText,
    SheetNotFound,
    TooManyRows,
    UnknownEncoding,
    UnsupportedFormat,
)
from ingest.pacing import Pacing
from ulak.jobfiles import parquet_file
from ulak.quoting import clipped, listed, quoted

ROW = "__row"
MALFORMED = "__malformed"  # for a CSV line that could not be split into the header's columns
BLOCK_ROWS = 65_536
CSV_BLOCK_BYTES = 1 << 20  # what pyarrow parses at a time
_SNIFF_BYTES = 1 << 20
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class Format(Enum):
    CSV = "csv"
    PARQUET = "parquet"
    XLSX = "xlsx"
    XLS = "xls"
    ODS = "ods"


_EXTENSIONS = {
    ".csv": Format.CSV,
    ".txt": Format.CSV,
    ".tsv": Format.CSV,
    ".parquet": Format.PARQUET,
    ".pq": Format.PARQUET,
    ".xlsx": Format.XLSX,
    ".xlsm": Format.XLSX,
    ".xls": Format.XLS,
    ".ods": Format.ODS,
}


@dataclass(frozen=True)
class Source:
    """A recognised file: its format, column names (in file order) and how to read it."""

    path: Path
    format: Format
    columns: tuple[str, ...]
    encoding: str = "utf-8"
    delimiter: str = ","
    rows: int | None = None  # known up front for Parquet; counted while reading otherwise
    sheet: str | int = 0
    sheet_layout: sheets.Layout | None = None  # an XLSX sheet read a slice at a time (ingest.sheets)
    name: str = ""  # the file's name as the user knows it (errors never name our copy of it)

    @property
    def shown(self) -> str:
        return self.name or self.path.name

    def dataset(self, *, max_rows: int, pacing: Pacing | None = None, node: str | None = None) -> Any:
        """A lazy ``ray.data.Dataset`` of the file (string columns plus ``__row``). With *pacing*, the
        read waits for the driver to take its blocks (see :mod:`ingest.pacing`); with *node* (a Ray
        node id) the read runs there, where the file is."""
        where: dict[str, Any] = {}
        if node is not None:
            where["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
        # Its own CPU share keeps Ray Data from fusing the read with the per-block work: fused, the one
        # read task would do everything and the other CPUs would idle.
        return ray.data.read_datasource(
            _FileDatasource(self, max_rows, pacing),
            override_num_blocks=1,
            num_cpus=0.5,
            ray_remote_args=where,
        )


def open_source(
    path: Path,
    *,
    name: str | None = None,
    max_bytes: int,
    max_rows: int,
    encoding: str = "auto",
    fallback_encoding: str = "cp1254",
    sheet: str | int | None = None,
    max_unzipped_bytes: int = 4 << 30,
    max_zip_ratio: float = 200.0,
) -> Source:
    """Recognise *path* (uploaded as *name*, whose extension must match) and read its header. A
    spreadsheet that would inflate past *max_unzipped_bytes*, or one of whose parts inflates more
    than *max_zip_ratio* times (a ZIP bomb), is refused before anything is parsed."""
    size = path.stat().st_size
    shown = name or path.name
    if size == 0:
        raise EmptyFile(f"{shown} is empty")
    if size > max_bytes:
        raise FileTooLarge(
            f"{shown} is {size:,} bytes; the limit is {max_bytes:,} (ingest.max_file_bytes)", field="file"
        )
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    found = _sniff_format(head, path, shown)
    # A password-protected .xlsx is an OLE2 compound file, like .xls.
    encrypted = found is Format.XLS and _encrypted(path)
    extension = Path(shown).suffix.lower()
    if extension:
        expected = _EXTENSIONS.get(extension)
        if expected is None:
            raise UnsupportedFormat(
                f"{shown}: {extension} files are not supported; upload CSV, Parquet, XLSX, XLS or ODS",
                field="file",
            )
        if expected is not found and not (expected is Format.XLSX and encrypted):
            raise FormatMismatch(
                f"{shown} is named {extension} but its content is {found.value.upper()}; rename it or "
                "export it again",
                field="file",
            )
    if found is Format.CSV:
        return _csv_source(path, head, shown, encoding=encoding, fallback=fallback_encoding, size=size)
    if found is Format.PARQUET:
        return _parquet_source(path, shown, max_rows=max_rows)
    if encrypted:
        raise EncryptedFile(f"{shown} is password-protected; save it without a password", field="file")
    if found in (Format.XLSX, Format.ODS):
        _check_inflation(path, shown, max_bytes=max_unzipped_bytes, max_ratio=max_zip_ratio)
    sheet = 0 if sheet is None else sheet
    plan = sheets.layout(path, sheet) if found is Format.XLSX else None
    if plan is None:
        # Read whole: the header is known only once the sheet is (ingest.prepare materialises it).
        return Source(path, found, (), sheet=sheet, name=shown)
    tables = sheets.read(path, sheet, plan)
    try:
        header = list(next(tables).to_pylist()[0].values())
    except sheets.Unsliceable:
        return Source(path, found, (), sheet=sheet, name=shown)
    finally:
        tables.close()
    if not any(_cell_text(v).strip() for v in header):
        raise EmptyFile(f"{shown}: the sheet is empty", field="file")
    return Source(path, found, _column_names(header), sheet=sheet, sheet_layout=plan, name=shown)


BOMB_FLOOR = 64 << 20  # a part inflating to less is harmless whatever its ratio


def _check_inflation(path: Path, shown: str, *, max_bytes: int, max_ratio: float) -> None:
    """Refuse a ZIP whose parts, by the sizes its directory declares, inflate past *max_bytes* in
    all, or one of which inflates more than *max_ratio* times (and past ``BOMB_FLOOR``): parsing it
    would take minutes and gigabytes before any row could be checked."""
    with zipfile.ZipFile(path) as zf:
        parts = zf.infolist()
    total = sum(p.file_size for p in parts)
    if total > max_bytes:
        raise FileTooLarge(
            f"{shown} inflates to {total:,} bytes; the limit is {max_bytes:,} (ingest.max_unzipped_bytes)",
            field="file",
        )
    for p in parts:
        if p.file_size > BOMB_FLOOR and p.file_size > max_ratio * max(p.compress_size, 1):
            raise FileTooLarge(
                f"{shown}: its part {p.filename} inflates {p.file_size / max(p.compress_size, 1):,.0f} "
                f"times, to {p.file_size:,} bytes (ingest.max_zip_ratio is {max_ratio:g}): not a sheet "
                "a spreadsheet program writes",
                field="file",
            )


def _sniff_format(head: bytes, path: Path, shown: str) -> Format:
    if head.startswith(b"PAR1"):
        return Format.PARQUET
    if head.startswith(_OLE2):
        return Format.XLS
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                if "mimetype" in names and b"opendocument.spreadsheet" in zf.read("mimetype"):
                    return Format.ODS
                if any(n.startswith("xl/") for n in names):
                    return Format.XLSX
        except zipfile.BadZipFile:
            raise CorruptFile(f"{shown} looks like an XLSX (ZIP) file but is damaged", "file") from None
        raise UnsupportedFormat(f"{shown} is a ZIP archive, not a spreadsheet", field="file")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Format.CSV  # Excel's "Unicode Text": UTF-16, tab-separated (and full of NUL bytes)
    sample = head[:65536]
    if b"\x00" in sample or _controls(sample) > max(2, len(sample) // 100):
        what = "it holds NUL bytes" if b"\x00" in sample else "it holds binary control bytes"
        raise NotText(
            f"{shown} is not text ({what}) and not a spreadsheet or Parquet file; upload CSV, Parquet, "
            "XLSX, XLS or ODS",
            field="file",
        )
    return Format.CSV


# C0 control bytes that no text file holds (tab, LF, VT, FF, CR and ESC-less text aside).
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13)) + b"\x7f"


def _controls(sample: bytes) -> int:
    """How many bytes of *sample* are control characters a text file does not hold."""
    return len(sample) - len(sample.translate(None, _CONTROL_BYTES))


def _encrypted(path: Path) -> bool:
    """An encrypted OOXML file is an OLE2 compound file holding an ``EncryptionInfo`` stream."""
    with path.open("rb") as f:
        data = f.read(4 << 20)
    return "EncryptionInfo".encode("utf-16-le") in data


def _detect_encoding(path: Path, head: bytes, fallback: str) -> str:
    """UTF-8 if the whole file decodes as UTF-8 (checked in streamed chunks), else *fallback*."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as f:
            while chunk := f.read(8 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return fallback
    return "utf-8"


def _csv_source(path: Path, head: bytes, shown: str, *, encoding: str, fallback: str, size: int) -> Source:
    if encoding == "auto":
        encoding = _detect_encoding(path, head, fallback)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise UnknownEncoding(
            f"unknown text encoding {quoted(encoding)}; use e.g. utf-8, cp1254 or utf-16", field="encoding"
        ) from None
    if size > len(head) and b"\n" not in head:
        raise CorruptFile(
            f"{shown}: its first line is longer than {len(head) >> 20} MiB; a CSV's header names its "
            "columns on one short line",
            field="file",
        )
    text = head.decode(encoding, errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    if size > len(head) and len(lines) > 1:
        lines = lines[:-1]  # the sample may end mid-line
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise EmptyFile(f"{shown} holds no text", field="file")
    header_line = lines[0]
    counts = {d: header_line.count(d) for d in (";", ",", "\t", "|")}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    try:
        header = next(csv.reader(io.StringIO(header_line), delimiter=delimiter))
    except csv.Error as exc:  # e.g. a header cell over the csv module's field size limit
        raise CorruptFile(f"{shown}: the header line cannot be read ({exc})", field="file") from None
    columns = _column_names(header)
    if not any(line.strip() for line in lines[1:]):
        raise NoRows(f"{shown} has a header but no rows", field="file")
    return Source(path, Format.CSV, columns, encoding=encoding, delimiter=delimiter, name=shown)


def _parquet_source(path: Path, shown: str, *, max_rows: int) -> Source:
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorruptFile(
            f"{shown} is not a readable Parquet file: {_scrubbed(exc, path, shown)}", field="file"
        ) from None
    if meta.num_rows == 0:
        raise NoRows(f"{shown} has columns but no rows", field="file")
    if meta.num_rows > max_rows:
        raise TooManyRows(
            f"{shown} has {meta.num_rows:,} rows; the limit is {max_rows:,} (ingest.max_rows)", field="file"
        )
    names = tuple(meta.schema.to_arrow_schema().names)
    return Source(path, Format.PARQUET, names, rows=meta.num_rows, name=shown)


def _scrubbed(exc: BaseException, path: Path, shown: str) -> str:
    """A lower layer's message about *path*, naming the user's file instead of our copy, cut short."""
    text = str(exc).replace(str(path.resolve()), shown).replace(str(path), shown)
    return clipped(text, 300)


def check_row_count(source: Source, *, max_rows: int) -> None:
    """Refuse a CSV with more than *max_rows* data rows before anything starts. Counting line breaks
    is fast (a few hundred MB/s) and never undercounts; only a file over the limit by that count is
    parsed, since quoted values may hold line breaks of their own."""
    if source.format is not Format.CSV:
        return
    breaks = 0
    with source.path.open("rb") as f:
        while chunk := f.read(8 << 20):
            breaks += chunk.count(b"\n")
    if breaks <= max_rows:  # the header takes one line, so there are at most this many rows
        return
    rows = sum(t.num_rows for t in _read_csv(source))
    if rows > max_rows:
        raise TooManyRows(
            f"{source.shown} has {rows:,} rows; the limit is {max_rows:,} (ingest.max_rows)", field="file"
        )


def _column_names(header: list[Any]) -> tuple[str, ...]:
    """Header cells as unique, non-empty column names (``column_3`` for a blank third cell)."""
    names: list[str] = []
    seen: set[str] = set()
    for i, cell in enumerate(header, 1):
        name = _cell_text(cell).strip() or f"column_{i}"
        base, n = name, 2
        while name in seen:
            name, n = f"{base}_{n}", n + 1
        seen.add(name)
        names.append(name)
    return tuple(names)


def _cell_text(value: Any) -> str:
    """A spreadsheet cell as the text a person sees (``5321234567``, not ``5321234567.0``)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e17:
            return str(int(value))
        return repr(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


class _FileDatasource(Datasource):
    """One read task that streams the file in order, so ``__row`` is exact."""

    def __init__(self, source: Source, max_rows: int, pacing: Pacing | None) -> None:
        self._source = source
        self._max_rows = max_rows
        self._pacing = pacing

    def estimate_inmemory_data_size(self) -> int | None:
        return self._source.path.stat().st_size * 2

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        source, max_rows, pacing = self._source, self._max_rows, self._pacing
        meta = BlockMetadata(
            num_rows=source.rows, size_bytes=None, exec_stats=None, input_files=(str(source.path),)
        )
        return [
            ReadTask(lambda: _read(source, max_rows, pacing), meta, per_task_row_limit=per_task_row_limit)
        ]

    def get_name(self) -> str:
        return f"Read{self._source.format.value.upper()}"


def _read(source: Source, max_rows: int, pacing: Pacing | None = None) -> Iterator[pa.Table]:
    reader = {Format.CSV: _read_csv, Format.PARQUET: _read_parquet}.get(source.format, _read_sheet)
    if source.sheet_layout is not None:
        reader = _read_sheet_slices
    offset = 0
    data_rows = 0
    for block in reader(source):
        if block.num_rows == 0:
            continue
        table = block
        if ROW not in table.column_names:
            rows = pa.array(range(offset + 1, offset + table.num_rows + 1), pa.int64())
            offset += table.num_rows
            table = table.append_column(ROW, rows)
        if MALFORMED not in table.column_names:
            table = table.append_column(MALFORMED, pa.nulls(table.num_rows, pa.string()))
        data_rows += table.num_rows
        if data_rows > max_rows:
            raise TooManyRows(
                f"{source.shown} has more than {max_rows:,} rows (ingest.max_rows)", field="file"
            )
        if pacing is not None:
            pacing.before_yield(table.num_rows, table.nbytes)
        yield table
    if data_rows == 0:
        raise NoRows(f"{source.shown} has a header but no rows", field="file")


def _read_csv(source: Source) -> Iterator[pa.Table]:
    """The CSV's rows, read by pyarrow until a line has the wrong number of fields.

    pyarrow skips such a line without saying where it was, which would number every later row one
    too low. So at the first one the rest of the file is read by :func:`_read_csv_exactly`, which
    numbers every row, the malformed ones included. pyarrow reads ahead, so a malformed line may be
    seen before the batch in hand is yielded: that batch is read again too, never yielded twice.
    """
    seen_malformed = False

    def skip_malformed(row: Any) -> str:
        nonlocal seen_malformed
        seen_malformed = True
        return "skip"

    done = 0
    with _csv_errors(source):
        reader = pacsv.open_csv(
            source.path,
            read_options=pacsv.ReadOptions(
                column_names=list(source.columns),
                skip_rows=1,
                encoding=source.encoding,
                block_size=CSV_BLOCK_BYTES,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=source.delimiter, newlines_in_values=True, invalid_row_handler=skip_malformed
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in source.columns}, strings_can_be_null=False
            ),
        )
        for batch in reader:
            if seen_malformed:
                break
            done += batch.num_rows
            yield pa.Table.from_batches([batch])
    if seen_malformed:
        yield from _read_csv_exactly(source, after=done)


def _read_csv_exactly(source: Source, *, after: int) -> Iterator[pa.Table]:
    """The CSV's data rows after the first *after*, each numbered (``__row``), a line with the wrong
    number of fields as a row whose ``__malformed`` says what it held. Python's csv module parses as
    pyarrow does (RFC 4180 quoting, empty lines skipped) at a fraction of its speed, so it reads only
    files that have such lines."""
    names = source.columns
    width = len(names)
    number = 0
    rows: list[list[str] | None] = []
    numbers: list[int] = []
    malformed: list[str | None] = []

    def table() -> pa.Table:
        columns: dict[str, pa.Array] = {
            name: pa.array([r[i] if r is not None else None for r in rows], pa.string())
            for i, name in enumerate(names)
        }
        columns[ROW] = pa.array(numbers, pa.int64())
        columns[MALFORMED] = pa.array(malformed, pa.string())
        return pa.table(columns)

    with _csv_errors(source), source.path.open(encoding=source.encoding, newline="") as text:
        csv.field_size_limit(1 << 30)  # pyarrow has no limit on a field; match it
        records = csv.reader(text, delimiter=source.delimiter)
        next(records, None)  # the header
        for record in records:
            if not record:
                continue
            number += 1
            if number <= after:
                continue
            numbers.append(number)
            if len(record) == width:
                rows.append(record)
                malformed.append(None)
            else:
                rows.append(None)
                shown = source.delimiter.join(record)
                malformed.append(f"{len(record)} fields, {width} expected: {shown[:200]}")
            if len(rows) == BLOCK_ROWS:
                yield table()
                rows, numbers, malformed = [], [], []
    if rows:
        yield table()


@contextlib.contextmanager
def _csv_errors(source: Source) -> Iterator[None]:
    """pyarrow's and Python's complaints about *source*'s text as an upload error that names it."""
    try:
        yield
    except (pa.ArrowInvalid, UnicodeDecodeError, csv.Error) as exc:
        raise CorruptFile(
            f"{source.shown} cannot be read as {source.encoding} text separated by "
            f"{source.delimiter!r}: {_scrubbed(exc, source.path, source.shown)}",
            field="file",
        ) from None


def _read_parquet(source: Source) -> Iterator[pa.Table]:
    for batch in parquet_file(source.path).iter_batches(batch_size=BLOCK_ROWS):
        table = pa.Table.from_batches([batch])
        yield pa.table({n: _as_text(table.column(n)) for n in table.column_names})


def _as_text(column: pa.ChunkedArray) -> pa.Array:
    if pa.types.is_string(column.type):
        return column.combine_chunks()
    if pa.types.is_floating(column.type):
        return pa.array([_cell_text(v) for v in column.to_pylist()], pa.string())
    return column.cast(pa.string()).combine_chunks()


@contextlib.contextmanager
def _workbook_errors(source: Source) -> Iterator[None]:
    """fastexcel's errors about *source* as upload errors that name the user's file."""
    try:
        yield
    except (fastexcel.FastExcelError, ValueError, OSError) as exc:
        if "password" in str(exc).lower():
            raise EncryptedFile(
                f"{source.shown} is password-protected; save it without a password", field="file"
            ) from None
        raise CorruptFile(
            f"{source.shown} cannot be read as a spreadsheet: {_scrubbed(exc, source.path, source.shown)}",
            field="file",
        ) from None


def _load_sheet(source: Source, *, n_rows: int | None) -> tuple[pa.Table, int]:
    """The first *n_rows* rows of the sheet (all with None), header included, as string columns;
    and the sheet's height in rows."""
    with _workbook_errors(source):
        book = fastexcel.read_excel(str(source.path))
        if isinstance(source.sheet, str) and source.sheet not in book.sheet_names:
            raise SheetNotFound(
                f"{source.shown} has no sheet {quoted(source.sheet)}; its sheets are: "
                + listed(book.sheet_names),
                field="sheet",
            )
        sheet = book.load_sheet(source.sheet, header_row=None, n_rows=n_rows, dtypes="string")
        table = pa.table(sheet.to_arrow())
        height = int(sheet.total_height)
    return table, height


def _sheet_header(source: Source, table: pa.Table) -> tuple[str, ...]:
    if table.num_rows == 0 or table.num_columns == 0:
        raise EmptyFile(f"{source.shown}: the sheet is empty", field="file")
    header = list(table.slice(0, 1).to_pylist()[0].values())
    if not any(_cell_text(v).strip() for v in header):
        raise EmptyFile(f"{source.shown}: the sheet is empty", field="file")
    return _column_names(header)


def probe_sheet(source: Source, *, max_rows: int) -> tuple[str, ...]:
    """Check a workbook read whole (XLS, ODS, a small XLSX) before anything starts: it opens, the
    sheet exists, it has a header and not too many rows. Returns the header's column names."""
    table, height = _load_sheet(source, n_rows=1)
    columns = _sheet_header(source, table)
    if height - 1 > max_rows:
        raise TooManyRows(
            f"{source.shown} has {height - 1:,} rows; the limit is {max_rows:,} (ingest.max_rows)",
            field="file",
        )
    return columns


def _read_sheet(source: Source) -> Iterator[pa.Table]:
    """The sheet through fastexcel: calamine parses it and hands it over as Arrow string columns
    (3.8 s for 1M rows here, where python-calamine's cell-by-cell rows took 5 s before any conversion
    to text; BENCHMARKS.md, ingest). Cells come as the text a person sees (``5321234567``, not
    ``5321234567.0``); an empty cell is ``""``; a blank row is not a campaign row."""
    table, _ = _load_sheet(source, n_rows=None)
    names = _sheet_header(source, table)
    body = table.slice(1)
    data = _named_rows(body, names, pa.array(range(1, body.num_rows + 1), pa.int64()))
    for start in range(0, data.num_rows, BLOCK_ROWS):
        yield data.slice(start, BLOCK_ROWS)


def _read_sheet_slices(source: Source) -> Iterator[pa.Table]:
    """An XLSX sheet a slice at a time (``ingest.sheets``), named as ``open_source`` named it."""
    assert source.sheet_layout is not None
    tables = sheets.read(source.path, source.sheet, source.sheet_layout)
    next(tables)  # the header, already read by open_source
    for table in tables:
        body = table.drop_columns([ROW])
        data = _named_rows(body, source.columns, table.column(ROW))
        for start in range(0, data.num_rows, BLOCK_ROWS):
            yield data.slice(start, BLOCK_ROWS)


def _named_rows(body: pa.Table, names: tuple[str, ...], rows: pa.Array | pa.ChunkedArray) -> pa.Table:
    """A sheet's rows under the header's *names*, numbered *rows*, without its blank rows (an empty
    cell is ``""``; a blank row is not a campaign row)."""
    columns = [pc.fill_null(body.column(i), "") for i in range(body.num_columns)]
    blank = functools.reduce(pc.and_, (pc.equal(c, "") for c in columns))
    data = pa.table(dict(zip(names, columns, strict=True)))
    data = data.append_column(ROW, rows)
    return data.filter(pc.invert(blank))
