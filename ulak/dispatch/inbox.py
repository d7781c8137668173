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

from dataclasses import dataclass, field
from typing import Any, Protocol

import msgpack

from ulak.dispatch.ledger import ReceiptSeen


class InboxStore(Protocol):
    """Where a bind's receipts are durable before it answers them."""

    key: str

    async def append(self, receipts: list[ReceiptSeen]) -> None: ...

    async def unsettled(self) -> list[ReceiptSeen]: ...


def pack_receipt(receipt: ReceiptSeen) -> bytes:
    return msgpack.packb([receipt.smsc, receipt.message_id, receipt.status, receipt.error])  # type: ignore[no-any-return]


def unpack_receipt(data: bytes) -> ReceiptSeen:
    smsc, message_id, status, error = msgpack.unpackb(data)
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


@dataclass
class Inbound:
    """Receipts read and not yet durable, each with the connection it came on and its answer."""

    items: list[tuple[ReceiptSeen, object, bytes]] = field(default_factory=list)

    def add(self, receipt: ReceiptSeen, connection: object, answer: bytes) -> None:
        self.items.append((receipt, connection, answer))

    def take(self, connection: object) -> tuple[list[ReceiptSeen], bytes]:
        """Everything held so far that came on *connection*, and their answers, leaving this empty.
        What came on an earlier connection is dropped: its SMSC, never answered, sends it again."""
        items, self.items = self.items, []
        kept = [(receipt, answer) for receipt, conn, answer in items if conn is connection]
        return [r for r, _ in kept], b"".join(a for _, a in kept)

    def __len__(self) -> int:
        return len(self.items)
