"""Protocol-layer errors. Every one can be rebuilt from its arguments alone, so Ray can unpickle it."""

from __future__ import annotations

from ulak.smpp.constants import CommandStatus, status_name


class SmppError(Exception):
    """Base class of every SMPP protocol error raised by Ulak."""


class PduError(SmppError):
    """Bytes from the peer that are not a valid PDU.

    ``status`` is the ``command_status`` SMPP prescribes for the reply; ``command_id`` and ``sequence``
    come from the header when it could be read (0 otherwise), so the caller can answer the right request.
    ``fatal`` means the byte stream cannot be resynchronised (a corrupt ``command_length``): the
    connection must be closed after the generic_nack.
    """

    def __init__(
        self,
        message: str,
        status: int = CommandStatus.ESME_RSYSERR,
        command_id: int = 0,
        sequence: int = 0,
        fatal: bool = False,
    ) -> None:
        super().__init__(message, status, command_id, sequence, fatal)
        self.message = message
        self.status = status
        self.command_id = command_id
        self.sequence = sequence
        self.fatal = fatal

    def __str__(self) -> str:
        return f"{self.message} ({status_name(self.status)})"


class LocalProtocolError(SmppError):
    """Our own code asked the session to do something SMPP forbids (a bug, or a race to handle)."""


class WindowFull(LocalProtocolError):
    """The send window is full: wait for responses before sending another request."""
