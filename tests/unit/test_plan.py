"""Encoding choice and segmentation."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ulak.smpp.constants import ESM_CLASS_UDHI
from ulak.text import Concat, Encoding, MessageTooLong, plan
from ulak.text.alphabet import TURKISH
from ulak.text.plan import GSM7, UCS2
from ulak.text.udh import decode_user_data

TURKISH_TEXT = "Şubat kampanyası: %20 indirim, ğüşıöç İĞÜŞÖÇ"
SHIFT = Encoding(single_shift=TURKISH)
LOCKING = Encoding(locking=TURKISH)
BOTH = Encoding(locking=TURKISH, single_shift=TURKISH)

# TS 23.038 septets, written out by hand from the spec tables: default alphabet, escape (1B) + Turkish
# single shift for Ş ı ğ ş ç İ Ğ, and ü=7E ö=7C Ü=5E Ö=5C Ç=09 from the default alphabet.
GOLDEN_SHIFT = bytes.fromhex(
    "1b53"
    "75626174"
    "20"
    "6b616d70616e7961731b69"
    "3a"
    "20"
    "253230"
    "20"
    "696e646972696d"
    "2c"
    "20"
    "1b67"
    "7e"
    "1b73"
    "1b69"
    "7c"
    "1b63"
    "20"
    "1b49"
    "1b47"
    "5e"
    "1b53"
    "5c"
    "09"
)
# With the Turkish locking table every Turkish letter is one septet: ı=07 ğ=0C ş=1D ç=60 İ=40 Ğ=0B Ş=1C.
GOLDEN_LOCKING = bytes.fromhex(
    "1c75626174206b616d70616e796173073a2025323020696e646972696d2c200c7e1d077c6020400b5e1c5c09"
)


def test_turkish_golden_single_shift() -> None:
    p = plan(TURKISH_TEXT)
    assert p.encoding == SHIFT
    assert p.parts == 1
    (segment,) = p.segments
    assert segment.data == bytes.fromhex("03240101") + GOLDEN_SHIFT
    assert segment.esm_class == ESM_CLASS_UDHI
    assert p.data_coding == 0


def test_turkish_golden_locking() -> None:
    p = plan(TURKISH_TEXT, encoding=LOCKING)
    assert p.segments[0].data == bytes.fromhex("03250101") + GOLDEN_LOCKING
    assert p.parts == 1


def test_turkish_golden_ucs2() -> None:
    p = plan(TURKISH_TEXT, encoding=UCS2)
    assert p.segments[0].data == TURKISH_TEXT.encode("utf-16-be")
    assert (p.parts, p.data_coding, p.segments[0].esm_class) == (1, 8, 0)


def test_turkish_text_is_not_default_gsm() -> None:
    with pytest.raises(ValueError, match="cannot represent"):
        plan(TURKISH_TEXT, encoding=GSM7)


@pytest.mark.parametrize(
    ("repeat", "expected"),
    [
        # (shift, locking, both, ucs2) parts
        (1, (1, 1, 1, 1)),
        (4, (2, 2, 2, 3)),
        (8, (3, 3, 3, 6)),
        (20, (8, 7, 7, 14)),  # 1080 septets / 149; 900 / 149; 900 / 146; 900 units / 67
    ],
)
def test_turkish_part_counts(repeat: int, expected: tuple[int, int, int, int]) -> None:
    text = (TURKISH_TEXT + " ") * repeat
    counts = tuple(plan(text, encoding=e).parts for e in (SHIFT, LOCKING, BOTH, UCS2))
    assert counts == expected
    assert plan(text).parts == min(expected)  # the automatic choice is the cheapest


def test_single_part_capacities() -> None:
    assert plan("a" * 160).parts == 1
    assert plan("a" * 161).parts == 2
    assert plan("a" * 153 + "ş", encoding=SHIFT).parts == 1  # 155 septets with the single shift table
    assert plan("a" * 154 + "ş", encoding=SHIFT).parts == 2
    assert plan("ı" * 155, encoding=LOCKING).parts == 1
    assert plan("ı" * 156, encoding=LOCKING).parts == 2
    assert plan("Ж" * 70).parts == 1
    assert plan("Ж" * 71).parts == 2


def test_concatenated_capacities() -> None:
    assert [len(s.data) for s in plan("a" * 306).segments] == [159, 159]  # 6 UDH octets + 153
    assert [len(s.data) for s in plan("Ж" * 134).segments] == [140, 140]  # 6 + 2 x 67
    assert [len(s.data) for s in plan("a" * 304, concat=Concat.UDH16).segments] == [159, 159]  # 7 + 152


def test_udh8_header_bytes() -> None:
    segments = plan("a" * 200, reference=0xAB).segments
    assert [s.data[:6] for s in segments] == [bytes.fromhex("050003ab0201"), bytes.fromhex("050003ab0202")]


def test_udh16_header_bytes() -> None:
    segments = plan("a" * 200, concat=Concat.UDH16, reference=0x1234).segments
    assert segments[1].data[:7] == bytes.fromhex("06080412340202")


def test_sar_uses_tlvs_and_no_concat_udh() -> None:
    p = plan("a" * 200, concat=Concat.SAR, reference=300)
    assert [s.sar for s in p.segments] == [(300, 2, 1), (300, 2, 2)]
    assert all(s.esm_class == 0 for s in p.segments)
    assert [len(s.data) for s in p.segments] == [153, 47]


def test_payload_is_one_pdu_counting_air_parts() -> None:
    p = plan("a" * 400, concat=Concat.PAYLOAD)
    assert p.parts == 3
    (segment,) = p.segments
    assert segment.in_payload
    assert segment.data == b"a" * 400


def test_escape_never_splits() -> None:
    text = "a" * 152 + "€" + "b" * 10  # the € escape would straddle the 153-septet boundary
    p = plan(text)
    assert p.segments[0].data[6:] == b"a" * 152
    assert p.segments[1].data[6:] == b"\x1b\x65" + b"b" * 10


def test_surrogate_pair_never_splits() -> None:
    text = "Ж" * 66 + "😀" + "Ж"
    p = plan(text)
    assert len(p.segments[0].data) == 6 + 66 * 2


def test_too_many_parts() -> None:
    with pytest.raises(MessageTooLong) as info:
        plan("a" * 2000, max_parts=10)
    assert info.value.parts == 14
    assert "limit is 10" in str(info.value)


def test_no_national_tables_when_the_operator_lacks_them() -> None:
    assert plan(TURKISH_TEXT, languages=()).encoding == UCS2


def test_locking_table_wins_for_many_euro_signs() -> None:
    assert plan("€" * 100).encoding == LOCKING  # 100 septets locked vs 200 escaped


ALPHABET = "abcçdefgğhıijklmnoöprsştuüvyzABCÇDEFGĞHIİJKLMNOÖPRSŞTUÜVYZ0123456789 .,!?%-€{}[]~\\|^ЖΩ😀\n"


@given(
    st.text(st.sampled_from(ALPHABET), min_size=1, max_size=700),
    st.sampled_from(list(Concat)),
    st.booleans(),
    st.integers(0, 0xFFFF),
)
def test_segments_reassemble_to_the_text(text: str, concat: Concat, packed: bool, reference: int) -> None:
    p = plan(text, concat=concat, packed=packed, reference=reference, max_parts=255)
    decoded = []
    for i, segment in enumerate(p.segments, start=1):
        if not segment.in_payload:
            assert len(segment.data) <= 140, "a part exceeds one SMS"
        user = decode_user_data(
            segment.data, data_coding=p.data_coding, esm_class=segment.esm_class, packed=packed
        )
        if len(p.segments) > 1 and concat in (Concat.UDH8, Concat.UDH16):
            assert user.concat == (
                (reference & (0xFF if concat is Concat.UDH8 else 0xFFFF)),
                len(p.segments),
                i,
            )
        decoded.append(user.text)
    if packed and text.endswith("\r"):
        return  # a final CR on an octet boundary is ambiguous in packed form
    assert "".join(decoded) == text
    if concat is not Concat.PAYLOAD:
        assert p.parts == len(p.segments)


@given(st.text(st.sampled_from(ALPHABET), min_size=1, max_size=700))
def test_choice_is_never_worse_than_any_encoding(text: str) -> None:
    chosen = plan(text, max_parts=255).parts
    for encoding in (GSM7, SHIFT, LOCKING, BOTH, UCS2):
        with contextlib.suppress(ValueError):  # not representable in that encoding
            assert chosen <= plan(text, encoding=encoding, max_parts=255).parts


@pytest.mark.parametrize("concat", list(Concat))
@pytest.mark.parametrize("filler", ["a", "ş", "Ж"])
@pytest.mark.parametrize("pair", ["€", "ş", "😀", "{"])
def test_every_boundary_offset(concat: Concat, filler: str, pair: str) -> None:
    # Slide a two-unit character (escape pair / surrogate pair) across every position near part boundaries.
    for k in range(60, 320):
        text = filler * k + pair * 3 + filler * 5
        p = plan(text, concat=concat)
        decoded = "".join(
            decode_user_data(s.data, data_coding=p.data_coding, esm_class=s.esm_class).text
            for s in p.segments
        )
        assert decoded == text, (k, p.encoding.name)


def test_language_without_locking_table_uses_its_single_shift() -> None:
    # Spanish (2) defines only a single-shift table: plan() must not ask for its locking table.
    message = plan("aç" * 100 + "ú", languages=(2,))
    assert message.encoding.name == "gsm7+spanish-shift"
