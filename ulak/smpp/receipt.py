"""Delivery receipts: recognising them, reading their fields, and normalising message ids.

A receipt is a deliver_sm whose ``esm_class`` has bit 0x04 set. Its facts come from TLVs
(``receipted_message_id``, ``message_state``, ``network_error_code``) when the SMSC sends them, and
otherwise from the conventional text ``id:… sub:… dlvrd:… submit date:… done date:… stat:… err:…
text:…`` (SMPP 3.4 appendix B). TLVs win where both are present.

Message ids: SMSCs disagree with themselves. The id in ``submit_sm_resp`` may be hex while the receipt
text carries it in decimal, and case can differ (Kannel's ``msg-id-type`` exists for this). Each bind
therefore says how each side writes ids (:class:`MessageIdFormat`), and :func:`normalize_message_id`
maps both to one canonical key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from ulak.smpp.constants import ESM_CLASS_DELIVERY_RECEIPT, MessageState
from ulak.smpp.pdu import ShortMessage


class MessageIdFormat(Enum):
    """How a peer writes message ids on one side (resp or receipt)."""

    TEXT = "text"  # opaque: compare case-insensitively, leading zeros kept
    HEX = "hex"  # a hexadecimal number: canonical key is its decimal value
    DEC = "dec"  # a decimal number: canonical key is its decimal value
    AUTO = "auto"  # a number if it looks like one, else opaque (safe when both sides agree)


_HEX = re.compile(r"[0-9a-fA-F]+")


def normalize_message_id(raw: str, fmt: MessageIdFormat = MessageIdFormat.AUTO) -> str:
    """The canonical key for a message id written in *fmt* (see the module docstring)."""
    value = raw.strip().strip("\0")
    if fmt is MessageIdFormat.HEX:
        if _HEX.fullmatch(value):
            return str(int(value, 16))
    elif fmt is not MessageIdFormat.TEXT and value.isascii() and value.isdigit():  # DEC, AUTO: [0-9]+
        return str(int(value, 10))
    return value.lower()


class ReceiptStatus(Enum):
    """Final (or intermediate) states a receipt reports, as in the receipt text's ``stat:`` field."""

    DELIVRD = "DELIVRD"
    EXPIRED = "EXPIRED"
    DELETED = "DELETED"
    UNDELIV = "UNDELIV"
    ACCEPTD = "ACCEPTD"
    UNKNOWN = "UNKNOWN"
    REJECTD = "REJECTD"
    ENROUTE = "ENROUTE"

    @property
    def is_final(self) -> bool:
        return self not in (ReceiptStatus.ENROUTE, ReceiptStatus.ACCEPTD)


_STATE_TO_STATUS = {
    MessageState.ENROUTE: ReceiptStatus.ENROUTE,
    MessageState.DELIVERED: ReceiptStatus.DELIVRD,
    MessageState.EXPIRED: ReceiptStatus.EXPIRED,
    MessageState.DELETED: ReceiptStatus.DELETED,
    MessageState.UNDELIVERABLE: ReceiptStatus.UNDELIV,
    MessageState.ACCEPTED: ReceiptStatus.ACCEPTD,
    MessageState.UNKNOWN: ReceiptStatus.UNKNOWN,
    MessageState.REJECTED: ReceiptStatus.REJECTD,
}
STATUS_TO_STATE = {v: k for k, v in _STATE_TO_STATUS.items()}
_STATE_BY_INT = {int(k): v for k, v in _STATE_TO_STATUS.items()}

# Spellings seen in the wild for the stat field, mapped to the SMPP 3.4 appendix B names.
_STAT_ALIASES = {
    "DELIVERED": ReceiptStatus.DELIVRD,
    "UNDELIVERABLE": ReceiptStatus.UNDELIV,
    "ACCEPTED": ReceiptStatus.ACCEPTD,
    "REJECTED": ReceiptStatus.REJECTD,
    "DELETED": ReceiptStatus.DELETED,
    "EXPIRED": ReceiptStatus.EXPIRED,
    "ENROUTE": ReceiptStatus.ENROUTE,
    "UNKNOWN": ReceiptStatus.UNKNOWN,
}

