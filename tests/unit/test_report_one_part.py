"""A one-part row's outcome read straight from its bucket's hash
(``cluster.reports.report._one_part_outcome``) is what the general reading (``_row_outcome``) finds,
whatever the ledger holds for it; where it declines (a stopped row, a state it does not know) the
general reading answers."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cluster.reports.report import _one_part_outcome, _row_outcome
from ulak import keys

_MS = st.integers(0, 2**41)
_STATUS = st.sampled_from(
    ["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN", "ACCEPTD", "ENROUTE", "odd"]
)


def _optional(values: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes | None]:
    return st.none() | values


_ACK = st.builds(
    lambda i, ms: b"%s|%d" % (i.encode(), ms),
    st.text("0123456789abcdefABCDEF-|", max_size=20),  # an id may hold "|", or be empty
    _MS,
)
_RECEIPT = st.builds(
    lambda s, e, ms: b"%s|%s|%d" % (s.encode(), e.encode(), ms),
    _STATUS,
    st.text("0123456789", min_size=0, max_size=3),
    _MS,
)


def _sent(
    state: bytes, *, ack: bytes | None = None, fault: bytes | None = None, receipt: bytes | None = None
) -> dict[str, object]:
    """An explicit example: a row in *state*, neither stopped nor with an outcome of its own."""
    return {
        "row": 10,
        "state": state,
        "outcome": None,
        "stopped": None,
        "ack": ack,
        "fault": fault,
        "receipt": receipt,
        "unsent": "pending",
    }


@settings(max_examples=400, deadline=None)
@given(
    row=st.integers(1, 10**8),
    state=_optional(st.sampled_from([b"s", b"a", b"f", b"u", b"x", b"?"])),
    outcome=_optional(st.sampled_from([b"delivered", b"undelivered", b"expired"])),
    stopped=_optional(st.sampled_from([b"opted_out|1765000000000", b"frequency_capped|0", b"expired|5"])),
    ack=_optional(_ACK),
    fault=_optional(st.integers(0, 2**32 - 1).map(lambda c: b"%d" % c)),
    receipt=_optional(_RECEIPT),
    unsent=st.sampled_from(["pending", "cancelled"]),
)
@example(**_sent(b"a", ack=b"abc|1", receipt=b"DELIVRD|000|2"))  # acked and delivered: the common row
@example(
    **_sent(b"f", fault=b"88", receipt=b"UNDELIV|001|2")
)  # a failure and a negative receipt: the failure shown
@example(**_sent(b"a", ack=b"|5"))  # an empty id: no ids shown
def test_a_one_part_row_read_straight_is_what_the_general_reading_finds(
    row: int,
    state: bytes | None,
    outcome: bytes | None,
    stopped: bytes | None,
    ack: bytes | None,
    fault: bytes | None,
    receipt: bytes | None,
    unsent: str,
) -> None:
    key = keys.row_field(row).encode()
    fields = {
        key: state,
        key + b":o": outcome,
        key + b":x": stopped,
        key + b":1": state,
        key + b":1:m": ack,
        key + b":1:e": fault,
        key + b":1:r": receipt,
    }
    bucket = {k: v for k, v in fields.items() if v is not None}
    # Other rows of the bucket, which neither reading may take for this one's.
    other = keys.row_field(row + 1).encode()
    bucket |= {other: b"f", other + b":1:m": b"other|9", other + b":o": b"expired"}
    straight = _one_part_outcome(key, state, bucket, unsent=unsent)
    if stopped is not None or state == b"?":
        assert straight is None
        return
    general = _row_outcome(1, [state, outcome, stopped], [ack, fault, receipt], unsent=unsent)
    assert straight == general
