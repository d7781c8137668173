"""MO (mobile-originated) messages: one part as a bind reads it, and parts put back together.

Sans-IO: a bind turns each ``deliver_sm`` that is not a receipt into a :class:`MoPart` and makes it
durable (``keys.mo_parts``) before it answers; the replies processor (``cluster.engagement.replies``) feeds
the parts to a :class:`Reassembler`, which gives whole :class:`MoMessage` s back: at once for a
single part, once every part of a concatenated message is there (UDH 8- or 16-bit reference, or
the SAR TLVs; in any order), or after a timeout with what came (``complete`` False).

The text is decoded once the parts are together, from their concatenated user data: a GSM escape
or a UCS-2 surrogate pair split across two parts decodes as one character.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ulak.smpp.constants import ESM_CLASS_UDHI
from ulak.smpp.pdu import DeliverSm
from ulak.text.alphabet import DEFAULT, alphabet
from ulak.text.plan import IEI_CONCAT_8, IEI_CONCAT_16, IEI_LOCKING_SHIFT, IEI_SINGLE_SHIFT
from ulak.text.udh import parse_udh

# SMPP 3.4 data_coding values (section 5.2.19) a reply is decoded by.
DC_DEFAULT, DC_IA5, DC_BINARY, DC_LATIN1, DC_BINARY_2, DC_UCS2 = 0, 1, 2, 3, 4, 8


@dataclass(frozen=True, slots=True)
class MoPart:
    """One deliver_sm that is not a receipt, as read: its user data without the UDH."""

    smsc: str  # the operator whose bind read it
    source: str  # source_addr as sent (the recipient who answered)
    dest: str  # destination_addr: the short code or number answered to
    data_coding: int
    body: bytes
    received: float  # unix seconds
    concat: tuple[int, int, int] | None = None  # (reference, total, sequence)
    locking: int = DEFAULT
    single_shift: int = DEFAULT
    source_ton: int = 0

    def pack(self) -> dict[str, str]:
        """Stream fields (``XADD``), all strings: the body in hex."""
        d = asdict(self)
        d["body"] = self.body.hex()
        d["concat"] = json.dumps(self.concat)
        return {k: str(v) for k, v in d.items()}

    @classmethod
    def unpack(cls, fields: dict[bytes, bytes] | dict[str, str]) -> MoPart:
        f = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }
        concat = json.loads(f["concat"])
        return cls(
            smsc=f["smsc"],
            source=f["source"],
            dest=f["dest"],
            data_coding=int(f["data_coding"]),
            body=bytes.fromhex(f["body"]),
            received=float(f["received"]),
            concat=(int(concat[0]), int(concat[1]), int(concat[2])) if concat else None,
            locking=int(f["locking"]),
            single_shift=int(f["single_shift"]),
            source_ton=int(f.get("source_ton", 0)),
        )


def mo_part(pdu: DeliverSm, *, smsc: str, received: float) -> MoPart:
    """*pdu*'s part: its UDH (concatenation, national shift tables) or SAR TLVs read, its user data
    kept undecoded. A malformed UDH keeps the whole user data as the body (decoded as it stands)."""
    data = pdu.body
    concat: tuple[int, int, int] | None = None
    locking = single = DEFAULT
    if pdu.esm_class & ESM_CLASS_UDHI and data and data[0] + 1 <= len(data):
        try:
            ies = parse_udh(data[: data[0] + 1])
        except ValueError:
            ies = None
        if ies is not None:
            data = data[data[0] + 1 :]
            if len(ies.get(IEI_CONCAT_8, b"")) == 3:
                ref, total, seq = ies[IEI_CONCAT_8]
                concat = (ref, total, seq)
            elif len(ies.get(IEI_CONCAT_16, b"")) == 4:
                raw = ies[IEI_CONCAT_16]
                concat = (raw[0] << 8 | raw[1], raw[2], raw[3])
            if ies.get(IEI_LOCKING_SHIFT):
                locking = ies[IEI_LOCKING_SHIFT][0]
            if ies.get(IEI_SINGLE_SHIFT):
                single = ies[IEI_SINGLE_SHIFT][0]
    if concat is None and pdu.sar_msg_ref_num is not None and pdu.sar_total_segments:
        concat = (pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum or 1)
    if concat is not None and (concat[1] < 2 or not 1 <= concat[2] <= concat[1]):
        concat = None  # "part 1 of 1", or a sequence outside its total: a message of its own
    return MoPart(
        smsc=smsc,
        source=pdu.source_addr,
        dest=pdu.destination_addr,
        data_coding=pdu.data_coding,
        body=data,
        received=received,
        concat=concat,
        locking=locking,
        single_shift=single,
        source_ton=pdu.source_addr_ton,
    )


def decode_text(data_coding: int, body: bytes, *, locking: int = DEFAULT, single_shift: int = DEFAULT) -> str:
    """The text of *body* by SMPP *data_coding*: GSM 03.38 (unpacked septets, with the national
    tables the UDH named), IA5/ASCII, Latin-1, UCS-2; binary data (2, 4, or a class-coded 8-bit
    value) as ``<binary: hex>``. What does not decode is replaced (U+FFFD), never an error: an
    answer is kept whatever its bytes."""
    dc = data_coding
    if dc & 0xF0 == 0xF0:  # GSM 03.38 "data coding/message class": bit 2 says 8-bit data
        dc = DC_BINARY if dc & 0x04 else DC_DEFAULT
    if dc == DC_UCS2:
        return body.decode("utf-16-be", errors="replace")
    if dc == DC_DEFAULT:
        if any(b > 0x7F for b in body):  # not septets: an SMSC that sends Latin-1 as "default"
            return body.decode("latin-1")
        return alphabet(locking, single_shift).decode(body)
    if dc == DC_IA5:
        return body.decode("ascii", errors="replace")
    if dc in (DC_BINARY, DC_BINARY_2):
        return f"<binary: {body.hex()}>"
    return body.decode("latin-1")


@dataclass(frozen=True, slots=True)
class MoMessage:
    """A whole reply: its parts' text in order, when the first part came, and whether all came."""

    smsc: str
    source: str
    dest: str
    text: str
    received: float
    parts: int
    complete: bool = True
    source_ton: int = 0


