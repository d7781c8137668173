"""Choose the cheapest encoding for a text and split it into SMS parts.

``plan(text)`` tries GSM 7-bit with the default alphabet, then with each configured national
language's single-shift, locking-shift and both tables (Turkish by default), then UCS-2, and keeps the
one that needs the fewest parts (ties go to the simpler encoding, listed first). It returns the encoding,
the part count (what the operator bills and the throttle counts) and the payload of every PDU.

Capacity per part (140 octets of user data, 160 septets):

========================  =========  ==============================
encoding                  one part   per part when concatenated (8-bit ref)
========================  =========  ==============================
GSM default               160        153
GSM + single shift        155        149
GSM + locking shift       155        149
GSM + locking + single    152        146
UCS-2 (UTF-16 units)      70         67
========================  =========  ==============================

A part never ends between an escape and the character it introduces, nor between the two halves of a
UTF-16 surrogate pair.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cache

from gsmcodecs.charmaps import GSMCHARMAPS

from ulak.smpp.constants import ESM_CLASS_UDHI
from ulak.text.alphabet import (
    DEFAULT,
    ESCAPE,
    LANGUAGE_NAMES,
    TURKISH,
    Alphabet,
    alphabet,
    pack_septets,
)

MAX_PARTS = 255
_SMS_OCTETS = 140
_SMS_SEPTETS = 160

# UDH information element identifiers (3GPP TS 23.040 section 9.2.3.24)
IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08
IEI_SINGLE_SHIFT = 0x24
IEI_LOCKING_SHIFT = 0x25

DATA_CODING_DEFAULT = 0x00
DATA_CODING_UCS2 = 0x08


class Concat(Enum):
    """How a long message is split across PDUs (configured per operator)."""

    UDH8 = "udh8"  # user data header, 8-bit reference (IEI 0x00): the most widely supported
    UDH16 = "udh16"  # user data header, 16-bit reference (IEI 0x08)
    SAR = "sar"  # sar_msg_ref_num / sar_total_segments / sar_segment_seqnum TLVs
    PAYLOAD = "payload"  # the whole message in one message_payload TLV; the SMSC splits it


@dataclass(frozen=True, slots=True)
class Encoding:
    """An SMS encoding: GSM 7-bit with a locking/single-shift language pair, or UCS-2."""

    ucs2: bool = False
    locking: int = DEFAULT
    single_shift: int = DEFAULT

    @property
    def data_coding(self) -> int:
        return DATA_CODING_UCS2 if self.ucs2 else DATA_CODING_DEFAULT

    @property
    def name(self) -> str:
        if self.ucs2:
            return "ucs2"
        if self.locking == DEFAULT and self.single_shift == DEFAULT:
            return "gsm7"
        name = "gsm7"
        if self.locking != DEFAULT:
            name += f"+{LANGUAGE_NAMES.get(self.locking, self.locking)}-locking"
        if self.single_shift != DEFAULT:
            name += f"+{LANGUAGE_NAMES.get(self.single_shift, self.single_shift)}-shift"
        return name

    def language_ies(self) -> bytes:
        ies = b""
        if self.locking != DEFAULT:
            ies += bytes((IEI_LOCKING_SHIFT, 1, self.locking))
        if self.single_shift != DEFAULT:
            ies += bytes((IEI_SINGLE_SHIFT, 1, self.single_shift))
        return ies


GSM7 = Encoding()
UCS2 = Encoding(ucs2=True)


class _NationalEncodings(dict[int, tuple[Encoding, ...]]):
    """Per language: single shift, locking shift, both (built once per language), leaving out what
    TS 23.038 does not define (Spanish has a single-shift table but no locking table)."""

    def __missing__(self, lang: int) -> tuple[Encoding, ...]:
        tables = GSMCHARMAPS.get(lang, {})
        if "singleShift" not in tables and "locking" not in tables:
            raise ValueError(f"3GPP TS 23.038 has no national language tables for language {lang}")
        value = tuple(
            encoding
            for encoding, needs in (
                (Encoding(single_shift=lang), ("singleShift",)),
                (Encoding(locking=lang), ("locking",)),
                (Encoding(locking=lang, single_shift=lang), ("locking", "singleShift")),
            )
            if all(name in tables for name in needs)
        )
        self[lang] = value
        return value


_NATIONAL = _NationalEncodings()


def encoding_named(name: str, languages: tuple[int, ...]) -> Encoding | None:
    """The encoding called *name* (``Encoding.name``) among those *languages* allow (the default
    alphabet and UCS-2 always); None when it is not one of them."""
    return _named(languages).get(name)


@cache
def _named(languages: tuple[int, ...]) -> dict[str, Encoding]:
    found = {GSM7.name: GSM7, UCS2.name: UCS2}
    for lang in languages:
        found.update((e.name, e) for e in _NATIONAL[lang])
    return found


@dataclass(frozen=True, slots=True)
class Segment:
    """The payload of one PDU: what goes into ``short_message`` (or ``message_payload``)."""

    data: bytes  # user data header (if any) followed by the encoded text
    esm_class: int  # ESM_CLASS_UDHI when ``data`` starts with a user data header
    sar: tuple[int, int, int] | None = None  # (reference, total, sequence) for Concat.SAR
    in_payload: bool = False  # send in the message_payload TLV (Concat.PAYLOAD)


@dataclass(frozen=True, slots=True)
class MessagePlan:
    encoding: Encoding
    parts: int  # SMS parts on the air: what the operator bills and the throttle counts
    length: int  # septets (GSM) or UTF-16 units (UCS-2) of the text, escapes included
    segments: tuple[Segment, ...]  # one per PDU to submit

    @property
    def data_coding(self) -> int:
        return self.encoding.data_coding


class MessageTooLong(ValueError):
    """The text needs more parts than allowed; shorten it or raise the operator's ``max_parts``."""

    def __init__(self, message: str, parts: int = 0, limit: int = MAX_PARTS) -> None:
        super().__init__(message, parts, limit)
        self.parts = parts
        self.limit = limit

    def __str__(self) -> str:
        return str(self.args[0])


