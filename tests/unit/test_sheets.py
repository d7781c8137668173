"""An XLSX sheet read a slice at a time (ingest.sheets) gives exactly the rows of the sheet read whole."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import sheets, sources
from ingest.errors import CorruptFile, FileTooLarge
from ingest.sources import Format, Source, open_source

LIMITS: dict[str, Any] = {"max_bytes": 1 << 30, "max_rows": 10_000_000}


@pytest.fixture
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    # Slices of a few rows, so that a small sheet is cut many times (and at every kind of row).
    monkeypatch.setattr(sheets, "SLICE_BYTES", 1500)
    monkeypatch.setattr(sheets, "FIRST_SLICE_BYTES", 400)
    monkeypatch.setattr(sheets, "CARRIED_FACTOR", 0)


def _rows(source: Source) -> list[dict[str, Any]]:
    return pa.concat_tables(sources._read(source, LIMITS["max_rows"])).to_pylist()


def _both_ways(path: Path, sheet: str | int = 0) -> tuple[Source, list[dict[str, Any]], list[dict[str, Any]]]:
    sliced = open_source(path, sheet=sheet, **LIMITS)
    assert sliced.sheet_layout is not None, "the sheet was not sliced"
    whole = Source(path, Format.XLSX, (), sheet=sheet)
    return sliced, _rows(sliced), _rows(whole)


def _write(
    path: Path, cells: dict[tuple[int, int], Any], *, sheet: str = "Liste", before: bool = False
) -> Path:
    book = xlsxwriter.Workbook(str(path))
    if before:
        book.add_worksheet("Önce").write(0, 0, "another sheet")
    ws = book.add_worksheet(sheet)
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    for (r, c), value in sorted(cells.items()):
        if isinstance(value, dt.date):
            ws.write_datetime(r, c, dt.datetime.combine(value, dt.time()), date)
        else:
            ws.write(r, c, value)
    book.close()
    return path


def test_a_sheet_with_gaps_blank_rows_odd_cells_and_a_header_below_empty_rows(
    tmp_path: Path, small_slices: None
) -> None:
    cells: dict[tuple[int, int], Any] = {(2, 1): "Telefon", (2, 2): "Ad", (2, 4): "Tutar"}  # header on row 3
    for i in range(400):
        r = 3 + i + i // 50 * 7  # a gap of 7 missing rows every 50
        if i % 37 == 5:
            continue  # a missing row
        cells[(r, 1)] = 5321000000 + i
        if i % 3:
            cells[(r, 2)] = ["Ayşe", "İsmail", '<row r="9"> & </row>', "a\nb", " "][i % 5]
        if i % 4 == 0:
            cells[(r, 4)] = i * 1.25
        if i % 11 == 0:
            cells[(r, 3)] = True  # a column without a header
        if i % 29 == 0:
            cells[(r, 4)] = dt.date(2026, 11, 28)
    cells[(500, 4)] = "last column only"
    path = _write(tmp_path / "gaps.xlsx", cells, before=True)
    source, sliced, whole = _both_ways(path, "Liste")
    assert source.columns == ("Telefon", "Ad", "column_3", "Tutar")
    assert sliced == whole
    assert len(whole) > 300
    assert whole[0]["__row"] == 1 and whole[0]["Telefon"] == "5321000000"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.tuples(st.integers(1, 300), st.integers(0, 5)),
        st.one_of(
            st.text(max_size=12),
            st.integers(-(10**12), 10**12),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        min_size=150,
        max_size=400,
    )
)
def test_any_sparse_sheet_reads_the_same_sliced_or_whole(
    tmp_path_factory: pytest.TempPathFactory, small_slices: None, body: dict[tuple[int, int], Any]
) -> None:
    cells = {(0, c): f"h{c}" for c in range(6)} | body
    path = _write(tmp_path_factory.mktemp("x") / "any.xlsx", cells)
    if zipfile.ZipFile(path).getinfo("xl/worksheets/sheet1.xml").file_size < 2 * sheets.SLICE_BYTES:
        return  # too small to be sliced
    _, sliced, whole = _both_ways(path)
    assert sliced == whole


def test_slices_grow_with_the_shared_strings_every_slice_carries(tmp_path: Path) -> None:
    # Excel keeps every distinct text cell in sharedStrings.xml, which each slice's workbook carries
    # and calamine parses again: slices are at least four times its size (here: the sheet whole).
    cells = {(r, 0): f"0532{r:07d}" for r in range(60_000)}  # text: 60,000 shared strings
    path = _write(tmp_path / "text.xlsx", cells)
    assert open_source(path, **LIMITS).sheet_layout is None
    numbers = _write(tmp_path / "numbers.xlsx", {(r, 0): 5320000000 + r for r in range(200_000)})
    plan = open_source(numbers, **LIMITS).sheet_layout
    assert plan is not None and plan.slice_bytes == sheets.SLICE_BYTES


def test_unsliceable_sheets_are_read_whole(tmp_path: Path, small_slices: None) -> None:
    small = _write(tmp_path / "small.xlsx", {(0, 0): "phone", (1, 0): "5321234567"})
    assert open_source(small, **LIMITS).sheet_layout is None  # under two slices
    cells = {(r, 0): f"row {r}" for r in range(300)}
    big = _write(tmp_path / "big.xlsx", cells)
    no_numbers = _rewrite_sheet(
        big, tmp_path / "nonum.xlsx", lambda xml: xml.replace(b'<row r="', b'<row x="')
    )
    assert open_source(no_numbers, **LIMITS).sheet_layout is None
    no_dimension = _rewrite_sheet(
        big, tmp_path / "nodim.xlsx", lambda xml: xml.replace(b"<dimension ", b"<dimensionX ")
    )
    assert open_source(no_dimension, **LIMITS).sheet_layout is None


def test_a_header_below_a_slice_of_blank_rows_or_a_placeholder_dimension_reads_whole(
    tmp_path: Path, small_slices: None
) -> None:
    book = xlsxwriter.Workbook(str(tmp_path / "blank.xlsx"))
    ws = book.add_worksheet()
    shaded = book.add_format({"bg_color": "#EEEEEE"})
    for r in range(40):
        ws.write_blank(r, 0, None, shaded)  # styled, empty: no value for calamine
    ws.write_row(40, 0, ["Telefon", "Ad"])
    for r in range(41, 300):
        ws.write_row(r, 0, [5321000000 + r, "Ali"])
    book.close()
    source = open_source(tmp_path / "blank.xlsx", **LIMITS)
    assert source.sheet_layout is None
    rows = _rows(source)
    assert rows[0] == {"Telefon": "5321000041", "Ad": "Ali", "__row": 1, "__malformed": None}
    wide = _rewrite_sheet(
        _write(tmp_path / "w.xlsx", {(r, 0): f"row {r}" for r in range(300)}),
        tmp_path / "wide.xlsx",
        lambda xml: re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:XFD1048576"', xml),
    )
    assert open_source(wide, **LIMITS).sheet_layout is None
    narrow = _rewrite_sheet(
        _write(tmp_path / "n.xlsx", {(r, c): f"{r}.{c}" for r in range(300) for c in range(2)}),
        tmp_path / "narrow.xlsx",
        lambda xml: re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:A300"', xml),
    )
    source = open_source(narrow, **LIMITS)  # the first slice has cells outside <dimension>
    assert source.sheet_layout is None and source.columns == ()
    assert _rows(source)[0] == {"0.0": "1.0", "0.1": "1.1", "__row": 1, "__malformed": None}


def test_rows_without_their_numbers_after_numbered_rows_are_a_clear_error(
    tmp_path: Path, small_slices: None
) -> None:
    # Within a slice calamine numbers such a row after the one before it, as when the sheet is read
    # whole; a slice that starts with one cannot know where it is.
    cells = {(r, 0): f"row {r}" for r in range(300)}
    path = _write(tmp_path / "big.xlsx", cells)

    def strip(xml: bytes) -> bytes:
        return re.sub(rb'<row r="(\d{3})"', b"<row", xml)  # rows 100 and on

    source = open_source(_rewrite_sheet(path, tmp_path / "broken.xlsx", strip), **LIMITS)
    with pytest.raises(CorruptFile, match="has no row number"):
        _rows(source)


def _rewrite_sheet(path: Path, out: Path, change: Any) -> Path:
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info.filename, change(data) if info.filename == "xl/worksheets/sheet1.xml" else data)
    return out


def _bomb(path: Path, inflated: int) -> Path:
    """An .xlsx of a few hundred KiB whose sheet inflates to *inflated* bytes of one cell's text."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", '<workbook><sheets><sheet name="S" sheetId="1"/></sheets></workbook>')
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(b'<worksheet><sheetData><row r="1"><c t="inlineStr"><is><t>')
            block = b"A" * (1 << 20)
            for _ in range(inflated >> 20):
                sheet.write(block)
            sheet.write(b"</t></is></c></row></sheetData></worksheet>")
    return path


