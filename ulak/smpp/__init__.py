"""Sans-IO SMPP 3.4: PDUs, codec, session state machine and delivery-receipt parsing.

Nothing in this package performs I/O: it turns bytes into events and PDUs into bytes
(see ``tests/unit/test_no_io_imports.py``).
"""

from ulak.smpp.constants import CommandId, CommandStatus, MessageState, Tag
from ulak.smpp.errors import LocalProtocolError, PduError, SmppError
from ulak.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)

__all__ = [
    "BindReceiver",
    "BindReceiverResp",
    "BindTransceiver",
    "BindTransceiverResp",
    "BindTransmitter",
    "BindTransmitterResp",
    "CommandId",
    "CommandStatus",
    "DeliverSm",
    "DeliverSmResp",
    "EnquireLink",
    "EnquireLinkResp",
    "GenericNack",
    "LocalProtocolError",
    "MessageState",
    "Pdu",
    "PduError",
    "SmppError",
    "SubmitSm",
    "SubmitSmResp",
    "Tag",
    "Unbind",
    "UnbindResp",
]
