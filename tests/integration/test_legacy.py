"""Jobs an older Ulak left in Redis (the key layout before hash tags) are read as before after an upgrade."""

from __future__ import annotations

import json
import time
import zlib

import redis

from cluster.jobs import legacy
from cluster.jobs.store import JobStore
from tests.helpers import ledger_hash, message_id_key
from ulak import keys
from ulak.dispatch.ledger import MESSAGE_TTL, PartAcked, ReceiptSeen, RedisLedger


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


def _sending_job(client: redis.Redis, job_id: str, *, ledgers: str, rows: int) -> None:
    """A job of the tagged layout that was sending, its rows going to *ledgers* (``op:ledger,...``)."""
    client.hset(
        keys.job(job_id),
        mapping={
            "id": job_id,
            "state": "sending",
            "options": json.dumps({"text_column": "text"}),
            "history": "queued@1 sending@2",
            "ledgers": ledgers,
            "created_at": "1",
        },
    )
    client.zadd(keys.JOBS, {job_id: 1})
    client.hset(keys.job_counters(job_id), mapping={"rows": rows, "accepted": rows})


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
    assert reader.fields(["voda", "tcell"], [1, 1], [["1:1:m"], ["1:1"]]) == [
        [b"ab|1700000000000"],
        [b"a"],
    ]
    assert not redis_client.exists("ulak:job:old1", "ulak:job:old1:rows", "ulak:job:old1:counters")

    stopped = store.view("old2")  # it was running: resuming it could send a part twice
    assert stopped["state"] == "failed" and stopped["error"]["code"] == "interrupted_by_upgrade"
    assert redis_client.hget(keys.WEBHOOK_CURSOR, keys.WEBHOOK_STATES) == b"1700000000000-5"

    store.delete("old1", ledgers=["tcell", "voda"])
    assert not [k for k in redis_client.scan_iter() if b"old1" in k]


def test_a_tagged_layout_s_rows_and_parts_are_split_into_buckets_field_for_field(
    redis_client: redis.Redis,
) -> None:
    """Layout 2 kept one rows and one parts hash a job and ledger; 3 and 4 keep buckets of rows. Every
    field moves as it is, a running job keeps running, and forgetting the job leaves none of its
    buckets."""
    redis_client.flushall()
    redis_client.set(keys.LAYOUT, "2")
    store = JobStore(redis_client)
    rows = 125
    _sending_job(redis_client, "j2", ledgers="tcell:tcell,voda:acct", rows=rows)
    flat = {
        "tcell": (
            {b"%d" % r: b"a" for r in range(1, 64)},
            {b"%d:1:m" % r: b"id%d|1700000000000" % r for r in range(1, 64)},
        ),
        "acct": (
            {b"%d" % r: b"s" for r in range(64, rows + 1)},
            {b"%d:1" % r: b"s" for r in range(64, rows + 1)},
        ),
    }
    for ledger, (row_fields, part_fields) in flat.items():
        redis_client.hset(keys.job_rows_flat("j2", ledger), mapping=row_fields)  # type: ignore[arg-type]
        redis_client.hset(keys.job_parts_flat("j2", ledger), mapping=part_fields)  # type: ignore[arg-type]

    redis_client.set("ulak:{tcell}:msg:smsc1:42", "j2|9|1|1|1700000000000|a", ex=3600)  # row 9's id
    redis_client.set("ulak:{acct}:msg:smsc2:42", "j2|70|1|1|1700000000000", ex=3600)

    assert legacy.migrate(redis_client) == []  # no job needed moving out of the untagged layout
    assert redis_client.get(keys.LAYOUT) == legacy.LAYOUT
    for ledger, (row_fields, part_fields) in flat.items():
        assert not redis_client.exists(keys.job_rows_flat("j2", ledger), keys.job_parts_flat("j2", ledger))
        assert ledger_hash(redis_client, "rows", "j2", ledger) == row_fields
        assert ledger_hash(redis_client, "parts", "j2", ledger) == part_fields
        for name in row_fields:  # each row in its own bucket
            bucket = keys.row_bucket(int(name))
            digit = keys.row_field(int(name))
            assert redis_client.hget(keys.job_bucket("j2", ledger, bucket), digit) == row_fields[name]
    assert store.view("j2")["state"] == "sending"  # nothing about it changed but where its fields are
    reader = store.reader("j2")
    named = [[keys.row_field(r)] for r in (9, 10, 125)]
    assert reader.fields(["tcell", "voda", "voda"], [9, 10, 125], named) == [
        [b"a"],
        [None],  # row 10 went to tcell, not to voda's ledger
        [b"s"],
    ]

    assert not [k for k in redis_client.scan_iter() if b":msg:" in k]
    found = message_id_key(redis_client, "acct", "smsc2", "42")
    assert found is not None and found[1] == b"1|70|"  # acked before this period: its time unknown
    assert redis_client.hget(keys.message_id_jobs("acct"), "#1") == b"j2"
    RedisLedger(redis_client, ledger="tcell").apply([ReceiptSeen("smsc1", "42", "DELIVRD")])
    assert redis_client.hget(keys.job_op_counters("j2", "tcell"), "delivered") == b"1"  # its receipt found it

    store.delete("j2", ledgers=["tcell", "voda", "acct"])
    assert not [k for k in redis_client.scan_iter() if b"j2" in k]


