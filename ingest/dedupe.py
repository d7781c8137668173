"""De-duplication across a whole upload, a block at a time, in memory that grows with the numbers only.

Ingest streams: each prepared block is written out and dropped before the file is read to its end, so
"is this number on an earlier row?" cannot look back at earlier blocks. :class:`FirstSeen` remembers
each number once, with the row it was first seen on (16 bytes a number: 80 MB for five million), in a
few sorted runs of doubling size (the "logarithmic method"): a block is checked with one binary search
per run, and adding it merges runs only when two are about the same size, so the total work over an
upload is O(n log n), never a re-sort of everything seen for every block.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NumArray = np.ndarray[Any, np.dtype[np.uint64]]
RowArray = np.ndarray[Any, np.dtype[np.int64]]


class FirstSeen:
    """The numbers seen so far and the row each first appeared on (the first row wins)."""

    def __init__(self) -> None:
        # Disjoint sorted runs of (number, first row), larger runs first.
        self._runs: list[tuple[NumArray, RowArray]] = []

    def __len__(self) -> int:
        return sum(nums.size for nums, _ in self._runs)

    def check(self, numbers: NumArray, rows: RowArray) -> RowArray:
        """For each number of a block (rows later than any seen before): the row it was first seen on,
        earlier in the upload or earlier in this block, or -1 where this row is the first. Then
        remember the block's new numbers."""
        n = numbers.size
        first = np.full(n, -1, dtype=np.int64)
        if n == 0:
            return first
        order = np.lexsort((rows, numbers))
        nums, rws = numbers[order], rows[order]
        head = np.ones(n, dtype=bool)
        head[1:] = nums[1:] != nums[:-1]
        group = np.cumsum(head) - 1  # which distinct number each sorted element is
        unique, unique_rows = nums[head], rws[head]  # each number's earliest row in this block
        earlier = np.full(unique.size, -1, dtype=np.int64)
        for run, run_rows in self._runs:
            at = np.minimum(np.searchsorted(run, unique), run.size - 1)
            hit = run[at] == unique  # the runs are disjoint: at most one of them has the number
            earlier[hit] = run_rows[at[hit]]
        winner = np.where(earlier >= 0, earlier, unique_rows)[group]
        first[order] = np.where(rws == winner, -1, winner)
        new = earlier < 0
        self._add(unique[new], unique_rows[new])
        return first

    def _add(self, numbers: NumArray, rows: RowArray) -> None:
        if numbers.size == 0:
            return
        self._runs.append((numbers, rows))
        while len(self._runs) > 1 and self._runs[-1][0].size * 2 >= self._runs[-2][0].size:
            self._runs[-2:] = [_merge(*self._runs[-2], *self._runs[-1])]


def _merge(a: NumArray, ra: RowArray, b: NumArray, rb: RowArray) -> tuple[NumArray, RowArray]:
    """Two disjoint sorted runs as one, in linear time and no more memory than the result."""
    at = np.searchsorted(a, b) + np.arange(b.size)  # where each of b lands in the merged run
    from_a = np.ones(a.size + b.size, dtype=bool)
    from_a[at] = False
    nums = np.empty(a.size + b.size, dtype=a.dtype)
    rows = np.empty(a.size + b.size, dtype=ra.dtype)
    nums[at], rows[at] = b, rb
    nums[from_a], rows[from_a] = a, ra
    return nums, rows
