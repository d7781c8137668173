"""Turn a planned text into the submit_sm PDUs of one message, as a bind's configuration wants them."""

from __future__ import annotations

from ulak.settings import BindConfig, OperatorConfig
from ulak.smpp.pdu import SubmitSm
from ulak.text.plan import MessagePlan, plan


def submit_pdus(
    message: MessagePlan, *, destination: str, bind: BindConfig, registered_delivery: int = 1
) -> list[SubmitSm]:
    """One SubmitSm per segment: UDH in short_message, SAR TLVs, or a single message_payload."""
    pdus = []
    for segment in message.segments:
        sar = segment.sar
        pdus.append(
            SubmitSm(
                source_addr_ton=bind.source_addr_ton,
                source_addr_npi=bind.source_addr_npi,
                source_addr=bind.source_addr,
                dest_addr_ton=bind.dest_addr_ton,
                dest_addr_npi=bind.dest_addr_npi,
                destination_addr=destination,
                esm_class=segment.esm_class,
                registered_delivery=registered_delivery,
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
    """Plan *text* the way *operator* is configured (concatenation, packing, part limit)."""
    return plan(
        text,
        concat=operator.concatenation,
        reference=reference,
        max_parts=operator.max_parts,
        packed=operator.packed_gsm,
    )
