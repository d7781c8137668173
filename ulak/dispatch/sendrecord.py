"""What a bind may have sent: written before it sends, so that its process can die without a trace lost.

A bind writes its ledger events every 50 ms, after the fact. If its process dies, the parts it sent
since its last write, and those in flight, are nowhere: resending them could duplicate, forgetting
them would lose them. So before a bind puts parts on the wire it *stages* them: it appends them to
its send record in Redis (one write per two windows' worth, not per part), and only then may it
send them. Every quarter second, after a ledger write, it rewrites the record as what is still
unsettled: staged and not sent, in flight, or answered with the answer not written yet. (The record
may also hold parts settled since: harmless, the ledger ignores ``unknown`` for a part it has an
outcome for.)

When the process is found dead (``cluster.send.pool``), every part in its record whose outcome the
ledger does not hold becomes ``unknown``: it may have reached the SMSC. The staged parts it had not
sent yet are among them (fewer than three windows: a bind stages up to two more when it has under
one, and never more than its lease has tokens for), the price of not writing before every single
send: at-most-once means a part that might have gone is never sent again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgpack
import redis.exceptions

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


class RecordFenced(Exception):
    """Another process holds the bind's name now (its fence is of a later generation): this one must
    not stage, and so must not send, anything more."""


# Append to the record only while the fence (``keys.bind_fence``, same hash slot) is of no later
# generation than ours. A bind on a node cut off from Redis and Ray for longer than Ray waits is made
# again elsewhere, and its parts sent there; when the cut heals, the old process reaches Redis again
# before its raylet ends it, and without this check it staged and sent parts the new one had already
# sent (issue 30: 200 parts twice after a 20 s cut). Its next ledger write would have found it
# superseded, but only after those had gone.
_ADD_SCRIPT = """
if ARGV[2] ~= '0' then
  local f = redis.call('GET', KEYS[2])
  if f and (tonumber(string.match(f, '^(%d+)')) or 0) > tonumber(ARGV[2]) then
    return redis.error_reply('FENCED ' .. f)
  end
end
redis.call('APPEND', KEYS[1], ARGV[1])
return 1
"""


class RedisSendRecord:
    """A bind's send record in Redis (``redis.asyncio``), under ``ulak.keys.bind_sends``: one string,
    MessagePack arrays end to end, so that each write is a single command (one script call that
    appends, or SET when rewritten; a redis-py pipeline of two cost the bind several times more).

    With a *registry* (``keys.bind_records``), the record's key is in that set whenever the record
    may hold anything, so whoever finds the process dead finds its record by the bind's name. With a
    *fence* (``keys.bind_fence``) and the *generation* this process took it at (0: not yet), an
    append is refused (:class:`RecordFenced`) once a later process holds the name."""

    def __init__(
        self,
        client: Any,
        key: str,
        *,
        registry: str | None = None,
        fence: str | None = None,
        generation: Callable[[], int] = lambda: 0,
    ) -> None:
        self._client = client
        self.key = key
        self.registry = registry
        self.fence = fence
        self._generation = generation
        self._add = client.register_script(_ADD_SCRIPT)
        self._registered = False

    async def add(self, parts: Sequence[PartLike]) -> None:
        if self.registry is not None and not self._registered:
            await self._client.sadd(self.registry, self.key)
            self._registered = True
        packed = pack(parts)
        if self.fence is None:
            await self._client.append(self.key, packed)  # keeps the TTL the last rewrite set
            return
        try:
            await self._add(keys=[self.key, self.fence], args=[packed, str(self._generation())])
        except redis.exceptions.ResponseError as exc:
            if str(exc).startswith("FENCED"):
                held = str(exc)[len("FENCED ") :]
                raise RecordFenced(f"{self.fence} is at {held}: another process holds this bind") from None
            raise

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
