"""De-duplication across a whole upload, a block at a time, in memory that grows with the numbers only.

Ingest streams: each prepared block is written out and dropped before the file is read to its end, so
"is this number on an earlier row?" cannot look back at earlier blocks. :class:`FirstSeen` remembers
each number once, with the row it was first seen on (12 bytes a number: 60 MB for five million).

The numbers are spread over :data:`BUCKETS` buckets by their last digits' bits, and each bucket keeps
its numbers in a few sorted runs of doubling size (the "logarithmic method"): a block is checked with
one binary search per run, and adding it merges runs only when two are about the same size, so the
total work over an upload is O(n log n), never a re-sort of everything seen for every block. A merge
holds both runs and their result at once; with buckets, the largest merge is a bucket's, so the peak
stays within a few percent of the numbers' own size instead of doubling at the end of a long upload.

Most numbers of a campaign are new, so a bitmap of hashed numbers (:data:`FILTER_BITS` bits, 16 MiB)
answers "certainly not seen" first, and only the rest (under 4 % of new numbers at five million) is
searched in the runs: the searches were most of the driver's de-duplication time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

NumArray = np.ndarray[Any, np.dtype[np.uint64]]
RowArray = np.ndarray[Any, np.dtype[np.int64]]
StoredRows = np.ndarray[Any, np.dtype[np.uint32]]

BUCKETS = 16
FILTER_BITS = 1 << 27
_FILTER_SHIFT = np.uint64(64 - 27)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the top bits of number * 2^64/phi
# Rows are kept as uint32: an upload has fewer than 4 billion rows (ingest.max_rows is far below).
_MAX_ROW = np.iinfo(np.uint32).max


class FirstSeen:
    """The numbers seen so far and the row each first appeared on (the first row wins)."""

    def __init__(self) -> None:
        # Per bucket: disjoint sorted runs of (number, first row), larger runs first.
        self._buckets: list[list[tuple[NumArray, StoredRows]]] = [[] for _ in range(BUCKETS)]
        self._size = 0
        self._filter = np.zeros(FILTER_BITS // 8, dtype=np.uint8)

    def __len__(self) -> int:
        return self._size

    @property
    def _runs(self) -> list[tuple[NumArray, StoredRows]]:
        return [run for runs in self._buckets for run in runs]

    def check(self, numbers: NumArray, rows: RowArray) -> RowArray:
        """For each number of a block (rows later than any seen before): the row it was first seen on,
        earlier in the upload or earlier in this block, or -1 where this row is the first. Then
        remember the block's new numbers."""
        n = numbers.size
        first = np.full(n, -1, dtype=np.int64)
        if n == 0:
            return first
        if int(rows.max()) > _MAX_ROW or int(rows.min()) < 0:
            raise ValueError(f"row numbers must be between 0 and {_MAX_ROW:,}")
        order = np.lexsort((rows, numbers))
        nums, rws = numbers[order], rows[order]
        head = np.ones(n, dtype=bool)
        head[1:] = nums[1:] != nums[:-1]
        group = np.cumsum(head) - 1  # which distinct number each sorted element is
        unique, unique_rows = nums[head], rws[head]  # each number's earliest row in this block
        earlier = np.full(unique.size, -1, dtype=np.int64)
        slot = (unique * _GOLDEN) >> _FILTER_SHIFT
        byte, bit = (slot >> np.uint64(3)).astype(np.intp), (slot & np.uint64(7)).astype(np.uint8)
        maybe = np.flatnonzero(self._filter[byte] & np.left_shift(np.uint8(1), bit))
        self._search(unique[maybe], maybe, earlier)
        new = earlier < 0
        self._mark(byte[new], bit[new])
        self._add(unique[new], unique_rows[new])
        winner = np.where(earlier >= 0, earlier, unique_rows)[group]
        first[order] = np.where(rws == winner, -1, winner)
        return first

    def _mark(self, byte: Any, bit: Any) -> None:
        # One bit position at a time: two numbers may share a byte, and a fancy-indexed ``|=`` keeps
        # only one write per byte, but within one bit position they set the same bit.
        for k in range(8):
            at = byte[bit == k]
            self._filter[at] |= np.uint8(1 << k)

    def _search(self, wanted_all: NumArray, where: Any, earlier: RowArray) -> None:
        """Set ``earlier[where]`` to the first rows of *wanted_all* (sorted) that are in the runs."""
        for b, at_b in _by_bucket(wanted_all):
            wanted = wanted_all[at_b]
            found = np.full(wanted.size, -1, dtype=np.int64)
            for run, run_rows in self._buckets[b]:
                at = np.minimum(np.searchsorted(run, wanted), run.size - 1)
                hit = run[at] == wanted  # the runs are disjoint: at most one of them has the number
                found[hit] = run_rows[at[hit]]  # uint32 -> int64
            earlier[where[at_b]] = found

    def _add(self, numbers: NumArray, rows: RowArray) -> None:
        """Remember new (sorted, distinct) numbers, each into its bucket's runs."""
        self._size += numbers.size
        for b, at_b in _by_bucket(numbers):
            runs = self._buckets[b]
            runs.append((numbers[at_b], rows[at_b].astype(np.uint32)))
            while len(runs) > 1 and runs[-1][0].size * 2 >= runs[-2][0].size:
                runs[-2:] = [_merge(*runs[-2], *runs[-1])]


def _by_bucket(numbers: NumArray) -> Iterator[tuple[int, Any]]:
    """Each non-empty bucket and the positions of its numbers in *numbers* (sorted numbers give
    sorted groups: the sort by bucket is stable)."""
    if numbers.size == 0:
        return
    bucket = (numbers & np.uint64(BUCKETS - 1)).astype(np.intp)
    by_bucket = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[by_bucket], np.arange(BUCKETS + 1))
    for b in range(BUCKETS):
        if bounds[b] < bounds[b + 1]:
            yield b, by_bucket[bounds[b] : bounds[b + 1]]


def _merge(a: NumArray, ra: StoredRows, b: NumArray, rb: StoredRows) -> tuple[NumArray, StoredRows]:
    """Two disjoint sorted runs as one, in linear time and no more memory than the result."""
    at = np.searchsorted(a, b) + np.arange(b.size)  # where each of b lands in the merged run
    from_a = np.ones(a.size + b.size, dtype=bool)
    from_a[at] = False
    nums = np.empty(a.size + b.size, dtype=a.dtype)
    rows = np.empty(a.size + b.size, dtype=ra.dtype)
    nums[at], rows[at] = b, rb
    nums[from_a], rows[from_a] = a, ra
    return nums, rows
