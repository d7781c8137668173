"""Turn a planned text into the submit_sm PDUs of one message, as a bind's configuration wants them."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ulak.settings import BindConfig, OperatorConfig
from ulak.smpp.codec import preencode, short_message_ends, split_at_destination
from ulak.smpp.pdu import EncodedSubmitSm, SubmitSm, encoded_submit_sm
from ulak.text.alphabet import Alphabet
from ulak.text.plan import (
    GSM7,
    UCS2,
    Concat,
    Encoding,
    MessagePlan,
    MessageTooLong,
    OnePart,
    Segment,
    encoding_named,
    one_part,
    plan,
)


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


def plan_for(
    text: str, operator: OperatorConfig, *, reference: int, encoding: Encoding | None = None
) -> MessagePlan:
    """Plan *text* the way *operator* is configured (concatenation, national languages, packing, part
    limit); in *encoding* when given (else the one with the fewest parts)."""
    return plan(
        text,
        concat=operator.concatenation,
        languages=operator.languages,
        reference=reference,
        max_parts=operator.max_parts,
        packed=operator.packed_gsm,
        encoding=encoding,
    )


@functools.cache
def _layout(encoding: str, languages: tuple[int, ...], concat: Concat, packed: bool) -> OnePart | None:
    """The one-part layout of the encoding named *encoding*, if the operator's languages allow it."""
    known = encoding_named(encoding, languages)
    return None if known is None else one_part(known, concat=concat, packed=packed)


