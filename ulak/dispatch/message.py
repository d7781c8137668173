"""Turn a planned text into the submit_sm PDUs of one message, as a bind's configuration wants them."""

from __future__ import annotations

from ulak.settings import BindConfig, OperatorConfig
from ulak.smpp.codec import preencode, split_at_destination
from ulak.smpp.pdu import EncodedSubmitSm, SubmitSm, encoded_submit_sm
from ulak.text.plan import MessagePlan, plan


def submit_pdus(
    message: MessagePlan,
    *,
    destination: str,
    bind: BindConfig,
    registered_delivery: int = 1,
    source_addr: str | None = None,
    validity_period: str = "",
) -> list[SubmitSm]:
    """One SubmitSm per segment: UDH in short_message, SAR TLVs, or a single message_payload.

    *source_addr* overrides the bind's sender (as an alphanumeric one); *validity_period* is SMPP's
    time format (see :func:`relative_validity`)."""
    pdus = []
    for segment in message.segments:
        sar = segment.sar
        pdus.append(
            SubmitSm(
                source_addr_ton=bind.source_addr_ton if source_addr is None else 5,
                source_addr_npi=bind.source_addr_npi if source_addr is None else 0,
                source_addr=bind.source_addr if source_addr is None else source_addr,
                dest_addr_ton=bind.dest_addr_ton,
                dest_addr_npi=bind.dest_addr_npi,
                destination_addr=destination,
                esm_class=segment.esm_class,
                registered_delivery=registered_delivery,
                validity_period=validity_period,
                data_coding=message.data_coding,
                short_message=b"" if segment.in_payload else segment.data,
                message_payload=segment.data if segment.in_payload else None,
                sar_msg_ref_num=sar[0] if sar else None,
                sar_total_segments=sar[1] if sar else None,
                sar_segment_seqnum=sar[2] if sar else None,
            )
        )
    return pdus


def plan_for(text: str, operator: OperatorConfig, *, reference: int) -> MessagePlan:
    """Plan *text* the way *operator* is configured (concatenation, national languages, packing, part
    limit)."""
    return plan(
        text,
        concat=operator.concatenation,
        languages=operator.languages,
        reference=reference,
        max_parts=operator.max_parts,
        packed=operator.packed_gsm,
    )


def relative_validity(minutes: int) -> str:
    """SMPP 3.4 relative time (section 7.1.1, ``YYMMDDhhmmss000R``) for *minutes* from submission."""
    days, rest = divmod(minutes, 24 * 60)
    return f"0000{days:02d}{rest // 60:02d}{rest % 60:02d}00000R"


class PlanCache:
    """Plans for a campaign's messages: each distinct (operator, text) is planned once, since campaigns
    repeat texts; a long message is planned again with its own concatenation reference (from its row),
    so that two long messages to one handset are never mixed up. Raises ``MessageTooLong`` as ``plan``."""

    def __init__(self, *, limit: int = 100_000) -> None:
        self.limit = limit
        self._plans: dict[tuple[str, str], MessagePlan] = {}

    def plan(self, text: str, operator: OperatorConfig, *, row: int) -> MessagePlan:
        key = (operator.name, text)
        message = self._plans.get(key)
        if message is None:
            if len(self._plans) >= self.limit:  # a campaign of all-different texts: keep memory bounded
                self._plans.clear()
            message = self._plans[key] = plan_for(text, operator, reference=0)
        if message.parts > 1:
            return plan_for(text, operator, reference=row & 0xFFFF)
        return message


class SubmitBodies:
    """The encoded submit_sm parts of a campaign's messages, one message after another.

    Each planned message is encoded once per bind configuration; for each row only the destination
    changes (``ulak.smpp.codec.split_at_destination``). Building and encoding a 25-field ``SubmitSm``
    per part was the largest cost of the runner per message. The result is the same bytes as
    ``preencode`` of each of :func:`submit_pdus`' PDUs (a unit test holds them to it)."""

    def __init__(
        self,
        *,
        registered_delivery: int = 1,
        source_addr: str | None = None,
        validity_period: str = "",
        limit: int = 100_000,
    ) -> None:
        self.registered_delivery = registered_delivery
        self.source_addr = source_addr
        self.validity_period = validity_period
        self.limit = limit
        # by (message, bind) identity; the entry holds both, so neither id is reused while cached
        self._cut: dict[tuple[int, int], tuple[MessagePlan, BindConfig, list[tuple[bytes, bytes]]]] = {}

    def parts(self, message: MessagePlan, *, destination: str, bind: BindConfig) -> list[EncodedSubmitSm]:
        if not (destination.isascii() and destination.isdigit() and len(destination) < 21):
            # what the codec checks (or rejects) for other destinations: let it
            return [preencode(p) for p in self._pdus(message, destination, bind)]
        key = (id(message), id(bind))
        entry = self._cut.get(key)
        if entry is None:
            if len(self._cut) >= self.limit:  # every text different: keep memory bounded
                self._cut.clear()
            entry = self._cut[key] = (
                message,
                bind,
                [split_at_destination(p) for p in self._pdus(message, "", bind)],
            )
        number = destination.encode("ascii") + b"\0"
        return [encoded_submit_sm(head + number + tail) for head, tail in entry[2]]

    def _pdus(self, message: MessagePlan, destination: str, bind: BindConfig) -> list[SubmitSm]:
        return submit_pdus(
            message,
            destination=destination,
            bind=bind,
            registered_delivery=self.registered_delivery,
            source_addr=self.source_addr,
            validity_period=self.validity_period,
        )
