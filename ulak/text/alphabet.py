"""GSM 7-bit alphabets (3GPP TS 23.038): a locking table plus a single-shift (extension) table.

The tables come from the ``gsmcodecs`` package (3GPP TS 23.038 v18, checked against the spec's default
and Turkish tables in ``tests/unit/test_alphabet.py``). Its codecs walk the text a character at a time
in Python; ours translate a whole string with ``str.translate`` (C speed), see
``scripts/bench/bench_text.py``.

Septets are carried as ``bytes`` with one septet per octet (0x00–0x7F): the form SMPP's
``short_message`` uses for data_coding 0 unless the SMSC asks for packed septets (:func:`pack_septets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from gsmcodecs.charmaps import GSMCHARMAPS

ESCAPE = 0x1B
_ESC = chr(ESCAPE)
# Marks an ASCII character with no GSM representation: keeps the translated text non-ASCII.
_UNMAPPED = "\x80"
# Stands for a septet with no character when decoding (then reported as an error).
_BAD = "\ufffd"

DEFAULT = 0
TURKISH = 1
SPANISH = 2
PORTUGUESE = 3
LANGUAGE_NAMES = {DEFAULT: "default", TURKISH: "turkish", SPANISH: "spanish", PORTUGUESE: "portuguese"}
# The languages an operator may list in ``national_languages``, by name.
NATIONAL_LANGUAGES = {name: code for code, name in LANGUAGE_NAMES.items() if code != DEFAULT}


@dataclass(frozen=True)
class Alphabet:
    """One locking table with one single-shift table, ready to encode and decode."""

    locking: int
    single_shift: int
    encode_table: dict[int, str]
    decode_table: dict[int, str]
    escaped_decode_table: dict[int, str]
    _lookup: list[Any] = field(default_factory=list, compare=False, repr=False)  # see _table

    def to_septets(self, text: str) -> bytes | None:
        """The septets (one per octet) for *text*, or None if a character has no representation."""
        translated = text.translate(self.encode_table)
        if not translated.isascii():
            return None
        return translated.encode("ascii")

    def to_septets_many(self, texts: Sequence[str]) -> list[bytes | None]:
        """:meth:`to_septets` of each of *texts*, the same bytes, worked out together.

        ``str.translate`` takes its fast path only for an ASCII text: one with a character of the
        Turkish single shift table (ş, ğ, ı, İ…) is translated a character at a time through the
        table's dict, ~7 µs for a campaign's 100-character text on the 2-core machine, the largest
        cost of a job's runner for a personalised Turkish campaign. Here the texts go through one
        lookup in a 64K table (numpy) whose entries are already the bytes each character becomes
        (see :meth:`_table`), then back into texts with two byte-string operations: ~1 µs a text
        (``scripts/bench/bench_codec.py``)."""
        import numpy as np  # noqa: PLC0415 - only where batches are encoded, not in the simulator

        if not texts:
            return []
        units = "\uffff".join(texts).encode("utf-16-le")  # a character beyond the BMP: two surrogates
        pairs = self._table()[np.frombuffer(units, dtype=np.uint16)].tobytes()
        septets = pairs.translate(None, b"\xff")  # translate deletes in C; replace took 5× as long
        pieces = septets.split(b"\xfe")
        if len(pieces) != len(texts):  # a text holds U+FFFF itself (no GSM character): one by one
            return [self.to_septets(text) for text in texts]
        if b"\xfd" not in septets:
            return list(pieces)
        return [None if b"\xfd" in piece else piece for piece in pieces]

    def _table(self) -> Any:
        """For each UTF-16 unit, the two bytes it becomes in :meth:`to_septets_many` (a little-endian
        ``uint16``): a septet of the locking table and 0xFF (dropped), escape and the code for one of
        the single shift table, 0xFD for a unit with no septet (a surrogate among them) and 0xFE for
        U+FFFF, which separates the texts. A septet is never above 0x7F, so none of these is one.
        Built once, kept here."""
        if not self._lookup:
            import numpy as np  # noqa: PLC0415

            table = np.full(0x10000, 0xFFFD, dtype=np.uint16)
            table[0xFFFF] = 0xFFFE
            for cp, septets in self.encode_table.items():
                if septets == _UNMAPPED or cp > 0xFFFF:
                    continue
                if len(septets) == 1:
                    table[cp] = 0xFF00 | ord(septets)
                else:
                    table[cp] = ord(septets[1]) << 8 | ESCAPE
            self._lookup.append(table.astype("<u2"))
        return self._lookup[0]

    def septet_count(self, text: str) -> int | None:
        translated = text.translate(self.encode_table)
        return len(translated) if translated.isascii() else None

    def decode(self, septets: bytes) -> str:
        """Septets (one per octet) back to text. Raises ValueError on a septet with no character."""
        if ESCAPE not in septets:
            text = septets.decode("latin-1").translate(self.decode_table)
        else:
            pieces = septets.split(b"\x1b")
            out = [pieces[0].decode("latin-1").translate(self.decode_table)]
            for piece in pieces[1:]:
                if not piece:
                    raise ValueError("escape (0x1B) not followed by an extension character")
                # TS 23.038: an unknown extension character is shown as its locking-table twin.
                first = self.escaped_decode_table.get(piece[0]) or self.decode_table.get(piece[0], _BAD)
                out.append(first)
                out.append(piece[1:].decode("latin-1").translate(self.decode_table))
            text = "".join(out)
        if _BAD in text:
            raise ValueError(f"septets {septets.hex()} hold a value with no character in {self}")
        return text

    def __str__(self) -> str:
        return (
            f"GSM 7-bit (locking {LANGUAGE_NAMES.get(self.locking, self.locking)}, "
            f"single shift {LANGUAGE_NAMES.get(self.single_shift, self.single_shift)})"
        )


@cache
def alphabet(locking: int = DEFAULT, single_shift: int = DEFAULT) -> Alphabet:
    """The alphabet for a locking/single-shift language pair (0 = default, 1 = Turkish, …)."""
    lock = GSMCHARMAPS.get(locking, {}).get("locking")
    shift = GSMCHARMAPS.get(single_shift, {}).get("singleShift")
    if lock is None:
        raise ValueError(f"3GPP TS 23.038 has no locking shift table for language {locking}")
    if shift is None:
        raise ValueError(f"3GPP TS 23.038 has no single shift table for language {single_shift}")
    encode: dict[int, str] = dict.fromkeys(range(128), _UNMAPPED)
    for cp, septet in shift["encode"].items():
        if septet != ESCAPE:  # 0x1B in a shift table is "reserved for another extension"
            encode[cp] = _ESC + chr(septet)
    for cp, septet in lock["encode"].items():
        encode[cp] = chr(septet)  # the locking table wins: one septet beats two
    decode = dict.fromkeys(range(256), _BAD)
    decode.update({septet: chr(cp) for septet, cp in lock["decode"].items() if septet != ESCAPE})
    escaped = {code: chr(cp) for code, cp in shift["decode"].items() if code != ESCAPE}
    return Alphabet(locking, single_shift, encode, decode, escaped)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets into octets (TS 23.038 section 6.1.2.1), after *fill_bits* zero bits.

    The fill bits align the first septet to a septet boundary after a user data header.
    """
    value = 0
    shift = fill_bits
    for septet in septets:
        value |= septet << shift
        shift += 7
    if shift % 8 == 1:
        # Seven spare bits would read as an extra '@'; TS 23.038 section 6.1.2.3.1 fills them with CR.
        value |= 0x0D << shift
    return value.to_bytes((shift + 7) // 8, "little")


def unpack_septets(octets: bytes, fill_bits: int = 0) -> bytes:
    """The inverse of :func:`pack_septets`: every septet after *fill_bits*, minus a CR pad.

    Packed septets carry no count, so a text that really ends in CR exactly on an octet boundary
    loses that CR: the ambiguity TS 23.038 section 6.1.2.3.1 leaves (SMPP's unpacked form has none).
    """
    bits = len(octets) * 8 - fill_bits
    count = bits // 7
    value = int.from_bytes(octets, "little") >> fill_bits
    septets = bytes((value >> (7 * i)) & 0x7F for i in range(count))
    if bits % 7 == 0 and septets.endswith(b"\r"):
        septets = septets[:-1]
    return septets
