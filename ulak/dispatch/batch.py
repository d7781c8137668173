"""A batch of parts as one object across Ray: what the runner hands a bind.

A list of :class:`~ulak.dispatch.bind.OutboundPart` crosses Ray through cloudpickle, whose
``reducer_override`` hook runs in Python for every object: pickling a part cost the driver ~8 µs,
about a third of its CPU per message in ``bench_e2e`` (BENCHMARKS.md, "Fourth session of
2026-11-28"). :class:`PartBatch` keeps the same parts as six flat byte strings (rows, part numbers,
part counts, body lengths and the bodies end to end), which pickle as six objects whatever the batch
holds, and the bind turns them back into parts when they arrive.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from ulak.dispatch.part import OutboundPart, outbound_part
from ulak.smpp.pdu import EncodedSubmitSm, encoded_submit_sm


@dataclass(frozen=True, slots=True)
class PartBatch:
    """Parts of one job, in order, each an encoded submit_sm (see :func:`pack_parts`)."""

    job: str
    rows: bytes  # array('q')
    numbers: bytes  # array('H'): each part's number in its message, from 1
    counts: bytes  # array('H'): how many parts its message has
    lengths: bytes  # array('I'): each body's length in ``bodies``
    bodies: bytes

    def __len__(self) -> int:
        return len(self.lengths) // array("I").itemsize

    def parts(self) -> list[OutboundPart]:
        """The parts, as :meth:`of` was given them."""
        job, blob = self.job, self.bodies
        out = []
        start = 0
        for row, number, count, length in zip(
            array("q", self.rows),
            array("H", self.numbers),
            array("H", self.counts),
            array("I", self.lengths),
            strict=True,
        ):
            end = start + length
            out.append(outbound_part(job, row, number, count, encoded_submit_sm(blob[start:end])))
            start = end
        return out

    @classmethod
    def of(cls, parts: Sequence[OutboundPart]) -> PartBatch:
        """*parts* as one batch; they must be of one job, each with an ``EncodedSubmitSm``."""
        if not parts:
            raise ValueError("an empty batch of parts")
        job = parts[0].job
        bodies = []
        for p in parts:
            if p.job != job or type(p.pdu) is not EncodedSubmitSm:
                raise ValueError("a PartBatch holds encoded parts of one job: send these as a list")
            bodies.append(p.pdu.body)
        return cls(
            job,
            array("q", [p.row for p in parts]).tobytes(),
            array("H", [p.part for p in parts]).tobytes(),
            array("H", [p.parts for p in parts]).tobytes(),
            array("I", map(len, bodies)).tobytes(),
            b"".join(bodies),
        )


def pack_parts(parts: Sequence[OutboundPart]) -> PartBatch | list[OutboundPart]:
    """What to hand a bind for *parts*: one :class:`PartBatch` when they allow it (one job, every
    part encoded ahead), else the list itself (a bind's ``enqueue`` takes either)."""
    try:
        return PartBatch.of(parts)
    except ValueError:
        return list(parts)


def unpack_parts(batch: PartBatch | list[OutboundPart]) -> list[OutboundPart]:
    """The parts of what :func:`pack_parts` made."""
    return batch.parts() if isinstance(batch, PartBatch) else batch