def _udh_len(ies: bytes) -> int:
    return 1 + len(ies) if ies else 0


def _concat_ie_len(concat: Concat) -> int:
    # SAR and message_payload carry no concatenation IE in our PDU, but the SMSC adds an 8-bit one on
    # the air, so the parts must leave room for it.
    return 6 if concat is Concat.UDH16 else 5


def _capacity(encoding: Encoding, udh_octets: int) -> int:
    if encoding.ucs2:
        return (_SMS_OCTETS - udh_octets) // 2
    return _SMS_SEPTETS - (udh_octets * 8 + 6) // 7


def _split_points(units: bytes, capacity: int, *, ucs2: bool) -> list[int]:
    """Boundaries that cut *units* into chunks of at most *capacity*, never inside a pair."""
    points = [0]
    n = len(units) // 2 if ucs2 else len(units)
    start = 0
    while start < n:
        stop = min(start + capacity, n)
        if stop < n:
            if ucs2:
                high = units[2 * (stop - 1)]
                if 0xD8 <= high <= 0xDB:  # a high surrogate: keep its low half with it
                    stop -= 1
            else:
                # Count the escapes that run into the boundary: an odd run ends with a dangling escape.
                run = 0
                i = stop - 1
                while i >= start and units[i] == ESCAPE:
                    run += 1
                    i -= 1
                if run % 2 == 1:
                    stop -= 1
        points.append(stop)
        start = stop
    return points


def _part_count(encoding: Encoding, units: bytes, length: int, concat: Concat) -> int:
    """Exact SMS parts on the air (for Concat.PAYLOAD: what the SMSC's 8-bit UDH split yields)."""
    ies = encoding.language_ies()
    if length <= _capacity(encoding, _udh_len(ies)):
        return 1
    capacity = _capacity(encoding, 1 + len(ies) + _concat_ie_len(concat))
    return len(_split_points(units, capacity, ucs2=encoding.ucs2)) - 1


def plan(
    text: str,
    *,
    concat: Concat = Concat.UDH8,
    reference: int = 0,
    languages: tuple[int, ...] = (TURKISH,),
    max_parts: int = MAX_PARTS,
    packed: bool = False,
    encoding: Encoding | None = None,
) -> MessagePlan:
    """Plan *text* (see the module docstring). Raises :class:`MessageTooLong` past *max_parts*.

    ``reference`` is the concatenation reference shared by the parts (8 or 16 bits). ``packed`` packs
    GSM septets into octets for SMSCs that want that (default: one septet per octet). ``encoding``
    forces one encoding (ValueError if it cannot represent the text); ``languages=()`` restricts the
    choice to the default alphabet and UCS-2 for SMSCs without national language tables.
    """
    if encoding is None:
        encoding, units, length, parts = _choose(text, concat, languages)
    else:
        units, length = _units(text, encoding)
        parts = _part_count(encoding, units, length, concat)
    if parts > min(max_parts, MAX_PARTS):
        raise MessageTooLong(
            f"text of {len(text)} characters needs {parts} parts as {encoding.name}; the limit is "
            f"{min(max_parts, MAX_PARTS)}",
            parts,
            min(max_parts, MAX_PARTS),
        )
    segments = _segments(encoding, units, length, concat=concat, reference=reference, packed=packed)
    return MessagePlan(encoding, parts, length, tuple(segments))


def _units(text: str, encoding: Encoding) -> tuple[bytes, int]:
    if encoding.ucs2:
        utf16 = text.encode("utf-16-be")
        return utf16, len(utf16) // 2
    septets = alphabet(encoding.locking, encoding.single_shift).to_septets(text)
    if septets is None:
        bad = sorted(
            {c for c in text if alphabet(encoding.locking, encoding.single_shift).to_septets(c) is None}
        )
        raise ValueError(f"{encoding.name} cannot represent {''.join(bad)!r}")
    return septets, len(septets)


