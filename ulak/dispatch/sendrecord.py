"""What a bind may have sent: written before it sends, so that its process can die without a trace lost.

A bind writes its ledger events every 50 ms, after the fact. If its process dies, the parts it sent
since its last write, and those in flight, are nowhere: resending them could duplicate, forgetting
them would lose them. So before a bind puts parts on the wire it *stages* them: it appends them to
its send record in Redis (one write per two windows' worth, not per part), and only then may it
send them. Every quarter second, after a ledger write, it rewrites the record as what is still
unsettled: staged and not sent, in flight, or answered with the answer not written yet. (The record
may also hold parts settled since: harmless, the ledger ignores ``unknown`` for a part it has an
outcome for.)

When the process is found dead (``cluster.pool``), every part in its record whose outcome the
ledger does not hold becomes ``unknown``: it may have reached the SMSC. The staged parts it had not
sent yet are among them (fewer than three windows: a bind stages up to two more when it has under
one, and never more than its lease has tokens for), the price of not writing before every single
send: at-most-once means a part that might have gone is never sent again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgpack

from ulak.dispatch.ledger import PartUnknown

RECORD_TTL = 86_400  # a dead bind's record is read within seconds; a day covers a stopped cluster


class PartLike(Protocol):
    @property
    def job(self) -> str: ...
    @property
    def row(self) -> int: ...
    @property
    def part(self) -> int: ...
    @property
    def parts(self) -> int: ...


class SendRecord(Protocol):
    """Where a bind writes the parts it may send (``RedisSendRecord``; tests may keep it in memory)."""

    async def add(self, parts: Sequence[PartLike]) -> None: ...

    async def reset(self, parts: Sequence[PartLike]) -> None: ...


def pack(parts: Sequence[PartLike]) -> bytes:
    """*parts* as one MessagePack array, four values a part (job, row, part, parts)."""
    flat: list[object] = []
    for p in parts:
        flat += (p.job, p.row, p.part, p.parts)
    return msgpack.packb(flat)  # type: ignore[no-any-return]


def unpack(record: bytes | None) -> list[PartUnknown]:
    """The parts of a record (MessagePack arrays end to end), once each, as the ``unknown`` events a
    dead bind leaves."""
    seen: dict[tuple[str, int, int], PartUnknown] = {}
    unpacker = msgpack.Unpacker()
    unpacker.feed(record or b"")
    for flat in unpacker:
        for i in range(0, len(flat), 4):
            job, row, part, parts = flat[i : i + 4]
            seen.setdefault((job, row, part), PartUnknown(job, row, part, parts))
    return list(seen.values())


class RedisSendRecord:
    """A bind's send record in Redis (``redis.asyncio``), under ``ulak.keys.bind_sends``: one string,
    MessagePack arrays end to end, so that each write is a single command (APPEND, or SET when
    rewritten; a redis-py pipeline of two cost the bind several times more).

    With a *registry* (``keys.bind_records``), the record's key is in that set whenever the record
    may hold anything, so whoever finds the process dead finds its record by the bind's name."""

    def __init__(self, client: Any, key: str, *, registry: str | None = None) -> None:
        self._client = client
        self.key = key
        self.registry = registry
        self._registered = False

    async def add(self, parts: Sequence[PartLike]) -> None:
        if self.registry is not None and not self._registered:
            await self._client.sadd(self.registry, self.key)
            self._registered = True
        await self._client.append(self.key, pack(parts))  # keeps the TTL the last rewrite set

    async def reset(self, parts: Sequence[PartLike]) -> None:
        if parts:
            await self._client.set(self.key, pack(parts), ex=RECORD_TTL)
        else:
            await self._client.delete(self.key)
            if self._registered:
                await self._client.srem(self.registry, self.key)
                self._registered = False


def read_record(client: Any, key: str) -> list[PartUnknown]:
    """A dead bind's record (``redis.Redis``), as ``unknown`` events for the ledger."""
    return unpack(client.get(key))
