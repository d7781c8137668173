"""The report reads an ended job's outcomes snapshot in step with its rows file
(``cluster.reports.report._InStep``): whatever the snapshot's row groups and the batches asked for,
the pieces put together are the snapshot, in order, and none holds more than it was asked for."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.reports.report import OUTCOME_COLUMNS, REPORT_SCHEMA, _InStep


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.integers(0, 300),
    group=st.integers(1, 64),
    batch=st.integers(1, 50),
    asks=st.lists(st.integers(1, 80), min_size=1, max_size=12),
)
def test_pieces_put_together_are_the_snapshot(
    tmp_path: Path, rows: int, group: int, batch: int, asks: list[int]
) -> None:
    table = pa.table(
        {
            "row": pa.array(range(rows), pa.int64()),
            **{name: _values(name, rows) for name in OUTCOME_COLUMNS},
            "extra": pa.array([i * 2 for i in range(rows)]),  # a column the report does not read
        }
    )
    path = tmp_path / "outcomes.parquet"
    pq.write_table(table, path, row_group_size=group)
    reader = _InStep(pq.ParquetFile(path).iter_batches(batch_size=batch, columns=["row", *OUTCOME_COLUMNS]))
    pieces = []
    for n in asks * (rows // max(sum(asks), 1) + 2):  # past the end: empty pieces
        piece = reader.take(n)
        assert piece.num_rows == min(n, rows - sum(p.num_rows for p in pieces))
        pieces.append(piece)
    whole = pa.concat_tables(pieces)
    assert whole.column_names == ["row", *OUTCOME_COLUMNS]
    assert whole.equals(table.select(["row", *OUTCOME_COLUMNS]).cast(whole.schema))


def _values(name: str, rows: int) -> pa.Array:
    """A column of the report's type whose every value tells its row."""
    kind = REPORT_SCHEMA.field(name).type
    if pa.types.is_timestamp(kind):
        return pa.array([1_765_000_000_000 + i for i in range(rows)], kind)
    return pa.array([f"{name}{i}" for i in range(rows)], kind)
