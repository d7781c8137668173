"""CSV reports quote the cells a spreadsheet would run as formulas, and leave numbers alone."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from cluster.reports.report import as_csv
from ingest.formulas import neutralised


def test_formula_cells_get_a_quote_and_numbers_and_text_do_not() -> None:
    cells = [
        '=HYPERLINK("http://x")',
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1)",
        "\tTAB",
        "\rCR",
        "+905321234567",
        "+90 (532) 111-22-33",
        "-12.5",
        "Ayşe",
        "",
        None,
        "a=b",
    ]
    table = pa.table({"v": pa.array(cells, pa.string()), "n": pa.array(range(len(cells)), pa.int64())})
    out = neutralised(table).column("v").to_pylist()
    assert out == [
        '\'=HYPERLINK("http://x")',
        "'+cmd|' /C calc'!A0",
        "'-2+3",
        "'@SUM(A1)",
        "'\tTAB",
        "'\rCR",
        "+905321234567",
        "+90 (532) 111-22-33",
        "-12.5",
        "Ayşe",
        "",
        None,
        "a=b",
    ]
    assert neutralised(table).column("n").to_pylist() == list(range(len(cells)))


def test_the_csv_stream_is_escaped_and_reads_back_as_written_plus_the_quote() -> None:
    schema = pa.schema([("detail", pa.string())])
    batch = pa.record_batch([pa.array(["=1+1", "+90532", "ok"])], schema=schema)
    text = b"".join(as_csv(iter([batch]), schema))
    back = pacsv.read_csv(
        io.BytesIO(text), convert_options=pacsv.ConvertOptions(column_types={"detail": pa.string()})
    )
    assert back.column("detail").to_pylist() == ["'=1+1", "+90532", "ok"]


def test_the_csv_stream_sends_its_header_line_before_asking_for_rows() -> None:
    """A report right after a large job ends waits for the rows' outcomes in its body: its client
    has the header line meanwhile, and the lines put together are one CSV with one header."""
    schema = pa.schema([("row", pa.int64()), ("detail", pa.string())])
    asked: list[int] = []

    def batches() -> Iterator[pa.RecordBatch]:
        for i in range(2):
            asked.append(i)
            yield pa.record_batch([pa.array([i]), pa.array([f"row {i}"])], schema=schema)

    stream = as_csv(batches(), schema)
    assert next(stream) == b'"row","detail"\n' and asked == []
    assert b"".join(stream) == b'0,"row 0"\n1,"row 1"\n' and asked == [0, 1]
    assert b"".join(as_csv(iter([]), schema)) == b'"row","detail"\n'


def test_utc_times_read_back_from_the_csv_stream_as_the_csv_writer_makes_them() -> None:
    """The stream writes UTC times as text it makes itself (the writer's own is ~25× slower): every
    value read back is what the writer makes of the time, nulls empty, whatever the unit."""
    columns = {
        f"at_{unit}": pa.array([1_765_000_000_123_456 // scale, None, 0], pa.int64()).cast(
            pa.timestamp(unit, tz="UTC")
        )
        for unit, scale in (("s", 10**6), ("ms", 10**3), ("us", 1))
    }
    batch = pa.record_batch(list(columns.values()), names=list(columns))
    streamed = b"".join(as_csv(iter([batch]), batch.schema)).decode()
    written = io.BytesIO()
    pacsv.write_csv(pa.Table.from_batches([batch]), written)
    assert list(csv.reader(io.StringIO(streamed))) == list(
        csv.reader(io.StringIO(written.getvalue().decode()))
    )
    assert list(csv.reader(io.StringIO(streamed)))[1] == [
        "2025-12-06 05:46:40Z",
        "2025-12-06 05:46:40.123Z",
        "2025-12-06 05:46:40.123456Z",
    ]
