"""Opt-out lists: a global one, and one per brand; each entry says where it came from and when.

The list itself is a Redis set (``keys.optout_set``), what ingest checks every row against in one
vectorised pass (``ingest.prepare.optout_snapshot``); beside it a hash (``keys.optout_meta``) keeps
each entry's source (``mo``: a reply with an opt-out word, ``api``, ``import``), time and, for one
that came by reply, the words and the short code. Both change in one MULTI (one slot); then the
numbers go to the refusals stream, which stops them in every job already running (``ulak.refusals``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ulak import keys, refusals

SOURCES = ("mo", "api", "import")


@dataclass(frozen=True, slots=True)
class OptOut:
    number: str  # E.164 without '+'
    brand: str | None
    source: str
    at: float
    detail: str = ""  # for a reply: its text; for an import: the file's name

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "brand": self.brand,
            "source": self.source,
            "at": self.at,
            "detail": self.detail,
        }


class OptOuts:
    """The lists in Redis (a sync client: the API's thread pool, the replies processor, the CLI)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def add(
        self,
        numbers: Iterable[str],
        *,
        brand: str | None,
        source: str,
        detail: str = "",
        at: float | None = None,
    ) -> int:
        """Put *numbers* on the list; returns how many were not on it. An entry already there keeps
        its first source and time (the earliest opt-out is the one that counts)."""
        assert source in SOURCES, source
        when = time.time() if at is None else at
        added = 0
        for chunk in _chunks(list(numbers), 5000):
            meta = json.dumps({"source": source, "at": when, "detail": detail[:500]})
            pipe = self.client.pipeline(transaction=True)
            pipe.sadd(keys.optout_set(brand), *chunk)
            for number in chunk:
                pipe.hsetnx(keys.optout_meta(brand), number, meta)
            added += pipe.execute()[0]
            # Then told to every running job and bind: rows not sent yet stop (ulak.refusals). Every
            # number, not only the new ones: one already listed may be in a job that was never
            # told (an import made while the stream was trimmed), and telling again stops nothing
            # twice.
            refusals.publish(self.client, kind=refusals.OPTED_OUT, brand=brand, numbers=chunk, at=when)
        if brand is not None:
            self.client.sadd(keys.OPTOUT_BRANDS, brand)
        return added

    def remove(self, numbers: Iterable[str], *, brand: str | None) -> int:
        """Take *numbers* off the list (an opt-in); returns how many were on it."""
        removed = 0
        for chunk in _chunks(list(numbers), 5000):
            pipe = self.client.pipeline(transaction=True)
            pipe.srem(keys.optout_set(brand), *chunk)
            pipe.hdel(keys.optout_meta(brand), *chunk)
            removed += pipe.execute()[0]
            # Binds forget a refusal they remember for these (ulak.refusals.Recent): sent to again.
            refusals.publish(self.client, kind=refusals.OPTED_IN, brand=brand, numbers=chunk, at=time.time())
        return removed

    def get(self, number: str, *, brand: str | None) -> OptOut | None:
        pipe = self.client.pipeline(transaction=True)
        pipe.sismember(keys.optout_set(brand), number)
        pipe.hget(keys.optout_meta(brand), number)
        member, meta = pipe.execute()
        if not member:
            return None
        return _entry(number, brand, meta)

    def count(self, *, brand: str | None) -> int:
        return int(self.client.scard(keys.optout_set(brand)))

    def brands(self) -> list[str]:
        return sorted(b.decode() for b in self.client.smembers(keys.OPTOUT_BRANDS))

    def page(self, *, brand: str | None, cursor: int = 0, count: int = 1000) -> tuple[list[OptOut], int]:
        """One page of the list (SSCAN: an entry may come twice across pages while it changes, none
        is missed), and the cursor of the next (0: the last page)."""
        cursor, members = self.client.sscan(keys.optout_set(brand), cursor, count=count)
        numbers = sorted(m.decode() for m in members)
        metas = self.client.hmget(keys.optout_meta(brand), numbers) if numbers else []
        return [_entry(n, brand, m) for n, m in zip(numbers, metas, strict=True)], int(cursor)

    def all(self, *, brand: str | None) -> Iterator[OptOut]:
        cursor = 0
        while True:
            entries, cursor = self.page(brand=brand, cursor=cursor, count=5000)
            yield from entries
            if cursor == 0:
                return


def _entry(number: str, brand: str | None, meta: bytes | None) -> OptOut:
    data: dict[str, Any] = json.loads(meta) if meta else {}  # written by hand: no metadata
    source, at, detail = (
        str(data.get("source", "api")),
        float(data.get("at", 0.0)),
        str(data.get("detail", "")),
    )
    return OptOut(number, brand, source, at, detail)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
