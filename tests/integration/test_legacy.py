"""Jobs an older Ulak left in Redis (the key layout before hash tags) are read as before after an upgrade."""

from __future__ import annotations

import json

import redis

from cluster.jobs import legacy
from cluster.jobs.store import JobStore
from ulak import keys


def _old_job(client: redis.Redis, job_id: str, state: str) -> None:
    """A job as the previous layout kept it: one record, one counters hash, rows and parts for all."""
    preview = {
        "operators": {"tcell": {"messages": 2, "parts": 2}, "voda": {"messages": 1, "parts": 1}},
        "rejected": {},
    }
    client.hset(
        f"ulak:job:{job_id}",
        mapping={
            "id": job_id,
            "state": state,
            "options": json.dumps({"text_column": "text"}),
            "preview": json.dumps(preview),
            "prepared": "1",
            "history": f"queued@1 {state}@2",
            "created_at": "1",
        },
    )
    client.zadd(keys.JOBS, {job_id: 1})
    counters = {"rows": 3, "accepted": 3, "parts_total": 3, "submitted": 3, "acked": 3, "parts_sent": 3}
    client.hset(f"ulak:job:{job_id}:counters", mapping={**counters, "parts_acked": 3, "delivered": 2})
    client.hset(f"ulak:job:{job_id}:rows", mapping={"1": "a", "2": "a", "3": "a"})
    client.hset(f"ulak:job:{job_id}:parts", mapping={"1:1": "a", "1:1:m": "ab|1700000000000"})


def test_legacy_jobs_move_into_the_tagged_layout_once(redis_client: redis.Redis) -> None:
    redis_client.flushall()
    _old_job(redis_client, "old1", "done")
    _old_job(redis_client, "old2", "sending")
    redis_client.set("ulak:webhooks:cursor", "1700000000000-5")

    assert sorted(legacy.migrate(redis_client)) == ["old1", "old2"]
    assert redis_client.get(keys.LAYOUT) == legacy.LAYOUT
    assert legacy.migrate(redis_client) == []  # nothing left to move
    _old_job(redis_client, "late", "done")  # as only an older Ulak still running could write it
    assert legacy.migrate(redis_client) == []  # the marker says done: not one job is looked at
    redis_client.delete(keys.LAYOUT)
    assert legacy.migrate(redis_client) == ["late"]  # the marker, and only it, skipped the scan

    store = JobStore(redis_client)
    done = store.view("old1")
    assert done["state"] == "done"
    assert (done["counts"]["accepted"], done["counts"]["acked"], done["receipts"]["delivered"]) == (3, 3, 2)
    reader = store.reader("old1")
    assert reader.fields("parts", ["voda", "tcell"], [["1:1:m"], ["1:1"]]) == [[b"ab|1700000000000"], [b"a"]]
    assert not redis_client.exists("ulak:job:old1", "ulak:job:old1:rows", "ulak:job:old1:counters")

    stopped = store.view("old2")  # it was running: resuming it could send a part twice
    assert stopped["state"] == "failed" and stopped["error"]["code"] == "interrupted_by_upgrade"
    assert redis_client.hget(keys.WEBHOOK_CURSOR, keys.WEBHOOK_STATES) == b"1700000000000-5"

    store.delete("old1", ledgers=["tcell", "voda"])
    assert not [k for k in redis_client.scan_iter() if b"old1" in k]
