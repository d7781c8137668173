"""An XLSX sheet read a slice at a time, so that preparing its first rows overlaps parsing the rest.

calamine (through fastexcel) parses a whole sheet before it returns a row: for 1M rows, 3–4 s in which
nothing else can start. Here the sheet's XML is inflated as a stream and cut at ``<row`` boundaries into
slices of :data:`SLICE_BYTES`; each slice is wrapped in a small workbook of its own (the original's
workbook, styles and shared strings, and a copy of the sheet holding only that slice's rows) and parsed
by the same calamine, so cells read exactly as they do when the sheet is parsed whole.

Two things a slice cannot know by itself are pinned with a row of placeholder cells that is dropped
after parsing: where the sheet's columns start and end (taken from the sheet's ``<dimension>``), and,
after the first slice, which sheet row its first row is (calamine starts a range at its first cell).
Rows are numbered as in the whole sheet: data row ``n`` is the ``n``-th row below the header.

A sheet that cannot be sliced this way (no ``<dimension>`` or a placeholder one, rows without their
``r`` number, another XML layout, a first slice of blank rows only, or a sheet small enough to parse at
once) is read whole, as before: :func:`layout` and :class:`Unsliceable` say which. XLS and ODS are
always read whole. A ``<dimension>`` wider than the cells in use gives extra, empty columns (named
``column_N``), where the sheet read whole would not have them.
"""

from __future__ import annotations

import io
import posixpath
import re
import xml.etree.ElementTree as ET
import zipfile
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import fastexcel
import pyarrow as pa

from ingest.errors import CorruptFile

PARSE_THREADS = 2
# Of the sheet's XML: ~28k rows of three short columns. 16 MiB was as fast, but two parse threads'
# glibc arenas then held ~500 MiB in the read worker (BENCHMARKS.md, ingest).
SLICE_BYTES = 4 << 20
FIRST_SLICE_BYTES = 1 << 20  # small, so the header is known quickly (open_source reads it, the read again)
CARRIED_FACTOR = 4  # a slice is at least this many times the parts every slice carries (see layout)

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_PKG_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_PIN = "."


# A <dimension> wider than this is taken for a writer's placeholder (some declare every column of the
# sheet): pinning to it would give every slice that many columns. Such a sheet is read whole.
MAX_COLUMNS = 1024


class Unsliceable(Exception):
    """The sheet turned out not to be sliceable after all (raised before any row is given): read it
    whole."""


@dataclass(frozen=True)
class Layout:
    """How one sheet of an XLSX file is laid out, as far as slicing it needs."""

    member: str  # the sheet's part in the ZIP archive
    prefix: str  # the sheet XML's namespace prefix for SpreadsheetML ("" or e.g. "x:")
    first_col: int  # 0-based columns of the sheet's <dimension>
    last_col: int
    slice_bytes: int  # of sheet XML a slice (see layout)


def layout(path: Path, sheet: str | int) -> Layout | None:
    """The sheet's layout if it can be sliced and is worth it (over two slices of XML), else None
    (read it whole).

    Every slice's workbook carries the original's other parts, the shared strings above all, and
    calamine parses them again for each slice: a slice is at least four times their size, so that
    re-parsing them costs at most a quarter more. A sheet whose text is mostly shared strings (Excel
    keeps every distinct text cell there: a column of phone numbers typed as text makes it large) is
    then cut into few slices, or read whole."""
    try:
        with zipfile.ZipFile(path) as zf:
            member = _sheet_member(zf, sheet)
            if member is None:
                return None
            carried = sum(i.file_size for i in zf.infolist() if _carried(i.filename, member))
            slice_bytes = max(SLICE_BYTES, CARRIED_FACTOR * carried)
            if zf.getinfo(member).file_size < 2 * slice_bytes:
                return None
            with zf.open(member) as f:
                head = f.read(64 << 10)
    except (
        KeyError,
        IndexError,
        ValueError,
        OSError,
        ET.ParseError,
        zipfile.BadZipFile,
        fastexcel.FastExcelError,
    ):
        return None  # the whole-sheet reader reports what is wrong with the file
    data = re.search(rb"<(\w+:)?sheetData>", head)
    dimension = re.search(rb"<(?:\w+:)?dimension ref=\"\$?([A-Z]+)\$?\d+:\$?([A-Z]+)\$?\d+\"", head)
    if data is None or dimension is None:
        return None
    row = re.search(rb"<" + re.escape(data.group(1) or b"") + rb"row[ >][^>]*", head[data.end() :])
    if row is None or _row_number(row.group(0)) is None:
        return None
    prefix = (data.group(1) or b"").decode()
    first_col, last_col = _column(dimension.group(1)), _column(dimension.group(2))
    if not 0 <= first_col <= last_col < first_col + MAX_COLUMNS:
        return None
    return Layout(member, prefix, first_col, last_col, slice_bytes)


