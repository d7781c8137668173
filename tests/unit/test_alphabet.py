"""The GSM tables we take from gsmcodecs, checked against 3GPP TS 23.038, and our fast codec."""

from __future__ import annotations

import codecs

import gsmcodecs  # noqa: F401 - registers the gsm23.038 codecs used as a second opinion
import pytest
from gsmcodecs.charmaps import GSMCHARMAPS
from hypothesis import given
from hypothesis import strategies as st

from ulak.text.alphabet import ESCAPE, TURKISH, alphabet, pack_septets, unpack_septets

# 3GPP TS 23.038 section 6.2.1: the default alphabet, septets 0x00-0x7F (0x1B is the escape).
SPEC_DEFAULT = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# Section 6.2.1.1: the default extension table.
SPEC_EXTENSION = {
    0x0A: "\x0c",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
# Annex A.3.1: the Turkish locking shift table differs from the default in these positions.
SPEC_TURKISH_LOCKING = dict(enumerate(SPEC_DEFAULT)) | {
    0x04: "€",
    0x07: "ı",
    0x0B: "Ğ",
    0x0C: "ğ",
    0x1C: "Ş",
    0x1D: "ş",
    0x40: "İ",
    0x60: "ç",
}
# Annex A.2.1: the Turkish single shift table adds these to the default extension characters.
SPEC_TURKISH_SHIFT = SPEC_EXTENSION | {
    0x47: "Ğ",
    0x49: "İ",
    0x53: "Ş",
    0x63: "ç",
    0x67: "ğ",
    0x69: "ı",
    0x73: "ş",
}


def _table(lang: int, kind: str) -> dict[int, str]:
    return {k: chr(v) for k, v in GSMCHARMAPS[lang][kind]["decode"].items() if k != ESCAPE}


def test_gsmcodecs_default_matches_spec() -> None:
    assert _table(0, "locking") == {i: c for i, c in enumerate(SPEC_DEFAULT) if i != ESCAPE}
    assert {k: v for k, v in _table(0, "singleShift").items() if k != 0x0D} == SPEC_EXTENSION


def test_gsmcodecs_turkish_matches_spec() -> None:
    assert _table(TURKISH, "locking") == {k: v for k, v in SPEC_TURKISH_LOCKING.items() if k != ESCAPE}
    assert {k: v for k, v in _table(TURKISH, "singleShift").items() if k != 0x0D} == SPEC_TURKISH_SHIFT


def test_turkish_letters_need_national_tables() -> None:
    default = alphabet()
    assert default.to_septets("öüÖÜÇ") is not None  # in the default alphabet
    for ch in "çğıİşŞĞ":
        assert default.to_septets(ch) is None
        assert alphabet(0, TURKISH).to_septets(ch) is not None
        assert alphabet(TURKISH, 0).to_septets(ch) is not None


def test_escape_costs_two_septets() -> None:
    assert alphabet().to_septets("a€") == b"a\x1b\x65"
    assert alphabet(0, TURKISH).to_septets("ş") == b"\x1b\x73"
    assert alphabet(TURKISH, 0).to_septets("ş") == b"\x1d"


def test_characters_outside_every_table() -> None:
    assert alphabet().to_septets("`") is None  # ASCII, but not GSM
    assert alphabet().to_septets("Ж") is None


@pytest.mark.parametrize("lock", [lang for lang in range(14) if "locking" in GSMCHARMAPS[lang]])
@pytest.mark.parametrize("shift", [lang for lang in range(14) if "singleShift" in GSMCHARMAPS[lang]])
def test_every_table_round_trips(lock: int, shift: int) -> None:
    table = alphabet(lock, shift)
    chars = "".join(chr(cp) for cp, mapped in table.encode_table.items() if mapped != "\x80")
    septets = table.to_septets(chars)
    assert septets is not None
    assert table.decode(septets) == chars


@given(
    st.text(
        st.sampled_from(SPEC_DEFAULT.replace("\x1b", "") + "".join(SPEC_TURKISH_SHIFT.values())), max_size=300
    )
)
def test_matches_gsmcodecs(text: str) -> None:
    ours = alphabet(0, TURKISH).to_septets(text)
    assert ours == codecs.encode(text, "gsm23.038_0_1")
    assert alphabet(0, TURKISH).decode(ours) == text


# Of every kind to_septets_many meets: ASCII with and without a septet, escapes, Turkish letters of
# either table, UCS-2 only, beyond the BMP (two surrogates), and U+FFFF, which separates its texts.
MANY_CHARS = "aZ0 @$_`\x1b\x0c€{}[]~|^\\şğıİçÇöüŞĞжé😀\uffff\ufffe\x7f"


@given(
    st.lists(st.text(st.sampled_from(MANY_CHARS), max_size=40)),
    st.sampled_from([(0, 0), (0, TURKISH), (TURKISH, TURKISH), (TURKISH, 0), (0, 2), (3, 3)]),
)
def test_many_texts_at_once_are_the_septets_of_each(texts: list[str], tables: tuple[int, int]) -> None:
    """``to_septets_many`` (the runner's batch path) gives each text exactly what ``to_septets``
    gives it: the septets, or None for a character the alphabet lacks (U+FFFF, which separates the
    texts inside, one beyond the BMP, an ASCII one GSM has not)."""
    table = alphabet(*tables)
    assert table.to_septets_many(texts) == [table.to_septets(text) for text in texts]


@given(st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)), st.integers(0, 6))
def test_packing_round_trips(septets: bytes, fill: int) -> None:
    if septets.endswith(b"\r"):
        septets += b"a"  # a final CR on an octet boundary is ambiguous in packed form (TS 23.038 6.1.2.3.1)
    assert unpack_septets(pack_septets(septets, fill), fill) == septets


def test_packing_known_vector() -> None:
    # "hellohello" packed: the classic 3GPP example
    assert pack_septets(b"hellohello").hex() == "e8329bfd4697d9ec37"


def test_missing_table_is_named() -> None:
    with pytest.raises(ValueError, match="no locking shift table for language 2"):
        alphabet(2, 0)


def test_lone_escape_is_an_error() -> None:
    with pytest.raises(ValueError, match="escape"):
        alphabet().decode(b"a\x1b")
