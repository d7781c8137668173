"""A CSV's rows keep their numbers in the file, whatever lines around them are malformed."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import sources
from ingest.sources import open_source

LIMITS: dict[str, Any] = {"max_bytes": 1 << 30, "max_rows": 10_000_000}


def _rows(path: Path) -> list[dict[str, Any]]:
    source = open_source(path, **LIMITS)
    return pa.concat_tables(sources._read(source, LIMITS["max_rows"])).to_pylist()


def test_rows_after_a_malformed_line_keep_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('phone,ad\n1,a\n2,b,extra\n3,"c\nd"\n4\n\n5,e\n', encoding="utf-8")
    rows = _rows(path)
    assert [(r["__row"], r["phone"], r["__malformed"]) for r in rows] == [
        (1, "1", None),
        (2, None, "3 fields, 2 expected: 2,b,extra"),
        (3, "3", None),
        (4, None, "1 fields, 2 expected: 4"),
        (5, "5", None),
    ]
    assert rows[2]["ad"] == "c\nd"


# A row: its fields, or None for a malformed line of three fields.
_field = st.text(alphabet='ab,"\n ş', max_size=6)
_row = st.one_of(st.tuples(_field, _field), st.none())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_row, min_size=1, max_size=300), block=st.sampled_from([64, 256, 1 << 20]))
def test_any_mix_of_lines_is_numbered_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[tuple[str, str] | None], block: int
) -> None:
    # Small pyarrow blocks put the malformed line in any batch, before or after pyarrow's read-ahead.
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", block)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["phone", "ad"])
    for row in rows:
        writer.writerow(row if row is not None else ["x", "y", "z"])
    path = tmp_path / "any.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    got = _rows(path)
    assert [r["__row"] for r in got] == list(range(1, len(rows) + 1))
    assert [None if r["__malformed"] else (r["phone"], r["ad"]) for r in got] == rows


def test_the_exact_reader_reads_a_clean_file_as_pyarrow_does(tmp_path: Path) -> None:
    # The slow path's twin: on a file pyarrow reads whole, both give the same rows.
    path = tmp_path / "clean.csv"
    path.write_text('phone;ad\n1;"x;y"\n\n2;"a ""q"" b"\n3;\n', encoding="utf-8")
    source = open_source(path, **LIMITS)
    fast = _rows(path)
    exact = pa.concat_tables(sources._read_csv_exactly(source, after=0)).to_pylist()
    assert [{k: r[k] for k in ("phone", "ad")} for r in fast] == [
        {k: r[k] for k in ("phone", "ad")} for r in exact
    ]
    assert [r["__row"] for r in exact] == [1, 2, 3]
