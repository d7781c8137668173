"""Engagement folded into the send-time model (``ulak.sendtime``): each person's click on a tracked
link, each reported conversion and each reply, at the hour of the day it happened in the number's
own zone.

A refresh reads, for every job, the click and conversion events after the last one it folded
(``keys.SENDTIME_CURSORS``; the job's events stream and the files they were moved to,
``cluster.engagement.events``), finds each event's number in the job's rows file, and folds them;
then the replies stream the same way. The API refreshes the model every hour, and the runner of an
optimised job just before it plans, so a job plans with what was learned up to its start. One
process folds at a time (``keys.SENDTIME_LOCK``); a refresh that finds the lock held waits for it
(the planner) or leaves the round to the holder (the API).

A cursor moves after its events are folded: a process killed in between folds those events again
next time (counted twice, in a model of habits that halves its counts as it goes, not a figure
anyone reads). Bots' clicks (previews, scanners) are not engagement and are not folded.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import redis
import structlog

from cluster.engagement import events
from cluster.jobs.store import JobStore
from ingest.collect import ACCEPTED_FILE
from ulak import keys, sendtime
from ulak.jobfiles import JobDir, JobFiles
from ulak.replies.keywords import Kind
from ulak.settings import Settings
from ulak.zones import Zones

log = structlog.get_logger("ulak.sendtimes")

LOCK_MS = 600_000
NEWS_BATCH = 300  # jobs looked at in one pipeline
REPLIES = "replies"  # the cursor of the replies stream
ENGAGED = {Kind.REPLY.value, Kind.ANSWER.value, Kind.KEYWORD.value}  # replies that are engagement
_STREAMS = {"clicks": keys.job_click_events, "conversions": keys.job_conversion_events}


class Folder:
    """Folds what engagement happened since the last refresh into the model (see the module
    docstring)."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.store = JobStore(client)
        self.files = JobFiles.configured(settings.jobs)
        self.zones = Zones(main=settings.jobs.recipient_zones, unknown=settings.jobs.unknown_zone)
        self.digits = settings.send_times.prefix_digits

    def refresh(self, *, wait: float = 0.0) -> dict[str, int] | None:
        """Fold every job's new engagement and the new replies; returns how many of each were
        folded, or None when another process holds the lock for longer than *wait* seconds."""
        token = secrets.token_hex(8)
        deadline = time.monotonic() + wait
        while not self.client.set(keys.SENDTIME_LOCK, token, nx=True, px=LOCK_MS):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.2)
        try:
            folded = {"clicks": 0, "conversions": 0, REPLIES: 0}
            for job_id, directory, new in self._news(self.store.ids(limit=1_000_000)):
                for kind, n in self._job(job_id, directory, new).items():
                    folded[kind] += n
            folded[REPLIES] = self._replies()
            pipe = self.client.pipeline(transaction=False)
            pipe.hincrby(keys.SENDTIME_STATS, "events", sum(folded.values()))
            pipe.hset(keys.SENDTIME_STATS, "refreshed", f"{time.time():.3f}")
            pipe.execute()
            if any(folded.values()):
                log.info("sendtimes.folded", **folded)
            return folded
        finally:
            if self.client.get(keys.SENDTIME_LOCK) == token.encode():
                self.client.delete(keys.SENDTIME_LOCK)

    def _news(self, job_ids: list[str]) -> Iterator[tuple[str, str, dict[str, str | None]]]:
        """The jobs with events not folded yet: (job, its folder, kind -> the last id folded),
        found by each stream's last id against its cursor, in one pipeline a few hundred jobs."""
        for at in range(0, len(job_ids), NEWS_BATCH):
            chunk = job_ids[at : at + NEWS_BATCH]
            pipe = self.client.pipeline(transaction=False)
            for job_id in chunk:
                pipe.hget(keys.job(job_id), "dir")
                pipe.hmget(keys.SENDTIME_CURSORS, [f"{job_id}:{kind}" for kind in _STREAMS])
                for key_of in _STREAMS.values():
                    pipe.xinfo_stream(key_of(job_id))
            answers = pipe.execute(raise_on_error=False)  # no stream yet: an error, nothing new
            width = 2 + len(_STREAMS)
            for i, job_id in enumerate(chunk):
                directory, cursors, *infos = answers[i * width : (i + 1) * width]
                if not isinstance(directory, bytes):
                    continue
                new = {
                    kind: cursor.decode() if cursor else None
                    for kind, cursor, info in zip(_STREAMS, cursors, infos, strict=True)
                    if _newer(_last_id(info), cursor)
                }
                if new:
                    yield job_id, directory.decode(), new

    def _job(self, job_id: str, directory: str, new: dict[str, str | None]) -> dict[str, int]:
        """Fold one job's new clicks and conversions (*new*: kind -> the last id folded)."""
        folder = self.files.dir(directory)
        numbers = _Numbers(folder)
        folded: dict[str, int] = {}
        for kind, after in new.items():
            try:
                batches = list(events.read(self.client, job_id, folder, kind, after=after))
            except (events.EventsBusy, FileNotFoundError, OSError):
                continue  # being moved, or the job is being deleted: the next round
            table = pa.Table.from_batches(batches) if batches else None
            if table is None or not table.num_rows:
                continue
            last = table.column("id")[-1].as_py()
            if kind == "clicks":
                table = table.filter(pa.compute.invert(table.column("bot")))
            found = numbers.of(table.column("row").to_numpy())
            keep = found != ""
            at = table.column("at").cast(pa.int64()).to_numpy()[keep] / 1000
            folded[kind] = self._fold(found[keep].tolist(), at.tolist())
            self.client.hset(keys.SENDTIME_CURSORS, f"{job_id}:{kind}", last)
        return folded

    def _replies(self) -> int:
        """Fold the replies received since the last refresh (those that are engagement)."""
        cursor: Any = self.client.hget(keys.SENDTIME_CURSORS, REPLIES)
        start = events.next_id(cursor.decode()) if cursor else "-"
        folded = 0
        while True:
            entries: Any = self.client.xrange(keys.MO_MESSAGES, start, "+", count=10_000)
            if not entries:
                return folded
            numbers: list[str] = []
            times: list[float] = []
            for _, fields in entries:
                number = fields.get(b"number", b"").decode()
                if fields.get(b"kind", b"").decode() in ENGAGED and number.isdigit():
                    numbers.append(number)
                    times.append(float(fields.get(b"received", b"0")))
            folded += self._fold(numbers, times)
            last = entries[-1][0].decode()
            self.client.hset(keys.SENDTIME_CURSORS, REPLIES, last)
            start = events.next_id(last)

    def _fold(self, numbers: list[str], times: list[float]) -> int:
        hours = [self._hour(n, t) for n, t in zip(numbers, times, strict=True)]
        return sendtime.fold(self.client, numbers, hours, prefix_digits=self.digits)

    def _hour(self, number: str, at: float) -> int:
        zone: ZoneInfo = self.zones.of(number)
        return datetime.fromtimestamp(at, zone).hour

    def forget(self, job_ids: Iterable[str]) -> None:
        """Drop deleted jobs' cursors."""
        fields = [f"{job_id}:{kind}" for job_id in job_ids for kind in _STREAMS]
        if fields:
            self.client.hdel(keys.SENDTIME_CURSORS, *fields)


