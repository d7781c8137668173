"""Jobs a Redis kept from before the sharded key layout, moved into it once when the control plane starts.

Until the keys were hash-tagged for Redis Cluster (``ulak.keys``), a job's record was ``ulak:job:<id>``
and its ledger (rows, parts, counters) one set of hashes for all its operators. Such a Redis (the
embedded one keeps its data across upgrades) would otherwise list jobs whose records cannot be found.
For each such job:

* the record, counters and samples are renamed to the job's tagged keys, and its rows and parts to
  the ``legacy`` ledger's, which its record then names for every operator: views, reports and purges
  read it as before (its counters, ledger figures included, become the job's own: the same sums);
* a job that was still active is failed, saying why: its parts sent from now on would be written to
  its operators' ledgers while what it sent before is in the legacy one, so resuming it could send
  a part twice. Its report keeps what it did; a new job sends the rest.

Receipts that arrive later for messages of legacy jobs find no message id (the old map is not
moved) and are counted as held until they expire. Only a single Redis can hold the old layout
(clusters were not supported), so the renames never cross slots.

Then, from layout ``2`` to ``3``: every job's rows and parts hashes, one each a ledger, are split
into buckets of ten rows (``keys.ROWS_A_SPLIT_BUCKET``), and the message ids, a string key each, go into the
map's hashes (``keys.message_ids``), both of which Redis stores compactly. Every field is copied as
it is, so a job that was running resumes where it was, and a receipt still to come finds its
message; it happens when the control plane starts, before it starts any job's runner.

Then, from layout ``3`` to ``4``: each job's rows and parts hashes of a bucket of ten rows become
the one hash of its bucket of twenty (``keys.job_bucket``), each field renamed from the whole row
number to the row's place in its bucket (``keys.row_field``): ``825782:1:m`` becomes ``2:1:m`` in
bucket ``41289``. Values are copied as they are, so here too a running job resumes where it was; a
10M-row job's three million hashes take a minute or two, once.

Then, from layout ``4`` to ``5``: the message-id map's hashes (``ulak:{ledger}:msgs:<period>:<bucket>``,
fields ``smsc:id``, values ``job|row|part|parts|unix_ms[|a]``) become the hashes of their SMSC
(``keys.message_ids``: the id alone as the field, ``job|row|ms[|a]`` or ``job|row|ms|part|parts``
as the value, the job by its number in the ledger and the time since the period began), in the same
period, so a receipt still to come finds its message and measures its latency as before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
import structlog

from cluster.jobs.record import JobRecord
from cluster.jobs.states import ACTIVE
from cluster.jobs.store import JobStore
from ulak import keys
from ulak.dispatch.ledger import MESSAGE_TTL

log = structlog.get_logger("ulak.legacy")

LEDGER = "legacy"
_OLD_CURSOR = f"{keys.PREFIX}:webhooks:cursor"
LAYOUT = b"5"  # keys.LAYOUT once moved: a start after the first reads one key, not every job's
_TAGGED = b"2"  # the hash-tagged layout, before the rows and parts were split into buckets
_SPLIT_BUCKETS = b"3"  # rows and parts in buckets of ten rows, two hashes each, whole row numbers
_BUCKETS = b"4"  # a row in one hash a bucket of twenty; message ids under ``smsc:id`` fields
_SPLIT = 2_000  # fields read and written a round trip while splitting


def _old(job_id: str, suffix: str = "") -> str:
    return f"{keys.PREFIX}:job:{job_id}{suffix}"


def migrate(client: redis.Redis) -> list[str]:
    """Move every legacy job into the current layout; returns their ids (none the second time: the
    layout marker says it is done, and nothing is looked at again)."""
    layout = client.get(keys.LAYOUT)
    if layout == LAYOUT:
        return []
    moved = [] if layout in (_TAGGED, _SPLIT_BUCKETS, _BUCKETS) else _tag(client)
    if layout not in (_SPLIT_BUCKETS, _BUCKETS):
        _split(client)
        _gather_message_ids(client)
    if layout != _BUCKETS:
        _merge(client)
    _regroup_message_ids(client)
    client.set(keys.LAYOUT, LAYOUT)
    return moved


def _tag(client: redis.Redis) -> list[str]:
    """Layout 1 to 2: jobs under ``ulak:job:<id>`` moved to their tagged keys; their ids."""
    moved: list[str] = []
    store = JobStore(client)
    ids = [raw.decode() for raw in client.zrange(keys.JOBS, 0, -1)]  # type: ignore[union-attr]
    found: list[str] = []
    for start in range(0, len(ids), 1000):  # one round trip a thousand jobs
        chunk = ids[start : start + 1000]
        pipe = client.pipeline(transaction=False)
        for job_id in chunk:
            pipe.exists(_old(job_id))
        found += [job_id for job_id, old in zip(chunk, pipe.execute(), strict=True) if old]
    for job_id in found:
        if client.exists(keys.job(job_id)):
            continue
        for old, new in (
            (_old(job_id), keys.job(job_id)),
            (_old(job_id, ":counters"), keys.job_counters(job_id)),
            (_old(job_id, ":samples"), keys.job_samples(job_id)),
            (_old(job_id, ":rows"), keys.job_rows_flat(job_id, LEDGER)),
            (_old(job_id, ":parts"), keys.job_parts_flat(job_id, LEDGER)),
        ):
            if client.exists(old):
                client.rename(old, new)
        preview = client.hget(keys.job(job_id), "preview")
        operators = sorted(json.loads(preview)["operators"]) if isinstance(preview, bytes) else []
        if operators:
            client.hset(keys.job(job_id), "ledgers", ",".join(f"{op}:{LEDGER}" for op in operators))
        if store.state(job_id) in ACTIVE:
            store.fail(
                job_id,
                code="interrupted_by_upgrade",
                message="this job was running when Ulak moved to its sharded Redis layout; its report "
                "keeps what it sent; submit the rows not yet sent as a new job",
            )
        moved.append(job_id)
    old_cursor = client.get(_OLD_CURSOR)
    if isinstance(old_cursor, bytes):  # the old outbox is the state stream now: carry on from there
        client.hsetnx(keys.WEBHOOK_CURSOR, keys.WEBHOOK_STATES, old_cursor)
        client.delete(_OLD_CURSOR)
    if moved:
        log.warning("jobs.migrated", jobs=len(moved), ledger=LEDGER)
    return moved


def _jobs_and_ledgers(client: redis.Redis) -> Iterator[tuple[str, list[str]]]:
    """Each job Redis lists, with the ledgers its record names (sorted, once each)."""
    ids = [raw.decode() for raw in client.zrange(keys.JOBS, 0, -1)]  # type: ignore[union-attr]
    for job_id in ids:
        raw: dict[bytes, bytes] = client.hgetall(keys.job(job_id))  # type: ignore[assignment]
        yield job_id, sorted(set(JobRecord.from_redis(raw).ledgers.values()))


def _split(client: redis.Redis) -> None:
    """Layout 2 to 3: each job's rows and parts hash in each of its ledgers split into its buckets
    of ten rows (``keys.ROWS_A_SPLIT_BUCKET``), field for field; the whole hash is deleted once copied, so a
    start that stops halfway copies again what it had copied (the same values)."""
    split = 0
    for job_id, ledgers in _jobs_and_ledgers(client):
        for ledger in ledgers:
            for flat, bucketed in (
                (keys.job_rows_flat(job_id, ledger), keys.job_rows_split),
                (keys.job_parts_flat(job_id, ledger), keys.job_parts_split),
            ):
                if not client.exists(flat):
                    continue
                cursor = 0
                while True:
                    answer: Any = client.hscan(flat, cursor, count=_SPLIT)
                    cursor, fields = answer[0], dict[bytes, bytes](answer[1])
                    by_bucket: dict[int, dict[bytes, bytes]] = {}
                    for name, value in fields.items():
                        row = int(name.partition(b":")[0])
                        by_bucket.setdefault(row // keys.ROWS_A_SPLIT_BUCKET, {})[name] = value
                    pipe = client.pipeline(transaction=False)
                    for bucket, mapping in by_bucket.items():
                        pipe.hset(bucketed(job_id, ledger, bucket), mapping=mapping)  # type: ignore[arg-type]
                    pipe.execute()
                    if cursor == 0:
                        break
                client.delete(flat)
                split += 1
    if split:
        log.warning("ledgers.split", hashes=split)


def _merge(client: redis.Redis) -> None:
    """Layout 3 to 4: each job's rows and parts hashes of each ledger's buckets of ten rows copied
    into its buckets of twenty (``keys.job_bucket``), fields named by the row's place in its bucket;
    the old hashes are deleted once copied, so a start that stops halfway copies again what it had
    copied (the same values)."""
    merged = 0
    for job_id, ledgers in _jobs_and_ledgers(client):
        rows = int(client.hget(keys.job_counters(job_id), "rows") or 0)
        old = range(rows // keys.ROWS_A_SPLIT_BUCKET + 1)
        wanted = [(ledger, b) for ledger in ledgers for b in old]
        for start in range(0, len(wanted), _SPLIT // 4):
            chunk = wanted[start : start + _SPLIT // 4]
            pipe = client.pipeline(transaction=False)
            for ledger, bucket in chunk:
                pipe.hgetall(keys.job_rows_split(job_id, ledger, bucket))
                pipe.hgetall(keys.job_parts_split(job_id, ledger, bucket))
            found: list[dict[bytes, bytes]] = pipe.execute()
            into: dict[tuple[str, int], dict[bytes, bytes]] = {}
            for i, (ledger, _) in enumerate(chunk):
                for name, value in {**found[2 * i], **found[2 * i + 1]}.items():
                    row, colon, rest = name.partition(b":")
                    number = int(row)
                    short = keys.row_field(number).encode() + colon + rest
                    into.setdefault((ledger, keys.row_bucket(number)), {})[short] = value
            pipe = client.pipeline(transaction=False)  # one key a command: a cluster's slots differ
            for (ledger, bucket), mapping in into.items():
                pipe.hset(keys.job_bucket(job_id, ledger, bucket), mapping=mapping)  # type: ignore[arg-type]
            for i, (ledger, bucket) in enumerate(chunk):
                if found[2 * i] or found[2 * i + 1]:
                    pipe.delete(keys.job_rows_split(job_id, ledger, bucket))
                    pipe.delete(keys.job_parts_split(job_id, ledger, bucket))
                    merged += 1
            pipe.execute()
    if merged:
        log.warning("ledgers.merged", buckets=merged)


def _gather_message_ids(client: redis.Redis) -> None:
    """Layout 2 to 3: each message id's string key (``ulak:{ledger}:msg:<smsc>:<id>``) moved into the
    map's hash of this period and its bucket (``keys.message_ids``). Its TTL becomes the period's,
    which is at least as long."""
    period = keys.message_id_period(time.time(), MESSAGE_TTL)
    numbers = _JobNumbers(client)
    moved = _scanned(
        client, f"{keys.PREFIX}:{{*}}:msg:*", _SPLIT, lambda old: _move_ids(client, numbers, old, period)
    )
    if moved:
        log.warning("message_ids.gathered", ids=moved)


def _scanned(client: redis.Redis, pattern: str, size: int, move: Callable[[list[bytes]], int]) -> int:
    """*move* each batch of *size* keys matching *pattern* (it deletes them); the sum of its counts."""
    moved = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=_SPLIT):
        batch.append(key)
        if len(batch) >= size:
            moved += move(batch)
            batch = []
    return moved + move(batch)


def _move_ids(client: redis.Redis, numbers: _JobNumbers, old: list[bytes], period: int) -> int:
    """*old* message-id keys into the map's hashes of *period*; how many."""
    pipe = client.pipeline(transaction=False)  # one key a command: a cluster's slots differ
    for key in old:
        pipe.get(key)
    values: list[bytes | None] = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for key, value in zip(old, values, strict=True):
        ledger, _, field = key.decode()[len(keys.PREFIX) + 2 :].partition("}:msg:")
        if value is not None:  # else it expired meanwhile
            _put_message_id(pipe, numbers, ledger, period=period, field=field, value=value)
        pipe.delete(key)
    pipe.execute()
    return len(old)


