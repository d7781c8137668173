"""The API's shared job reads (``api.views.ViewCache``): one read for concurrent asks, an answer kept
``max_age`` seconds, failures not kept, and a change made here seen at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.views import ViewCache
from tests.helpers import FakeClock


class Reads:
    """A reader that counts its reads and answers when released."""

    def __init__(self) -> None:
        self.count = 0
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(self, job_id: str) -> dict[str, Any]:
        self.count += 1
        n = self.count
        await self.release.wait()
        if self.fail:
            raise LookupError(f"no job {job_id}")
        return {"id": job_id, "read": n}


def test_concurrent_asks_share_a_read_and_fresh_answers_are_kept() -> None:
    async def run() -> None:
        clock = FakeClock()
        reads = Reads()
        views = ViewCache(reads, max_age=0.1, clock=clock)
        waiting = [asyncio.ensure_future(views.get("j1")) for _ in range(50)]
        other = asyncio.ensure_future(views.get("j2"))
        await asyncio.sleep(0)
        reads.release.set()
        answers = await asyncio.gather(*waiting)
        assert {a["read"] for a in answers} == {1} and reads.count == 2  # j1 once, j2 once
        assert (await other)["id"] == "j2"
        clock.advance(0.1)
        assert (await views.get("j1"))["read"] == 1  # 0.1 s old: still served
        clock.advance(0.01)
        assert (await views.get("j1"))["read"] == 3  # older: read again
        views.forget("j1")
        assert (await views.get("j1"))["read"] == 4  # a change made here: read at once

    asyncio.run(run())


def test_a_failed_read_fails_its_askers_and_is_not_kept() -> None:
    async def run() -> None:
        reads = Reads()
        reads.fail = True
        views = ViewCache(reads, max_age=10, clock=FakeClock())
        first = [asyncio.ensure_future(views.get("gone")) for _ in range(3)]
        await asyncio.sleep(0)
        reads.release.set()
        for ask in first:
            with pytest.raises(LookupError):
                await ask
        reads.fail = False
        assert (await views.get("gone"))["read"] == 2  # the next ask reads again

    asyncio.run(run())


def test_max_age_zero_reads_every_time() -> None:
    async def run() -> None:
        reads = Reads()
        reads.release.set()
        views = ViewCache(reads, max_age=0, clock=FakeClock())
        assert [(await views.get("j"))["read"] for _ in range(3)] == [1, 2, 3]

    asyncio.run(run())
