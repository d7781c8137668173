"""FirstSeen against the obvious model: a dict of number -> first row, fed the same blocks in order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.dedupe import BUCKETS, FirstSeen


def _model(blocks: list[list[int]]) -> list[list[int]]:
    first: dict[int, int] = {}
    out = []
    row = 0
    for block in blocks:
        verdicts = []
        for number in block:
            row += 1
            verdicts.append(first.get(number, -1))
            first.setdefault(number, row)
        out.append(verdicts)
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), max_size=30), max_size=25))
def test_first_seen_matches_a_dict_over_any_blocks(blocks: list[list[int]]) -> None:
    seen = FirstSeen()
    got = []
    row = 0
    for block in blocks:
        rows = np.arange(row + 1, row + 1 + len(block), dtype=np.int64)
        row += len(block)
        got.append(seen.check(np.array(block, dtype=np.uint64), rows).tolist())
    assert got == _model(blocks)
    assert len(seen) == len({n for b in blocks for n in b})


def test_rows_within_a_block_need_not_be_sorted() -> None:
    seen = FirstSeen()
    numbers = np.array([7, 7, 9], dtype=np.uint64)
    assert seen.check(numbers, np.array([5, 3, 4], dtype=np.int64)).tolist() == [3, -1, -1]
    assert seen.check(np.array([9, 7], dtype=np.uint64), np.array([6, 8], dtype=np.int64)).tolist() == [4, 3]


def test_a_million_numbers_in_many_blocks_keep_few_runs() -> None:
    seen = FirstSeen()
    rng = np.random.default_rng(1)
    numbers = rng.integers(0, 400_000, size=1_000_000, dtype=np.uint64)
    repeats = 0
    for start in range(0, numbers.size, 20_000):
        block = numbers[start : start + 20_000]
        rows = np.arange(start + 1, start + 1 + block.size, dtype=np.int64)
        repeats += int((seen.check(block, rows) >= 0).sum())
    distinct = np.unique(numbers).size
    assert len(seen) == distinct and repeats == numbers.size - distinct
    assert len(seen._runs) <= 20 * BUCKETS  # merged as it goes, not one run per block


def test_no_merge_is_larger_than_a_bucket() -> None:
    # A merge holds its two runs and the result at once: with the numbers spread over buckets, the
    # largest run (and so the largest merge) is about a bucket's share, not all the numbers.
    seen = FirstSeen()
    rng = np.random.default_rng(2)
    numbers = rng.permutation(400_000).astype(np.uint64) * np.uint64(7919)
    for start in range(0, numbers.size, 5_000):
        block = numbers[start : start + 5_000]
        rows = np.arange(start + 1, start + 1 + block.size, dtype=np.int64)
        assert (seen.check(block, rows) == -1).all()
    assert len(seen) == numbers.size
    assert max(run.size for run, _ in seen._runs) <= 2 * numbers.size // BUCKETS
    again = seen.check(numbers[:1000], np.arange(400_001, 401_001, dtype=np.int64))
    assert again.tolist() == list(range(1, 1001))


def test_rows_beyond_uint32_are_refused() -> None:
    seen = FirstSeen()
    with pytest.raises(ValueError, match="row numbers"):
        seen.check(np.array([1], dtype=np.uint64), np.array([1 << 33], dtype=np.int64))