def test_a_zip_bomb_is_refused_by_its_directory_before_it_is_parsed(tmp_path: Path) -> None:
    """A spreadsheet's size on disk says nothing of what it inflates to: its ZIP directory does, and
    it is read (not the sheet) before anything else (issue 33: one cell of 2 GiB took 16 s to parse
    in the request, then failed)."""
    path = _bomb(tmp_path / "bomb.xlsx", 96 << 20)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(FileTooLarge, match=r"inflates .* times") as ratio:
        open_source(path, **LIMITS)
    assert ratio.value.status == 413 and ratio.value.field == "file"
    with pytest.raises(FileTooLarge, match=r"ingest\.max_unzipped_bytes"):
        open_source(path, max_unzipped_bytes=32 << 20, **LIMITS)


def test_a_real_sheet_is_far_from_the_bounds(tmp_path: Path) -> None:
    path = tmp_path / "real.xlsx"
    with xlsxwriter.Workbook(path) as wb:
        ws = wb.add_worksheet("Müşteriler")
        for i in range(20_000):  # the same text in every row: as compressible as sheets get
            ws.write_row(i, 0, [f"90532{i:07d}", "Ayşe Yılmaz", "İstanbul", 100])
    assert open_source(path, sheet="Müşteriler", **LIMITS).format is Format.XLSX  # not refused
