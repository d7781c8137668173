"""A job's event streams (every link fetch, every reported conversion) moved from Redis to Parquet.

The redirect service and the conversions API append to a stream per job in Redis
(``keys.job_click_events``, ``keys.job_conversion_events``): cheap to write, and the summary's
figures never read them (counters and per-row hashes hold those). Kept in Redis they would cost
memory for as long as the job is kept: a campaign's 100k clicks are ~15 MB there, ~2 MB as Parquet.
So the API moves what is older than an hour into the job's folder (``events/<kind>-<first id>.parquet``)
and trims the stream behind it, every hour.

A move is safe to repeat: a file is named by the first entry it holds and written whole before the
stream is trimmed, so a move cut short is done again into the same file, and a lock in the job's
slot keeps two API processes from moving the same entries at once. Reading (:func:`read`) gives the
files in id order, then what is still in the stream: each entry once.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import redis

from ulak import keys
from ulak.jobfiles import JobDir
from ulak.money import from_micros

FOLDER = "events"
LOCK_MS = 600_000

CLICKS = pa.schema(
    [
        ("id", pa.string()),  # the stream entry's id: unique, in order
        ("at", pa.timestamp("ms", tz="UTC")),
        ("row", pa.int64()),
        ("bot", pa.bool_()),
        ("user_agent", pa.string()),
        ("address_hash", pa.string()),  # salted: no address can be read back (ulak.links)
    ]
)
CONVERSIONS = pa.schema(
    [
        ("id", pa.string()),
        ("event_id", pa.string()),
        ("row", pa.int64()),
        ("at", pa.timestamp("ms", tz="UTC")),  # when it happened, as reported
        ("by", pa.string()),  # click, delivery; empty: not attributed (or a held-out recipient's)
        ("value", pa.decimal128(24, 6)),
    ]
)


def _clicks(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> pa.Table:
    def col(name: bytes) -> list[str]:
        return [e[1].get(name, b"").decode() for e in entries]

    return pa.table(
        [
            pa.array([e[0].decode() for e in entries]),
            pa.array([int(t) for t in col(b"t")], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            pa.array([int(r) for r in col(b"row")], pa.int64()),
            pa.array([b == "1" for b in col(b"bot")]),
            pa.array(col(b"ua")),
            pa.array(col(b"ip")),
        ],
        schema=CLICKS,
    )


def _conversions(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> pa.Table:
    def col(name: bytes) -> list[str]:
        return [e[1].get(name, b"").decode() for e in entries]

    values: list[Decimal] = [from_micros(int(v or 0)) for v in col(b"value")]
    return pa.table(
        [
            pa.array([e[0].decode() for e in entries]),
            pa.array(col(b"event")),
            pa.array([int(r) for r in col(b"row")], pa.int64()),
            pa.array([int(t) for t in col(b"at")], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            pa.array(col(b"by")),
            pa.array(values, pa.decimal128(24, 6)),
        ],
        schema=CONVERSIONS,
    )


KINDS: dict[str, tuple[Callable[[str], str], Callable[[Any], pa.Table], pa.Schema]] = {
    "clicks": (keys.job_click_events, _clicks, CLICKS),
    "conversions": (keys.job_conversion_events, _conversions, CONVERSIONS),
}


def next_id(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq) + 1}"


def compact(
    client: redis.Redis,
    job_id: str,
    directory: JobDir,
    *,
    older_than: float = 3600.0,
    chunk: int = 100_000,
    now: Callable[[], float] = time.time,
) -> dict[str, int]:
    """Move the job's stream entries older than *older_than* seconds into Parquet files in its
    folder and trim them from Redis; returns how many of each kind moved (nothing when another
    process holds the job's lock)."""
    token = secrets.token_hex(8)
    lock = keys.job_events_lock(job_id)
    if not client.set(lock, token, nx=True, px=LOCK_MS):
        return {}
    moved = dict.fromkeys(KINDS, 0)
    try:
        directory.make_folder(FOLDER)
        cutoff = int((now() - older_than) * 1000)
        for kind, (key_of, table_of, _) in KINDS.items():
            key = key_of(job_id)
            while True:
                entries: Any = client.xrange(key, "-", str(cutoff - 1), count=chunk)
                if not entries:
                    break
                first, last = entries[0][0].decode(), entries[-1][0].decode()
                name = f"{FOLDER}/{kind}-{first.replace('-', '_')}.parquet"
                with directory.open_output(name + ".tmp") as sink:
                    pq.write_table(table_of(entries), sink, compression="zstd")
                directory.move(name + ".tmp", name)
                client.xtrim(key, minid=next_id(last), approximate=False)
                moved[kind] += len(entries)
    finally:
        if client.get(lock) == token.encode():
            client.delete(lock)
    return moved


class EventsBusy(RuntimeError):
    """The job's events are being moved right now (the API answers 503: try again shortly)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def read(
    client: redis.Redis,
    job_id: str,
    directory: JobDir,
    kind: str,
    *,
    wait: float = 30.0,
    after: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Every entry of the job's *kind* stream in order (only those after the id *after*, if given):
    the moved files, then what is in Redis. The job's lock is taken here (waiting up to *wait*
    seconds for a move under way; :class:`EventsBusy` after that) and held until the entries are
    read, so that none moves from the stream to a file already listed."""
    token, lock = secrets.token_hex(8), keys.job_events_lock(job_id)
    deadline = time.monotonic() + wait
    while not client.set(lock, token, nx=True, px=LOCK_MS):
        if time.monotonic() > deadline:
            raise EventsBusy(f"job {job_id}'s events are being moved to its folder; try again in a minute")
        time.sleep(0.2)
    return _entries(client, job_id, directory, kind, token, after=after)


def _entries(
    client: redis.Redis, job_id: str, directory: JobDir, kind: str, token: str, *, after: str | None
) -> Iterator[pa.RecordBatch]:
    key_of, table_of, schema = KINDS[kind]
    lock = keys.job_events_lock(job_id)
    seen = id_order(after) if after is not None else (-1, -1)
    try:
        files = [n for n in directory.names(FOLDER) if n.startswith(f"{kind}-") and n.endswith(".parquet")]
        start = next_id(after) if after is not None else "-"
        for name in sorted(
            files, key=lambda n: id_order(n[len(kind) + 1 : -len(".parquet")].replace("_", "-"))
        ):
            table = pq.read_table(directory.open_input(f"{FOLDER}/{name}"))
            if not table.num_rows or id_order(table.column("id")[-1].as_py()) <= seen:
                continue  # read before
            start = next_id(table.column("id")[-1].as_py())
            if id_order(table.column("id")[0].as_py()) <= seen:
                fresh = [id_order(i) > seen for i in table.column("id").to_pylist()]
                table = table.filter(pa.array(fresh))
            yield from table.cast(schema).to_batches()
        while True:
            entries: Any = client.xrange(key_of(job_id), start, "+", count=50_000)
            if not entries:
                return
            yield from table_of(entries).to_batches()
            start = next_id(entries[-1][0].decode())
    finally:
        if client.get(lock) == token.encode():
            client.delete(lock)


def id_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