def read(path: Path, sheet: str | int, plan: Layout) -> Generator[pa.Table, None, None]:
    """The sheet's rows as tables of string columns plus ``__row`` (see ``ingest.sources``), in order;
    the first table is the header row alone, unnamed, so the caller can name the columns.

    Slices after the first are parsed by :data:`PARSE_THREADS` threads (calamine lets go of the GIL
    while it parses), at most that many ahead of the one being yielded. Nothing is started beyond
    the first slice until the caller asks for the rows after the header."""
    slices = _slices(path, plan, plan.slice_bytes)
    first_row, next_row, workbook = next(slices)
    try:
        table = _parse(path, sheet, plan, first_row, workbook)
    except CorruptFile as exc:
        # Cells outside <dimension> already, or worse: the sheet read whole says what is wrong, if
        # anything is.
        raise Unsliceable(exc.message) from None
    if table.num_rows < 2:
        # Only the end pin: the first slice's rows are all blank, and the header is further down.
        raise Unsliceable("no header in the sheet's first slice")
    # The first slice runs from the header to the end pin (sheet row next_row).
    header_row = next_row - (table.num_rows - 1)
    yield table.slice(0, 1)
    body = table.slice(1, table.num_rows - 2)
    yield body.append_column("__row", pa.array(range(1, body.num_rows + 1), pa.int64()))
    pool = ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="ulak-sheet")
    try:
        pending: deque[tuple[int, Future[pa.Table]]] = deque()
        for first_row, _, workbook in slices:
            pending.append((first_row, pool.submit(_parse, path, sheet, plan, first_row, workbook)))
            if len(pending) > PARSE_THREADS:
                yield _numbered(*pending.popleft(), header_row)
        while pending:
            yield _numbered(*pending.popleft(), header_row)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _numbered(first_row: int, parsed: Future[pa.Table], header_row: int) -> pa.Table:
    """A later slice's rows, from its start pin (sheet row first_row - 1) on, numbered below the header."""
    body = parsed.result().slice(1)
    start = first_row - header_row
    return body.append_column("__row", pa.array(range(start, start + body.num_rows), pa.int64()))


def _parse(path: Path, sheet: str | int, plan: Layout, first_row: int, workbook: bytes) -> pa.Table:
    try:
        table = pa.table(
            fastexcel.read_excel(workbook).load_sheet(sheet, header_row=None, dtypes="string", eager=True)
        )
    except (fastexcel.FastExcelError, ValueError) as exc:
        raise CorruptFile(f"{path.name} cannot be read as a spreadsheet: {exc}", field="file") from None
    if table.num_columns != plan.last_col - plan.first_col + 1:
        raise CorruptFile(
            f"{path.name}: rows near sheet row {first_row} have cells outside the sheet's declared "
            "range; open the file in Excel and save it again",
            field="file",
        )
    return table


def _slices(path: Path, plan: Layout, slice_bytes: int) -> Iterator[tuple[int, int, bytes]]:
    """(the slice's first sheet row, the next slice's first sheet row, a workbook holding the slice)."""
    p = plan.prefix.encode()
    row_tag = re.compile(b"<" + re.escape(p) + b"row[ >]")
    end_tag = b"</" + p + b"sheetData>"
    with zipfile.ZipFile(path) as zf:
        parts = {
            info.filename: zf.read(info) for info in zf.infolist() if _carried(info.filename, plan.member)
        }
        with zf.open(plan.member) as f:
            buf = f.read(64 << 10)
            opening = re.search(b"<" + re.escape(p) + b"sheetData>", buf)
            assert opening is not None  # layout() found it
            # The sheet's XML up to its rows, without <dimension> (a slice's range is its own).
            prologue = re.sub(rb"<(?:\w+:)?dimension [^>]*/>", b"", buf[: opening.end()])
            root = re.search(rb"<((?:\w+:)?worksheet)[\s>]", prologue)
            if root is None:
                raise CorruptFile(f"{path.name}: the sheet's XML has no worksheet element", field="file")
            epilogue = end_tag + b"</" + root.group(1) + b">"
            bodies = _bodies(
                f, buf[opening.end() :], row_tag, end_tag, slice_bytes=slice_bytes, name=path.name
            )
            for k, (body, following) in enumerate(bodies):
                first = _first_row_number(row_tag, body)
                if first is None:
                    raise CorruptFile(
                        f"{path.name}: a row of the sheet has no row number; open it in Excel and save "
                        "it again",
                        field="file",
                    )
                if k == 0:
                    # Pin the columns at the row after the slice (the next slice's first row).
                    end_row = following if following is not None else _last_row_number(body) + 1
                    xml = prologue + body + _pin_row(p, end_row, plan) + epilogue
                    yield first, end_row, _workbook(parts, plan.member, xml)
                else:
                    # Pin the columns, and the slice's place, at the row before its first.
                    xml = prologue + _pin_row(p, first - 1, plan) + body + epilogue
                    yield first, following or 0, _workbook(parts, plan.member, xml)


