"""Reading user data back: the user data header and the text of one SMS part.

The simulator uses this to record what it received, and tests use it to check exact round trips.
"""

from __future__ import annotations

from dataclasses import dataclass

from ulak.smpp.constants import ESM_CLASS_UDHI
from ulak.text.alphabet import DEFAULT, alphabet, unpack_septets
from ulak.text.plan import (
    DATA_CODING_DEFAULT,
    DATA_CODING_UCS2,
    IEI_CONCAT_8,
    IEI_CONCAT_16,
    IEI_LOCKING_SHIFT,
    IEI_SINGLE_SHIFT,
)


@dataclass(frozen=True, slots=True)
class UserData:
    text: str
    udh: bytes = b""
    concat: tuple[int, int, int] | None = None  # (reference, total, sequence)
    locking: int = DEFAULT
    single_shift: int = DEFAULT


def parse_udh(udh: bytes) -> dict[int, bytes]:
    """Information elements of a UDH (including its length octet). Raises ValueError if malformed."""
    if not udh or udh[0] + 1 != len(udh):
        raise ValueError("UDH length octet does not match its size")
    ies: dict[int, bytes] = {}
    pos = 1
    while pos < len(udh):
        if pos + 2 > len(udh):
            raise ValueError("truncated UDH information element")
        iei, length = udh[pos], udh[pos + 1]
        value = udh[pos + 2 : pos + 2 + length]
        if len(value) != length:
            raise ValueError(f"UDH IE 0x{iei:02X} overruns the header")
        ies[iei] = value
        pos += 2 + length
    return ies


def decode_user_data(data: bytes, *, data_coding: int, esm_class: int = 0, packed: bool = False) -> UserData:
    """Split *data* (short_message or message_payload) into its UDH and decoded text.

    GSM text is decoded with the national tables its UDH announces. Raises ValueError on data that is
    not valid for its encoding.
    """
    udh = b""
    body = data
    concat = None
    locking = single = DEFAULT
    if esm_class & ESM_CLASS_UDHI and data:
        udh = data[: data[0] + 1]
        body = data[data[0] + 1 :]
        ies = parse_udh(udh)
        if IEI_CONCAT_8 in ies and len(ies[IEI_CONCAT_8]) == 3:
            ref, total, seq = ies[IEI_CONCAT_8]
            concat = (ref, total, seq)
        elif IEI_CONCAT_16 in ies and len(ies[IEI_CONCAT_16]) == 4:
            raw = ies[IEI_CONCAT_16]
            concat = (raw[0] << 8 | raw[1], raw[2], raw[3])
        if IEI_LOCKING_SHIFT in ies:
            locking = ies[IEI_LOCKING_SHIFT][0]
        if IEI_SINGLE_SHIFT in ies:
            single = ies[IEI_SINGLE_SHIFT][0]
    if data_coding == DATA_CODING_UCS2:
        text = body.decode("utf-16-be")
    elif data_coding == DATA_CODING_DEFAULT:
        if packed:
            fill = (7 - (len(udh) * 8) % 7) % 7 if udh else 0
            body = unpack_septets(body, fill)
        text = alphabet(locking, single).decode(body)
    else:
        text = body.decode("latin-1")
    return UserData(text, udh, concat, locking, single)
