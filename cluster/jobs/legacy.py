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
"""

from __future__ import annotations

import json

import redis
import structlog

from cluster.jobs.states import ACTIVE
from cluster.jobs.store import JobStore
from ulak import keys

log = structlog.get_logger("ulak.legacy")

LEDGER = "legacy"
_OLD_CURSOR = f"{keys.PREFIX}:webhooks:cursor"
LAYOUT = b"2"  # keys.LAYOUT once moved: a start after the first reads one key, not every job's


def _old(job_id: str, suffix: str = "") -> str:
    return f"{keys.PREFIX}:job:{job_id}{suffix}"


def migrate(client: redis.Redis) -> list[str]:
    """Move every legacy job into the current layout; returns their ids (none the second time: the
    layout marker says it is done, and nothing is looked at again)."""
    if client.get(keys.LAYOUT) == LAYOUT:
        return []
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
            (_old(job_id, ":rows"), keys.job_rows(job_id, LEDGER)),
            (_old(job_id, ":parts"), keys.job_parts(job_id, LEDGER)),
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
    client.set(keys.LAYOUT, LAYOUT)
    return moved
