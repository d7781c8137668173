"""NumberNormalizer must reach phonenumbers' verdict on every row."""

from __future__ import annotations

import random

import phonenumbers
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType

from ingest.numbers import INVALID, NOT_MOBILE, NumberNormalizer, UnknownRegion


def reference(value: str | None, region: str) -> tuple[str | None, str | None]:
    if value is None or any(c.isalpha() for c in value):
        # Deliberate difference: phonenumbers reads letters as a keypad ("vanity") number; a campaign
        # list with letters in the phone column is a data error, not a number to send to.
        return None, INVALID
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None, INVALID
    if not phonenumbers.is_valid_number(number):
        return None, INVALID
    if phonenumbers.number_type(number) not in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return None, NOT_MOBILE
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:], None


def check(values: list[str | None], region: str = "TR") -> None:
    result = NumberNormalizer(region).normalize(pa.array(values, type=pa.string()))
    got = list(zip(result.e164.to_pylist(), result.reason.to_pylist(), strict=True))
    for value, mine in zip(values, got, strict=True):
        assert mine == reference(value, region), value


def test_turkish_forms() -> None:
    check(
        [
            "+90 532 123 45 67",
            "+905321234567",
            "00905321234567",
            "0532 123 45 67",
            "0(532) 123-45-67",
            "5321234567",
            "905321234567",
            "0532.123.45.67",
            " 0532 123 45 67 ",
            "0212 123 45 67",  # Istanbul landline
            "0800 123 45 67",  # toll free
            "0532 123 45 6",  # too short
            "0532 123 45 678",  # too long
            "532-ABC-4567",
            "",
            None,
            "+49 1512 3456789",  # a German mobile
            "+44 7911 123456",  # a UK mobile
            "+1 202 555 0123",  # US: fixed line or mobile
            "+999 123456",  # no such country code
            "++905321234567",
        ]
    )


@pytest.mark.parametrize("region", ["DE", "GB", "US", "IT", "RU", "AZ"])
def test_other_default_regions(region: str) -> None:
    rnd = random.Random(region)
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    values = [national, e164, e164[1:], "00" + e164[1:], national.replace(" ", "")]
    digits = e164[1 + len(str(example.country_code)) :]
    values += [
        national[: -len(digits)] + "".join(rnd.choice("0123456789") for _ in digits) for _ in range(200)
    ]
    check(values, region)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.from_regex(r"\A(\+90|0090|0|90|)5[0-9]{9}\Z"),
            st.from_regex(r"\A(\+|00)[1-9][0-9]{6,13}\Z"),
            st.from_regex(r"\A[0-9 ()-]{0,16}\Z"),
        ),
        max_size=30,
    )
)
def test_agrees_with_phonenumbers(values: list[str]) -> None:
    check(list(values))


def test_unknown_region_is_a_clear_error() -> None:
    with pytest.raises(UnknownRegion, match="use an ISO 3166 code"):
        NumberNormalizer("XX")


def test_international_number_that_keeps_its_national_prefix() -> None:
    # People write "+90 (0532) …": phonenumbers drops the 0, and so do we.
    check(["+90 (0532) 111 22 33", "0090 0532 111 22 33", "+2520100000", "+44 (0) 7911 123456"])
