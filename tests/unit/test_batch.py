"""PartBatch: parts of one job cross Ray as six byte strings and come back as the same parts."""

from __future__ import annotations

import pickle

from hypothesis import given
from hypothesis import strategies as st

from ulak.dispatch.batch import PartBatch, pack_parts, unpack_parts
from ulak.dispatch.part import OutboundPart, outbound_part
from ulak.smpp.pdu import SubmitSm, encoded_submit_sm

parts_strategy = st.lists(
    st.tuples(
        st.integers(0, 2**40),
        st.integers(1, 255),
        st.integers(1, 255),
        st.binary(max_size=300),
    ),
    min_size=1,
    max_size=50,
)


@given(parts_strategy)
def test_a_batch_round_trips_through_pickle(spec: list[tuple[int, int, int, bytes]]) -> None:
    parts = [
        outbound_part("job-1", row, part, count, encoded_submit_sm(body)) for row, part, count, body in spec
    ]
    batch = pack_parts(parts)
    assert isinstance(batch, PartBatch)
    assert len(batch) == len(parts)
    assert unpack_parts(pickle.loads(pickle.dumps(batch, protocol=5))) == parts


def test_parts_a_batch_cannot_hold_go_as_a_list() -> None:
    one = outbound_part("a", 1, 1, 1, encoded_submit_sm(b"x"))
    other_job = outbound_part("b", 2, 1, 1, encoded_submit_sm(b"y"))
    not_encoded = OutboundPart("a", 3, 1, 1, SubmitSm(destination_addr="905321234567"))
    for parts in ([one, other_job], [one, not_encoded]):
        packed = pack_parts(parts)
        assert packed == parts
        assert unpack_parts(packed) == parts
    assert pack_parts([]) == []
