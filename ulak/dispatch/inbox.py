"""A bind's inbox: the receipts it was sent, written to Redis before the SMSC is answered.

An SMSC sends a receipt once. Its ``deliver_sm_resp`` tells it the ESME has the receipt, and it
forgets it. A bind that answered first and wrote later lost every receipt between the two when its
process died (issue 14, item 9). So a receipt goes, in this order:

1. read from the socket and held, with its answer, in :class:`Inbound`;
2. appended to the bind's inbox (a Redis list: one ``RPUSH`` for everything read since the last
   append, so one round trip per read under load, fewer when reads come faster than Redis answers);
3. answered, if the connection it came on is still the bind's. A receipt whose connection was lost
   before step 2 is dropped, never answered: the SMSC sends it again on the next connection. One
   lost during step 2 is in the inbox and unanswered: the SMSC sends it again, and the ledger counts
   the second copy in ``receipts_duplicate``;
4. handed to the ledger flush, which applies it and drops it from the inbox's head in the same
   script call (``ledger.lua``, its ``inbox`` argument), so no crash leaves it applied and still
   in the inbox, or dropped and not applied.

The invariant that makes step 4 a count: the inbox holds, in order, exactly the receipts the bind
appended and the ledger has not applied, and the flush applies them in the order they were
appended. A bind that starts reads what its predecessor of the same name left (``unsettled``) and
applies it first. Ray's actor names make that predecessor dead: two live actors never share a name.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

from ulak.dispatch.ledger import ReceiptSeen


class InboxStore(Protocol):
    """Where a bind's receipts are durable before it answers them."""

    key: str

    async def append(self, receipts: list[ReceiptSeen]) -> None: ...

    async def unsettled(self) -> list[ReceiptSeen]: ...


# Fields of an entry, joined: no SMSC identity, message id, status or error code holds it.
_SEP = "\x1f"


def pack_receipt(receipt: ReceiptSeen) -> bytes:
    """One inbox entry: a plain join (a MessagePack call per receipt cost the bind more), as bytes
    (redis-py passes bytes through; a str it encodes again, per argument)."""
    return _SEP.join((receipt.smsc, receipt.message_id, receipt.status, receipt.error)).encode()


def unpack_receipt(data: bytes) -> ReceiptSeen:
    smsc, message_id, status, error = data.decode().split(_SEP)
    return ReceiptSeen(smsc, message_id, status, error)


class RedisInbox:
    """The inbox as a Redis list (``keys.bind_inbox``); the ledger script trims it."""

    def __init__(self, client: Any, key: str) -> None:
        self._client = client
        self.key = key

    async def append(self, receipts: list[ReceiptSeen]) -> None:
        if receipts:
            await self._client.rpush(self.key, *[pack_receipt(r) for r in receipts])

    async def unsettled(self) -> list[ReceiptSeen]:
        return [unpack_receipt(e) for e in await self._client.lrange(self.key, 0, -1)]


_T = TypeVar("_T")


class Inbound(Generic[_T]):
    """Receipts (or replies: ``ulak.replies``) read and not yet durable, with their answers, all
    from one connection: one that arrives on a newer connection drops what the older one left (gone
    with it, never answered: its SMSC sends them again)."""

    __slots__ = ("answers", "connection", "receipts")

    def __init__(self) -> None:
        self.connection: object = None
        self.receipts: list[_T] = []
        self.answers: list[bytes] = []

    def add(self, receipt: _T, connection: object, answer: bytes) -> None:
        if connection is not self.connection:
            self.connection, self.receipts, self.answers = connection, [], []
        self.receipts.append(receipt)
        self.answers.append(answer)

    def take(self, connection: object) -> tuple[list[_T], bytes]:
        """Everything held, and their answers, if it came on *connection* (else nothing: what came
        on an earlier connection is dropped), leaving this empty."""
        receipts, answers = self.receipts, self.answers
        self.receipts, self.answers = [], []
        if connection is not self.connection:
            return [], b""
        return receipts, b"".join(answers)

    def __len__(self) -> int:
        return len(self.receipts)