def _bodies(
    f: IO[bytes], buf: bytes, row_tag: re.Pattern[bytes], end_tag: bytes, *, slice_bytes: int, name: str
) -> Iterator[tuple[bytes, int | None]]:
    """The sheet's rows cut into runs of whole ``<row>`` elements of about *slice_bytes* (the first
    of :data:`FIRST_SLICE_BYTES`), each with the first row number of the run after it (None for the
    last). *buf* is what has been read of *f* after ``<sheetData>``."""
    want = min(FIRST_SLICE_BYTES, slice_bytes)
    need = want + 1  # a cut needs to see past the slice's end
    eof = False
    while True:
        while not eof and len(buf) < need and end_tag not in buf:
            more = f.read(need - len(buf))
            eof = not more
            buf += more
        end = buf.find(end_tag)
        rows = buf if end < 0 else buf[:end]
        if end >= 0 and len(rows) <= want:
            if rows.strip():
                yield rows, None
            return
        cut = _last_row_start(row_tag, rows, before=want)
        if cut <= 0:  # the first row alone is longer than a slice: cut after it
            after = row_tag.search(rows, 1)
            if after is None:
                if end >= 0:
                    yield rows, None
                    return
                if eof:
                    raise CorruptFile(f"{name}: the sheet's XML ends inside a row", field="file")
                need = len(buf) + slice_bytes
                continue
            cut = after.start()
        body, buf = buf[:cut], buf[cut:]
        if body.strip():
            yield body, _first_row_number(row_tag, buf)
        want = slice_bytes
        need = want + 1


def _carried(name: str, member: str) -> bool:
    """Whether a slice's workbook carries this part of the original: its XML parts (workbook, styles,
    shared strings, relationships), not the sheets (ours is replaced by the slice) nor media."""
    return name != member and name.endswith((".xml", ".rels")) and not name.startswith("xl/worksheets/sheet")


def _workbook(parts: dict[str, bytes], member: str, sheet_xml: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
        zf.writestr(member, sheet_xml)
    return out.getvalue()


def _pin_row(p: bytes, row: int, plan: Layout) -> bytes:
    cells = b"".join(
        b'<%sc r="%s%d" t="inlineStr"><%sis><%st>%s</%st></%sis></%sc>'
        % (p, _letters(col), row, p, p, _PIN.encode(), p, p, p)
        for col in sorted({plan.first_col, plan.last_col})
    )
    return b'<%srow r="%d">%s</%srow>' % (p, row, cells, p)


def _last_row_start(row_tag: re.Pattern[bytes], buf: bytes, *, before: int) -> int:
    at = min(before, len(buf))
    while True:
        at = buf.rfind(row_tag.pattern[:-4], 0, at)  # the tag without "[ >]"
        if at < 0:
            return -1
        if row_tag.match(buf, at):
            return at


def _first_row_number(row_tag: re.Pattern[bytes], body: bytes) -> int | None:
    match = row_tag.search(body)
    if match is None:
        return None
    end = body.find(b">", match.start())
    return _row_number(body[match.start() : end])


def _last_row_number(body: bytes) -> int:
    numbers = re.findall(rb"<(?:\w+:)?row [^>]*?\br=\"(\d+)\"", body[-(1 << 16) :])
    return int(numbers[-1]) if numbers else 0


def _row_number(tag: bytes) -> int | None:
    match = re.search(rb"\sr=\"(\d+)\"", tag)
    return int(match.group(1)) if match else None


def _column(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n - 1


def _letters(col: int) -> bytes:
    out = b""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        out = bytes([65 + rem]) + out
    return out


def _sheet_member(zf: zipfile.ZipFile, sheet: str | int) -> str | None:
    """The ZIP member of the sheet named *sheet*, or *sheet*-th (Transitional OOXML, the workbook at
    xl/workbook.xml). None when unsure: the sheet is then read whole, and calamine picks it."""
    book = ET.fromstring(zf.read("xl/workbook.xml"))
    sheets = book.find(f"{_MAIN}sheets")
    rels = ET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target") or "" for r in rels.iter(f"{_PKG_RELS}Relationship")}
    if sheets is None:
        return None
    listed = [(s.get("name"), targets.get(s.get(_REL_ID), "")) for s in sheets]
    # calamine counts sheets in this order; with a chart sheet among them, it might count otherwise.
    if isinstance(sheet, int) and any("worksheets/" not in target for _, target in listed):
        return None
    if isinstance(sheet, int):
        target = listed[sheet][1] if 0 <= sheet < len(listed) else ""
    else:
        target = next((t for name, t in listed if name == sheet), "")
    if not target:
        return None
    member = (
        target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
    )
    return member if member in zf.namelist() else None