@dataclass(slots=True)
class _Pending:
    first: float
    total: int
    parts: dict[int, MoPart] = field(default_factory=dict)
    tags: list[object] = field(default_factory=list)


def _whole(parts: list[MoPart], *, complete: bool) -> MoMessage:
    first = parts[0]
    if first.data_coding == DC_UCS2 or first.data_coding in (DC_DEFAULT, DC_IA5, DC_LATIN1):
        text = decode_text(
            first.data_coding,
            b"".join(p.body for p in parts),
            locking=first.locking,
            single_shift=first.single_shift,
        )
    else:
        text = "".join(decode_text(p.data_coding, p.body) for p in parts)
    return MoMessage(
        smsc=first.smsc,
        source=first.source,
        dest=first.dest,
        text=text,
        received=min(p.received for p in parts),
        parts=len(parts),
        complete=complete,
        source_ton=first.source_ton,
    )


class Reassembler:
    """Concatenated replies put back together, by (operator, source, destination, reference,
    total). Each part comes with a *tag* (the stream entry it was read from): a message comes out
    with the tags of all its parts, to be acknowledged together once it is written."""

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self._pending: dict[tuple[str, str, str, int, int], _Pending] = {}

    def add(self, part: MoPart, tag: object) -> tuple[MoMessage, list[object]] | None:
        if part.concat is None:
            return _whole([part], complete=True), [tag]
        ref, total, seq = part.concat
        key = (part.smsc, part.source, part.dest, ref, total)
        pending = self._pending.setdefault(key, _Pending(first=part.received, total=total))
        pending.tags.append(tag)
        pending.parts.setdefault(seq, part)  # a part sent again (unanswered before) counts once
        pending.first = min(pending.first, part.received)
        if len(pending.parts) < total:
            return None
        del self._pending[key]
        return _whole([pending.parts[s] for s in sorted(pending.parts)], complete=True), pending.tags

    def expired(self, now: float) -> list[tuple[MoMessage, list[object]]]:
        """Messages whose missing parts did not come within the timeout: what came, in order."""
        out = []
        for key, pending in list(self._pending.items()):
            if now - pending.first >= self.timeout:
                del self._pending[key]
                parts = [pending.parts[s] for s in sorted(pending.parts)]
                out.append((_whole(parts, complete=False), pending.tags))
        return out

    def waiting(self) -> int:
        return len(self._pending)

    def tags(self) -> Iterable[object]:
        for pending in self._pending.values():
            yield from pending.tags


class MoStore(Protocol):
    """Where a bind's replies are durable before it answers them."""

    async def append(self, parts: list[MoPart]) -> None: ...


class RedisMoStore:
    """Replies' parts appended to ``keys.MO_PARTS`` (one stream: replies are few beside receipts),
    in one MULTI per read."""

    def __init__(self, client: Any, key: str) -> None:
        self._client = client
        self.key = key

    async def append(self, parts: list[MoPart]) -> None:
        pipe = self._client.pipeline(transaction=True)
        for part in parts:
            pipe.xadd(self.key, part.pack())
        await pipe.execute()
