"""The send record's format: appended batches read back as one set of parts."""

from __future__ import annotations

from ulak.dispatch.ledger import PartUnknown
from ulak.dispatch.sendrecord import pack, unpack


def test_appended_batches_read_back_once_each_in_order() -> None:
    first = [PartUnknown("j1", 1, 1, 2), PartUnknown("j1", 1, 2, 2), PartUnknown("j2", 7, 1, 1)]
    second = [PartUnknown("j1", 1, 2, 2), PartUnknown("j1", 9, 1, 1)]  # a part again, after a rewrite
    record = pack(first) + pack(second)  # APPEND puts them end to end
    assert unpack(record) == [*first, PartUnknown("j1", 9, 1, 1)]


def test_an_empty_or_missing_record_holds_nothing() -> None:
    assert unpack(None) == [] and unpack(b"") == [] and unpack(pack([])) == []