def _regroup_message_ids(client: redis.Redis) -> None:
    """Layout 4 to 5: each hash of the message-id map (``ulak:{ledger}:msgs:<period>:<bucket>``)
    copied into its SMSCs' hashes of the same period (``keys.message_ids``), then deleted: a start
    that stops halfway copies again what it had copied (the same values)."""
    numbers = _JobNumbers(client)
    moved = _scanned(
        client, f"{keys.PREFIX}:{{*}}:msgs:*", _SPLIT // 10, lambda old: _regroup(client, numbers, old)
    )
    if moved:
        log.warning("message_ids.regrouped", ids=moved)


def _regroup(client: redis.Redis, numbers: _JobNumbers, old: list[bytes]) -> int:
    """*old* map hashes into the current layout's; how many ids."""
    pipe = client.pipeline(transaction=False)
    for key in old:
        pipe.hgetall(key)
    found: list[dict[bytes, bytes]] = pipe.execute()
    pipe = client.pipeline(transaction=False)  # one key a command: a cluster's slots differ
    ids = 0
    for key, fields in zip(old, found, strict=True):
        ledger, _, rest = key.decode()[len(keys.PREFIX) + 2 :].partition("}:msgs:")
        period = int(rest.partition(":")[0])
        for field, value in fields.items():
            _put_message_id(pipe, numbers, ledger, period=period, field=field.decode(), value=value)
            ids += 1
        pipe.delete(key)
    pipe.execute()
    return ids


