"""One part to submit, as it crosses from a job's runner to a bind and back in a ledger event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ulak.smpp.pdu import EncodedSubmitSm, SubmitSm, fast_constructor


@dataclass(frozen=True, slots=True)
class OutboundPart:
    """One PDU to submit, and which part of which row of which job it is."""

    job: str
    row: int
    part: int
    parts: int
    pdu: SubmitSm | EncodedSubmitSm  # EncodedSubmitSm on the hot path (see its docstring)

    def __reduce__(self) -> tuple[Any, ...]:
        # Batches of these cross Ray: by position, not through dataclasses' per-object fields() walk,
        # and rebuilt without the frozen __init__ (4× slower): unpickling them was ~10 % of a bind.
        return (outbound_part, (self.job, self.row, self.part, self.parts, self.pdu))


_make_outbound_part = fast_constructor(OutboundPart)


def outbound_part(job: str, row: int, part: int, parts: int, pdu: SubmitSm | EncodedSubmitSm) -> OutboundPart:
    """``OutboundPart(job, row, part, parts, pdu)``, built without the frozen ``__init__``."""
    return _make_outbound_part(job, row, part, parts, pdu)  # type: ignore[no-any-return]