def test_layout_3_s_rows_and_parts_hashes_become_one_hash_a_bucket(redis_client: redis.Redis) -> None:
    """Layout 3 kept a rows and a parts hash a bucket, fields named by the whole row number; 4 keeps
    a bucket of twenty rows, named by the row's place in it. Every value moves as it is: the report
    reads the same rows, a receipt still to come settles its row, and a start that stopped halfway
    copies again."""
    redis_client.flushall()
    redis_client.set(keys.LAYOUT, "3")
    store = JobStore(redis_client)
    _sending_job(redis_client, "j3", ledgers="tcell:tcell", rows=23)
    rows = {  # per row: its rows fields and its parts fields, as layout 3 named them
        7: ({"7": "a"}, {"7:1": "a", "7:1:m": "m7|1700000000000", "7:1:r": "DELIVRD|000|1700000001000"}),
        12: (
            {"12": "a", "12:a": "2", "12:d": "1"},
            {"12:1": "a", "12:1:m": "m12a|1700000000000", "12:1:r": "DELIVRD|000|1700000002000"}
            | {"12:2": "a", "12:2:m": "m12b|1700000000000"},
        ),
        13: ({"13": "x", "13:x": "opted_out|1700000000500"}, {"13:1": "x"}),
        20: ({"20": "f"}, {"20:1": "f", "20:1:e": "11"}),
    }
    for row, (row_fields, part_fields) in rows.items():
        bucket = row // keys.ROWS_A_SPLIT_BUCKET
        redis_client.hset(keys.job_rows_split("j3", "tcell", bucket), mapping=row_fields)  # type: ignore[arg-type]
        redis_client.hset(keys.job_parts_split("j3", "tcell", bucket), mapping=part_fields)  # type: ignore[arg-type]
    # A start that stopped halfway: row 12 was copied, its old hashes not yet deleted.
    twelve, at = keys.job_bucket("j3", "tcell", keys.row_bucket(12)), keys.row_field(12)
    redis_client.hset(twelve, mapping={at: "a", f"{at}:a": "2", f"{at}:d": "1"})

    assert legacy.migrate(redis_client) == []
    assert redis_client.get(keys.LAYOUT) == legacy.LAYOUT
    assert not [k for k in redis_client.scan_iter() if b":rows:" in k or b":parts:" in k]
    assert ledger_hash(redis_client, "rows", "j3", "tcell") == {
        k.encode(): v.encode() for row_fields, _ in rows.values() for k, v in row_fields.items()
    }
    assert ledger_hash(redis_client, "parts", "j3", "tcell") == {
        k.encode(): v.encode() for _, part_fields in rows.values() for k, v in part_fields.items()
    }
    seven = keys.row_field(7).encode()
    assert {
        k: v
        for k, v in redis_client.hgetall(keys.job_bucket("j3", "tcell", keys.row_bucket(7))).items()
        if k.partition(b":")[0] == seven
    } == {
        seven: b"a",
        seven + b":1": b"a",
        seven + b":1:m": b"m7|1700000000000",
        seven + b":1:r": b"DELIVRD|000|1700000001000",
    }
    assert store.view("j3")["state"] == "sending"
    # Row 12's second part's receipt, still to come, settles the row where it now is.
    ledger = RedisLedger(redis_client, ledger="tcell")
    ledger.apply([PartAcked("j3", 21, 1, 1, "smsc", "m21")])
    assert ledger_hash(redis_client, "rows", "j3", "tcell")[b"21"] == b"a"
    period = keys.message_id_period(time.time(), MESSAGE_TTL)
    number = redis_client.hget(keys.message_id_jobs("tcell"), "j3")  # given at row 21's ack
    redis_client.hset(
        keys.message_ids("tcell", period, "smsc", keys.message_id_bucket("m12b")),
        "m12b",
        b"%s|12|5|2|2" % number,
    )
    ledger.apply([ReceiptSeen("smsc", "m12b", "DELIVRD")])
    assert redis_client.hget(twelve, f"{at}:o") == b"delivered"
    assert redis_client.hget(keys.job_op_counters("j3", "tcell"), "delivered") == b"1"

    store.delete("j3", ledgers=["tcell"])
    assert not [k for k in redis_client.scan_iter() if b"j3" in k]