class _JobNumbers:
    """The numbers a ledger's map names jobs by (``keys.message_id_jobs``), given as the ledger
    script gives them, each looked up once."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.known: dict[tuple[str, str], str] = {}

    def number(self, ledger: str, job: str) -> str:
        if (ledger, job) not in self.known:
            key = keys.message_id_jobs(ledger)
            found = self.client.hget(key, job)
            if isinstance(found, bytes):
                number = found.decode()
            else:
                number = str(self.client.hincrby(key, "#", 1))
                self.client.hset(key, mapping={job: number, f"#{number}": job})
            period = keys.message_id_period(time.time(), MESSAGE_TTL)  # as long as the newest ids
            self.client.expireat(key, (period + 2) * MESSAGE_TTL)
            self.known[(ledger, job)] = number
        return self.known[(ledger, job)]


def _put_message_id(
    pipe: Any, numbers: _JobNumbers, ledger: str, *, period: int, field: str, value: bytes
) -> None:
    """An id kept as ``smsc:id`` with ``job|row|part|parts[|unix_ms[|a]]`` (layouts 2 to 4), written
    as layout 5 keeps it in *period*'s map (``keys.message_ids``)."""
    # The SMSC is host:port/system_id; the id follows the first colon after the slash.
    at = field.find(":", field.find("/") + 1)
    if at < 0:
        log.warning("message_id.unreadable", ledger=ledger, field=field)
        return
    smsc, normalized = field[:at], field[at + 1 :]
    job, row, part, parts, *more = value.decode().split("|")
    since = int(more[0]) - period * MESSAGE_TTL * 1000 if more and more[0].isdigit() else -1
    owner = f"{numbers.number(ledger, job)}|{row}|{since if since >= 0 else ''}"
    if (part, parts) != ("1", "1"):
        owner += f"|{part}|{parts}"
    elif more[1:] == ["a"]:
        owner += "|a"
    ids = keys.message_ids(ledger, period, smsc, keys.message_id_bucket(normalized))
    pipe.hset(ids, normalized, owner)
    pipe.expireat(ids, (period + 2) * MESSAGE_TTL)