def _candidates(text: str, languages: tuple[int, ...]) -> Iterator[tuple[Encoding, bytes]]:
    """Encodings that can represent *text*, simplest first (the order breaks ties)."""
    septets = alphabet().to_septets(text)
    if septets is not None:
        yield GSM7, septets
    for lang in languages:
        for encoding in _NATIONAL[lang]:
            found = alphabet(encoding.locking, encoding.single_shift).to_septets(text)
            if found is not None:
                yield encoding, found
    yield UCS2, text.encode("utf-16-be")


def _choose(text: str, concat: Concat, languages: tuple[int, ...]) -> tuple[Encoding, bytes, int, int]:
    best: tuple[int, Encoding, bytes, int] | None = None
    for encoding, units in _candidates(text, languages):
        length = len(units) // 2 if encoding.ucs2 else len(units)
        parts = _part_count(encoding, units, length, concat)
        if best is None or parts < best[0]:
            best = (parts, encoding, units, length)
            if parts == 1:
                break  # nothing beats one part, and later candidates lose ties
    assert best is not None
    return best[1], best[2], best[3], best[0]


def _segments(
    encoding: Encoding, units: bytes, length: int, *, concat: Concat, reference: int, packed: bool
) -> list[Segment]:
    ies = encoding.language_ies()
    ucs2 = encoding.ucs2
    single_udh = _udh_len(ies)
    if concat is Concat.PAYLOAD or length <= _capacity(encoding, single_udh):
        udh = bytes((len(ies),)) + ies if ies else b""
        data = _user_data(units, udh, ucs2=ucs2, packed=packed)
        return [Segment(udh + data, ESM_CLASS_UDHI if udh else 0, in_payload=concat is Concat.PAYLOAD)]
    capacity = _capacity(encoding, 1 + len(ies) + _concat_ie_len(concat))
    points = _split_points(units, capacity, ucs2=ucs2)
    total = len(points) - 1
    width = 2 if ucs2 else 1
    segments = []
    for seq in range(1, total + 1):
        chunk = units[points[seq - 1] * width : points[seq] * width]
        if concat is Concat.SAR:
            header = ies
            sar: tuple[int, int, int] | None = (reference & 0xFFFF, total, seq)
        elif concat is Concat.UDH16:
            header = bytes((IEI_CONCAT_16, 4, (reference >> 8) & 0xFF, reference & 0xFF, total, seq)) + ies
            sar = None
        else:
            header = bytes((IEI_CONCAT_8, 3, reference & 0xFF, total, seq)) + ies
            sar = None
        udh = bytes((len(header),)) + header if header else b""
        data = _user_data(chunk, udh, ucs2=ucs2, packed=packed)
        segments.append(Segment(udh + data, ESM_CLASS_UDHI if udh else 0, sar=sar))
    return segments


@dataclass(frozen=True, slots=True)
class OnePart:
    """What :func:`plan` makes of any text that fits one part in *encoding* (concatenation not
    ``PAYLOAD``), kept to encode a personalised campaign's texts without planning each: its
    ``short_message`` is ``udh`` and the text's units, and ``esm_class`` is the same for all."""

    encoding: Encoding
    capacity: int  # septets or UTF-16 units that fit one part beside the UDH
    udh: bytes
    esm_class: int
    packed: bool

    @property
    def alphabet(self) -> Alphabet | None:
        """The GSM alphabet of the encoding (None: UCS-2)."""
        return None if self.encoding.ucs2 else alphabet(self.encoding.locking, self.encoding.single_shift)

    def data(self, text: str, *, septets: bytes | None = None) -> bytes | None:
        """*text*'s ``short_message``, exactly as ``plan(text, encoding=...)`` gives it; None when
        the encoding cannot represent it or it needs more than one part. *septets*: the text's, from
        :meth:`Alphabet.to_septets_many` of this layout's :attr:`alphabet`, if worked out already."""
        ucs2 = self.encoding.ucs2
        if ucs2:
            units: bytes | None = text.encode("utf-16-be")
        elif septets is not None:
            units = septets
        else:
            units = alphabet(self.encoding.locking, self.encoding.single_shift).to_septets(text)
        if units is None or (len(units) // 2 if ucs2 else len(units)) > self.capacity:
            return None
        return self.udh + _user_data(units, self.udh, ucs2=ucs2, packed=self.packed)


@cache
def one_part(encoding: Encoding, *, concat: Concat, packed: bool) -> OnePart | None:
    """How one-part texts in *encoding* are laid out (None for ``Concat.PAYLOAD``, whose text goes in
    a TLV); the twin of :func:`_segments`' first branch, held to it by a test."""
    if concat is Concat.PAYLOAD:
        return None
    ies = encoding.language_ies()
    udh = bytes((len(ies),)) + ies if ies else b""
    return OnePart(encoding, _capacity(encoding, _udh_len(ies)), udh, ESM_CLASS_UDHI if udh else 0, packed)


def _user_data(units: bytes, udh: bytes, *, ucs2: bool, packed: bool) -> bytes:
    if ucs2 or not packed:
        return units
    fill = (7 - (len(udh) * 8) % 7) % 7 if udh else 0
    return pack_septets(units, fill)