_FIELD = re.compile(r"\b(id|sub|dlvrd|submit date|done date|stat|err|text)\s*:", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a delivery receipt says. ``message_id`` is as sent; normalise it before matching."""

    message_id: str
    status: ReceiptStatus
    error: str = ""
    submit_date: str = ""
    done_date: str = ""
    submitted: str = ""
    delivered: str = ""
    text: str = ""


def status_of_state(message_state: int) -> ReceiptStatus | None:
    """The status a ``message_state`` TLV value stands for (None: not an SMPP 3.4 state)."""
    return _STATE_BY_INT.get(message_state)


def is_receipt(pdu: ShortMessage) -> bool:
    return bool(pdu.esm_class & ESM_CLASS_DELIVERY_RECEIPT)


def parse_receipt_text(text: str) -> dict[str, str]:
    """Split ``id:… sub:… … text:…`` into a dict with lower-case keys; ``text`` runs to the end."""
    fields: dict[str, str] = {}
    matches = list(_FIELD.finditer(text))
    for i, match in enumerate(matches):
        key = match.group(1).lower()
        start = match.end()
        if key == "text":
            fields[key] = text[start:]
            break
        stop = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        fields.setdefault(key, text[start:stop].strip())
    return fields


def _status_from_text(stat: str) -> ReceiptStatus | None:
    key = stat.strip().upper()
    try:
        return ReceiptStatus(key)
    except ValueError:
        return _STAT_ALIASES.get(key)


def parse_receipt(pdu: ShortMessage, *, full: bool = True) -> Receipt | None:
    """The receipt carried by *pdu*, or None if it is not a receipt or names no message id.

    A receipt with an unreadable state is reported as ``UNKNOWN`` rather than dropped: the caller counts
    it against the message it names. With ``full=False`` the text is not parsed when the TLVs already
    give the id, the state and the error (the dispatch hot path needs nothing else).
    """
    if not is_receipt(pdu):
        return None
    if (
        not full
        and pdu.receipted_message_id
        and pdu.message_state in _STATE_BY_INT
        and pdu.network_error_code is not None
    ):
        return Receipt(
            message_id=pdu.receipted_message_id,
            status=_STATE_BY_INT[pdu.message_state],
            error=str(int.from_bytes(pdu.network_error_code[1:], "big")),
        )
    body = pdu.body.decode("latin-1")
    fields = parse_receipt_text(body)
    message_id = pdu.receipted_message_id or fields.get("id", "")
    if not message_id:
        return None
    status: ReceiptStatus | None = None
    if pdu.message_state is not None:
        try:
            status = _STATE_TO_STATUS[MessageState(pdu.message_state)]
        except ValueError:
            status = None
    if status is None and "stat" in fields:
        status = _status_from_text(fields["stat"])
    error = fields.get("err", "")
    if pdu.network_error_code is not None:
        error = str(int.from_bytes(pdu.network_error_code[1:], "big"))
    return Receipt(
        message_id=message_id,
        status=status or ReceiptStatus.UNKNOWN,
        error=error,
        submit_date=fields.get("submit date", ""),
        done_date=fields.get("done date", ""),
        submitted=fields.get("sub", ""),
        delivered=fields.get("dlvrd", ""),
        text=fields.get("text", ""),
    )


def format_receipt_text(
    *,
    message_id: str,
    status: ReceiptStatus,
    error: str = "000",
    submit_date: str,
    done_date: str,
    text: str = "",
) -> str:
    """The SMPP 3.4 appendix B receipt text (what our simulator sends)."""
    dlvrd = "001" if status is ReceiptStatus.DELIVRD else "000"
    return (
        f"id:{message_id} sub:001 dlvrd:{dlvrd} submit date:{submit_date} done date:{done_date} "
        f"stat:{status.value} err:{error} text:{text[:20]}"
    )