class _Numbers:
    """A job's row -> number, read from its rows file once, when first asked."""

    def __init__(self, directory: JobDir) -> None:
        self.directory = directory
        self._rows: np.ndarray[Any, Any] | None = None
        self._numbers: np.ndarray[Any, Any] | None = None

    def of(self, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The number of each row ("" for a row not in the rows file: a held-out recipient's)."""
        if self._rows is None:
            table = pq.read_table(self.directory.open_input(ACCEPTED_FILE), columns=["row", "msisdn"])
            order = np.argsort(table.column("row").to_numpy(), kind="stable")
            self._rows = table.column("row").to_numpy()[order]
            self._numbers = np.asarray(table.column("msisdn").to_pylist(), dtype=object)[order]
        assert self._numbers is not None
        at = np.searchsorted(self._rows, rows)
        at = np.clip(at, 0, max(len(self._rows) - 1, 0))
        if not len(self._rows):
            return np.full(len(rows), "", dtype=object)
        hit = self._rows[at] == rows
        return np.where(hit, self._numbers[at], "")


def _last_id(info: Any) -> str | None:
    """The id of the last entry ever added to a stream (moved to files or not), from its XINFO
    STREAM; None: no such stream (an error in its place)."""
    if not isinstance(info, dict):
        return None
    last = info.get("last-generated-id")
    return last.decode() if isinstance(last, bytes) else last


def _newer(last: str | None, cursor: bytes | None) -> bool:
    if last is None or last == "0-0":
        return False
    return cursor is None or events.id_order(last) > events.id_order(cursor.decode())