def _plain_number(destination: str) -> bool:
    """A destination the frames take as it is: digits, short enough (the codec checks, or refuses,
    any other)."""
    return destination.isascii() and destination.isdigit() and len(destination) < 21


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

    def plan(
        self, text: str, operator: OperatorConfig, *, row: int, encoding: str | None = None
    ) -> MessagePlan:
        """*encoding*: the name of the encoding ingest chose for the row (``Encoding.name``), if known:
        the text is then encoded once, in it, instead of trying each alphabet in turn (a personalised
        campaign plans every row anew, and the trying was most of the planning)."""
        key = (operator.name, text)
        message = self._plans.get(key)
        if message is None:
            if len(self._plans) >= self.limit:  # a campaign of all-different texts: keep memory bounded
                self._plans.clear()
            message = self._plans[key] = self._plan(text, operator, 0, encoding)
        if message.parts > 1:
            return plan_for(text, operator, reference=row & 0xFFFF, encoding=message.encoding)
        return message

    @staticmethod
    def _plan(text: str, operator: OperatorConfig, reference: int, encoding: str | None) -> MessagePlan:
        known = encoding_named(encoding, operator.languages) if encoding else None
        if known is not None:
            try:
                return plan_for(text, operator, reference=reference, encoding=known)
            except MessageTooLong:
                raise
            except ValueError:  # the operator's tables changed since ingest: choose again
                pass
        return plan_for(text, operator, reference=reference)


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
        # One-part messages by (bind identity, data_coding, esm_class): the bind (kept, so its id is
        # not reused) and the body around the number and the short message, which is all that
        # differs between personalised texts (None: the bind adds fields after the short message).
        self._frames: dict[tuple[int, int, int], tuple[BindConfig, tuple[bytes, bytes] | None]] = {}

    def parts(self, message: MessagePlan, *, destination: str, bind: BindConfig) -> list[EncodedSubmitSm]:
        if not _plain_number(destination):
            # what the codec checks (or rejects) for other destinations: let it
            return [preencode(p) for p in self._pdus(message, destination, bind)]
        if len(message.segments) == 1:
            one = self._one_part(message, destination, bind)
            if one is not None:
                return [one]
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

    def one_part(
        self,
        text: str,
        operator: OperatorConfig,
        *,
        encoding: str,
        destination: str,
        bind: BindConfig,
        septets: bytes | None = None,
    ) -> EncodedSubmitSm | None:
        """The part of a text that ingest found fits one part in *encoding* (its name), without
        planning the text: a personalised campaign's every row has a text of its own, and planning
        each (``PlanCache.plan``) cost the job's runner more than all else it does for a row. The
        same bytes as :meth:`parts` of the planned text (a test holds them to it); None where that
        is not sure (the encoding no longer allowed, the text not fitting, a payload TLV), and the
        caller plans."""
        layout = _layout(encoding, operator.languages, operator.concatenation, operator.packed_gsm)
        if layout is None or not _plain_number(destination):
            return None
        data = layout.data(text, septets=septets)
        if data is None or len(data) > 254:
            return None
        return self._body(bind, layout.encoding.data_coding, layout.esm_class, destination, data)

    @staticmethod
    def septets_of(
        texts: Sequence[str], operators: Sequence[OperatorConfig], encodings: Sequence[str | None]
    ) -> list[bytes | None]:
        """For :meth:`one_part`'s *septets*: each text's septets, worked out for a whole batch at once
        (``Alphabet.to_septets_many``), for the texts ingest found fit one part in a GSM encoding
        (*encodings*: its choice, None for a text it did not say of); None for the others (UCS-2,
        more parts, an encoding the operator no longer allows, a character the alphabet lacks)."""
        rows: dict[int, tuple[Alphabet, list[int]]] = {}  # by the alphabet's identity (one a pair)
        for i, (operator, encoding) in enumerate(zip(operators, encodings, strict=True)):
            if encoding is None:
                continue
            layout = _layout(encoding, operator.languages, operator.concatenation, operator.packed_gsm)
            gsm = None if layout is None else layout.alphabet
            if gsm is not None:
                rows.setdefault(id(gsm), (gsm, []))[1].append(i)
        out: list[bytes | None] = [None] * len(texts)
        for gsm, indices in rows.values():
            for i, septets in zip(indices, gsm.to_septets_many([texts[i] for i in indices]), strict=True):
                out[i] = septets
        return out

    def _one_part(self, message: MessagePlan, destination: str, bind: BindConfig) -> EncodedSubmitSm | None:
        """A one-part message's body from the frame of its kind: a campaign whose every text is
        personalised plans each row anew, and encoding a ``SubmitSm`` per row cost more than the
        planning did. None for what the frame does not cover (a payload or SAR TLV, a long body)."""
        segment = message.segments[0]
        data = segment.data
        if segment.in_payload or segment.sar is not None or len(data) > 254:
            return None
        return self._body(bind, message.data_coding, segment.esm_class, destination, data)

    def _body(
        self, bind: BindConfig, data_coding: int, esm_class: int, destination: str, data: bytes
    ) -> EncodedSubmitSm | None:
        """A one-part submit_sm from the frame of its kind (*data*: its short message), or None if
        the short message is not the body's last field (the bind adds TLVs)."""
        key = (id(bind), data_coding, esm_class)
        entry = self._frames.get(key)
        if entry is None:
            encoding = UCS2 if data_coding == UCS2.data_coding else GSM7  # only data_coding is read
            empty = MessagePlan(encoding, 1, 0, (Segment(b"", esm_class),))
            head, tail = split_at_destination(self._pdus(empty, "", bind)[0])
            ends = short_message_ends(head + b"\0" + tail, start=0)
            last = ends is not None and len(head) + 1 + len(tail) == ends[3] + 6  # sm_length last
            entry = self._frames[key] = (bind, (head, tail[:-1]) if last else None)
        frame = entry[1]
        if frame is None:
            return None
        head, middle = frame
        return encoded_submit_sm(
            head + destination.encode("ascii") + b"\0" + middle + bytes((len(data),)) + data
        )

    def _pdus(self, message: MessagePlan, destination: str, bind: BindConfig) -> list[SubmitSm]:
        return submit_pdus(
            message,
            destination=destination,
            bind=bind,
            registered_delivery=self.registered_delivery,
            source_addr=self.source_addr,
            validity_period=self.validity_period,
        )
