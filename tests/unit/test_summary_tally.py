"""The summary folds a job's outcomes a chunk at a time (``cluster.reports.tally``): its figures are
those of the whole list, whatever the chunks, and its percentiles are numpy's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.reports.snapshot import SLIM, SUMMARY_COLUMNS
from cluster.reports.tally import Fold, Joined, Took

SCHEMA = pa.schema([SLIM.field(name) for name in SUMMARY_COLUMNS])
PRICES = {"op-a": 40_000, "op-b": 55_000}  # millionths a part


def _iso(ms: float) -> str:
    return f"{ms:.0f}"


@settings(max_examples=60, deadline=None)
@given(
    pieces=st.lists(st.lists(st.integers(0, 50_000), max_size=40), min_size=1, max_size=6),
    qs=st.lists(st.floats(0, 100), min_size=1, max_size=4),
)
def test_took_percentiles_are_numpys_to_the_bit(pieces: list[list[int]], qs: list[float]) -> None:
    took = Took()
    for piece in pieces:
        took.add(np.array(piece, dtype=np.int64))
    everything = [t for piece in pieces for t in piece]
    found = took.seconds(qs)
    if not everything:
        assert found is None
        return
    assert found == list(np.percentile(np.array(everything) / 1000, qs))  # to the last bit


ROW = st.fixed_dictionaries(
    {
        "operator": st.sampled_from(["op-a", "op-b", None]),
        "variant": st.sampled_from(["A", "B", None]),
        "phase": st.sampled_from(["test", "rest", None]),
        "parts": st.integers(1, 3),
        "status": st.sampled_from(["acked", "failed", "unknown", "pending", None]),
        "receipt": st.sampled_from(["delivered", "undeliverable", "expired", None]),
        "error": st.sampled_from(["0x0000000B ESME_RINVDSTADR", "0x00000058 ESME_RTHROTTLED", None]),
        "acked_at": st.one_of(st.none(), st.integers(1_700_000_000_000, 1_700_000_600_000)),
        "delay": st.integers(0, 90_000),
        "clicks": st.integers(0, 3),
        "conversions": st.integers(0, 2),
        "control": st.sampled_from([True, False, None]),
    }
)


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in SUMMARY_COLUMNS}
    for i, r in enumerate(rows):
        columns["row"].append(i)
        for name in ("operator", "variant", "phase", "parts", "status", "receipt", "error", "acked_at"):
            columns[name].append(r[name])
        columns["parts_acked"].append(r["parts"] if r["status"] == "acked" else 0)
        acked = r["acked_at"]
        columns["receipt_at"].append(acked + r["delay"] if acked is not None and r["receipt"] else None)
    return pa.table(columns, schema=SCHEMA)


def _fold(rows: list[dict[str, Any]], table: pa.Table, cuts: list[int]) -> Fold:
    engaged = [i for i, r in enumerate(rows) if r["clicks"] or r["conversions"]]
    planned = [i for i, r in enumerate(rows) if r["control"] is not None]
    fold = Fold(
        variants=["A", "B"],
        tested=True,
        engagement=Joined(
            np.array(engaged[::-1], dtype=np.int64),  # any order
            {
                "clicks": np.array([rows[i]["clicks"] for i in engaged[::-1]], dtype=np.int64),
                "conversions": np.array([rows[i]["conversions"] for i in engaged[::-1]], dtype=np.int64),
                "value": np.array(
                    [rows[i]["conversions"] * 12_500_000 for i in engaged[::-1]], dtype=np.int64
                ),
            },
        ),
        plan=Joined(
            np.array(planned, dtype=np.int64),
            {"control": np.array([rows[i]["control"] for i in planned], dtype=bool)},
        ),
        bucket=60,
    )
    start = 0
    for cut in [*sorted(cuts), table.num_rows]:
        fold.add(table.slice(start, max(0, cut - start)))
        start = max(start, cut)
    return fold


def _figures(fold: Fold) -> dict[str, Any]:
    return {
        "total": fold.total.kpis(PRICES, iso=_iso),
        "operators": {name: fold.operators[name].kpis(PRICES, iso=_iso) for name in sorted(fold.operators)},
        "variants": {name: t.kpis(PRICES, iso=_iso) for name, t in fold.variants.items()},
        "tested": {name: t.kpis(PRICES, iso=_iso) for name, t in fold.tested.items()},
        "send_time": fold.send_time(),
        "points": {start: dict(counts) for start, counts in fold.points.items()},
    }


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(ROW, max_size=60), data=st.data())
def test_a_fold_gives_the_same_figures_whatever_the_chunks(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    table = _table(rows)
    cuts = data.draw(st.lists(st.integers(0, len(rows)), max_size=5))
    whole, chunked = _figures(_fold(rows, table, [])), _figures(_fold(rows, table, cuts))
    assert chunked == whole
    # The operators add up to the rows that have one, and every count to the rows.
    total = whole["total"]
    assert total["recipients"] == len(rows)
    assert total["sent"] == sum(r["status"] == "acked" for r in rows)
    named = [r for r in rows if r["operator"]]
    assert sum(op["recipients"] for op in whole["operators"].values()) == len(named)
    assert sum(op["parts_sent"] for op in whole["operators"].values()) == sum(
        r["parts"] for r in named if r["status"] == "acked"
    )
    assert sum(whole["total"]["failed_by_reason"].values()) == (
        total["failed"]
        + total["unknown"]
        + sum(r["status"] == "acked" and r["receipt"] in ("undeliverable", "expired") for r in rows)
    )


def test_the_figures_of_a_known_list() -> None:
    base = {"variant": "A", "phase": "test", "error": None, "clicks": 0, "conversions": 0, "control": None}
    rows = [
        {**base, "operator": "op-a", "parts": 2, "status": "acked", "receipt": "delivered"},
        {**base, "operator": "op-a", "parts": 1, "status": "acked", "receipt": "delivered"},
        {**base, "operator": "op-b", "parts": 1, "status": "acked", "receipt": "undeliverable"},
        {**base, "operator": "op-b", "parts": 1, "status": "failed", "receipt": None},
        {**base, "operator": "op-b", "parts": 1, "status": "unknown", "receipt": None},
    ]
    for r, delay in zip(rows, (1_000, 3_000, 5_000, 0, 0), strict=True):
        r.update(acked_at=1_700_000_000_000 if r["status"] == "acked" else None, delay=delay)
    rows[0].update(clicks=2, conversions=1)
    rows[3]["error"] = "0x0000000B ESME_RINVDSTADR"
    fold = _fold(rows, _table(rows), [2, 4])
    total = fold.total.kpis(PRICES, iso=_iso)
    assert (total["sent"], total["failed"], total["unknown"], total["delivered"]) == (3, 1, 1, 2)
    assert total["delivery_time"]["p50_seconds"] == 2.0  # between 1 s and 3 s
    assert total["delivery_time"]["p90_seconds"] == 2.8
    assert total["failed_by_reason"] == {"ESME_RINVDSTADR": 1, "undeliverable": 1, "unknown": 1}
    assert total["cost"] == "0.175"  # 3 parts at 0.04, 1 at 0.055
    assert (total["clicks"], total["conversions"], total["value"]) == ({"unique": 1, "total": 2}, 1, "12.5")
    assert total["click_rate"] == 0.5 and total["conversion_rate"] == 1.0