def test_layout_4_s_message_ids_move_under_their_smsc_and_receipts_still_find_them(
    redis_client: redis.Redis,
) -> None:
    """Layout 4 kept an id as ``smsc:id`` in its period's bucket with ``job|row|part|parts|unix_ms[|a]``;
    5 keeps it under its SMSC with the time since its period began. Receipts that come after the move
    settle their rows and measure their latency from the ack, as before."""
    redis_client.flushall()
    redis_client.set(keys.LAYOUT, "4")
    _sending_job(redis_client, "j5", ledgers="tcell:tcell", rows=40)
    smsc = "127.0.0.1:2775/tcell"
    now_ms = int(time.time() * 1000)
    period = keys.message_id_period(now_ms / 1000, MESSAGE_TTL)
    begun = period * MESSAGE_TTL * 1000
    acked = max(begun, now_ms - 5000)
    old = {  # (period, field): value, as layout 4's ledger script wrote them
        (period, f"{smsc}:m7"): f"j5|7|1|1|{acked}|a",  # a single-part row acked with it
        (period, f"{smsc}:m12b"): f"j5|12|2|2|{acked}",  # a two-part row's second part
        (period - 1, "smsc:m30"): f"j5|30|1|1|{begun - 1000}",  # last period; an SMSC named without a slash
        (period, f"{smsc}:m31"): "j5|31|1|1",  # from before acks were timed
    }
    for (p, field), value in old.items():
        redis_client.hset(f"ulak:{{tcell}}:msgs:{p}:{zlib.crc32(field.encode()) & 0xFFFF}", field, value)
    for row, fields in {7: ["", ":1"], 12: ["", ":1", ":2"], 30: ["", ":1"], 31: ["", ":1"]}.items():
        place = keys.row_field(row)
        mapping = {place + f: "a" for f in fields} | ({place + ":d": "1"} if row == 12 else {})
        redis_client.hset(keys.job_bucket("j5", "tcell", keys.row_bucket(row)), mapping=mapping)  # type: ignore[arg-type]

    assert legacy.migrate(redis_client) == []
    assert redis_client.get(keys.LAYOUT) == legacy.LAYOUT
    assert not [k for k in redis_client.scan_iter() if b":msgs:" in k]
    since = acked - begun
    assert redis_client.hmget(keys.message_id_jobs("tcell"), ["j5", "#1"]) == [b"1", b"j5"]  # j5 is job 1
    for found_smsc, mid, value in (
        (smsc, "m7", f"1|7|{since}|a"),
        (smsc, "m12b", f"1|12|{since}|2|2"),
        ("smsc", "m30", f"1|30|{MESSAGE_TTL * 1000 - 1000}"),
        (smsc, "m31", "1|31|"),
    ):
        found = message_id_key(redis_client, "tcell", found_smsc, mid)
        assert found is not None and found[1] == value.encode(), mid
        assert 0 < redis_client.ttl(found[0]) <= 2 * MESSAGE_TTL

    RedisLedger(redis_client, ledger="tcell").apply(
        [
            ReceiptSeen(s, m, "DELIVRD")
            for s, m in ((smsc, "m7"), (smsc, "m12b"), ("smsc", "m30"), (smsc, "m31"))
        ]
    )
    counters = redis_client.hgetall(keys.job_op_counters("j5", "tcell"))
    assert (counters[b"delivered"], counters[b"receipts"]) == (b"4", b"4")
    assert redis_client.hget(
        keys.job_bucket("j5", "tcell", keys.row_bucket(12)), keys.row_field(12) + ":o"
    ) == (b"delivered")
    assert redis_client.hget(keys.receipt_stats("tcell"), "held") is None  # every one was found
    latency = redis_client.hgetall(keys.receipt_latency("tcell"))
    # Three acks had a time: ~5 s, ~5 s and over a period ago (m31's has none).
    assert sum(int(v) for k, v in latency.items() if k != b"sum") == 3
    assert 10 <= float(latency[b"sum"]) - (now_ms - begun + 1000) / 1000 < 60
