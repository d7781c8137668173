"""The Redis ledger (Lua) against the plain-Python reference model, on a real redis-server."""

from __future__ import annotations

import random
import time

import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import ledger_hash, message_id_key
from ulak import keys
from ulak.dispatch.ledger import (
    COUNTERS,
    MESSAGE_TTL,
    Event,
    MemoryLedger,
    PartAcked,
    PartFailed,
    PartReturned,
    PartSent,
    PartUnknown,
    ReceiptSeen,
    RedisLedger,
    RowStopped,
    coalesce,
)
from ulak.records import Ack, MessageOwner, PartState, Receipt

JOB = "job1"
OP = "op"  # every event of these tests goes to one operator's ledger


def counters(ledger: RedisLedger, job: str = JOB) -> dict[str, int]:
    found = ledger.counters(job)
    return {name: found.get(name, 0) for name in COUNTERS}


def model_counters(model: MemoryLedger, job: str = JOB) -> dict[str, int]:
    return {name: model.counters[job][name] for name in COUNTERS}


def test_single_part_happy_path(redis_client: redis.Redis) -> None:
    ledger = RedisLedger(redis_client, ledger=OP)
    ledger.apply([PartSent(JOB, 1, 1, 1), PartAcked(JOB, 1, 1, 1, "smsc", "42")])
    found = message_id_key(redis_client, OP, "smsc", "42")
    assert found is not None and redis_client.ttl(found[0]) > MESSAGE_TTL - 5  # at least the map's TTL
    number, row, since, acked = found[1].decode().split("|")  # the ack's time since the period began
    begun = keys.message_id_period(time.time(), MESSAGE_TTL) * MESSAGE_TTL * 1000
    assert (row, acked) == ("1", "a") and abs(begun + int(since) - time.time() * 1000) < 60_000
    numbers = keys.message_id_jobs(OP)  # the job by its number, kept as long as the ids
    assert redis_client.hmget(numbers, [JOB, f"#{number}"]) == [number.encode(), JOB.encode()]
    assert redis_client.ttl(numbers) >= redis_client.ttl(found[0])
    ledger.apply([ReceiptSeen("smsc", "42", "DELIVRD")])
    c = counters(ledger)
    assert (c["submitted"], c["acked"], c["delivered"], c["receipts"]) == (1, 1, 1, 1)
    latency = redis_client.hgetall(keys.receipt_latency(OP))  # measured from its ack: seconds, not days
    assert sum(int(v) for k, v in latency.items() if k != b"sum") == 1 and float(latency.get(b"sum", 0)) < 60


def test_receipt_before_its_ack_is_held_then_matched(redis_client: redis.Redis) -> None:
    ledger = RedisLedger(redis_client, ledger=OP)
    ledger.apply([PartSent(JOB, 7, 1, 1), ReceiptSeen("smsc", "ab", "DELIVRD")])
    assert counters(ledger)["delivered"] == 0
    assert redis_client.hget(keys.receipt_stats(OP), "held") == b"1"
    ledger.apply([PartAcked(JOB, 7, 1, 1, "smsc", "ab")])
    assert counters(ledger)["delivered"] == 1
    assert redis_client.hget(keys.receipt_stats(OP), "matched_late") == b"1"
    assert not redis_client.exists(keys.early_receipt(OP, "smsc", "ab"))


def test_multipart_delivered_only_when_every_part_is(redis_client: redis.Redis) -> None:
    ledger = RedisLedger(redis_client, ledger=OP)
    events: list[Event] = [PartSent(JOB, 3, p, 3) for p in (1, 2, 3)]
    events += [PartAcked(JOB, 3, p, 3, "s", f"m{p}") for p in (1, 2, 3)]
    ledger.apply(events)
    ledger.apply([ReceiptSeen("s", "m1", "DELIVRD"), ReceiptSeen("s", "m2", "DELIVRD")])
    assert counters(ledger)["delivered"] == 0
    ledger.apply([ReceiptSeen("s", "m3", "DELIVRD"), ReceiptSeen("s", "m3", "DELIVRD")])
    c = counters(ledger)
    assert (c["delivered"], c["receipts"], c["receipts_duplicate"]) == (1, 4, 1)


def test_one_failed_part_fails_the_row_once(redis_client: redis.Redis) -> None:
    ledger = RedisLedger(redis_client, ledger=OP)
    ledger.apply(
        [
            PartSent(JOB, 5, 1, 2),
            PartSent(JOB, 5, 2, 2),
            PartAcked(JOB, 5, 1, 2, "s", "x1"),
            PartFailed(JOB, 5, 2, 2, 0x0B),
            PartUnknown(JOB, 5, 2, 2),  # a late report for the same part changes nothing
            PartSent(JOB, 5, 2, 2),  # nor does a resend report
        ]
    )
    c = counters(ledger)
    assert (c["submitted"], c["acked"], c["failed"], c["unknown"]) == (1, 0, 1, 0)
    assert (c["parts_sent"], c["parts_acked"], c["parts_failed"]) == (2, 1, 1)


def test_unknown_ids_from_another_smsc_do_not_match(redis_client: redis.Redis) -> None:
    ledger = RedisLedger(redis_client, ledger=OP)
    ledger.apply([PartSent(JOB, 1, 1, 1), PartAcked(JOB, 1, 1, 1, "smsc-a", "1")])
    ledger.apply([ReceiptSeen("smsc-b", "1", "DELIVRD")])
    assert counters(ledger)["delivered"] == 0
    assert redis_client.hget(keys.receipt_stats(OP), "held") == b"1"


STATUSES = ["DELIVRD", "DELIVRD", "DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "ENROUTE", "WEIRD"]


def random_history(rng: random.Random, rows: int) -> list[Event]:
    """A plausible interleaving of events for *rows* messages: causal per part, otherwise shuffled."""
    per_part: list[list[Event]] = []
    for row in range(rows):
        parts = rng.randint(1, 3)
        if rng.random() < 0.1:  # refused while it waited: stopped, never sent (ulak.refusals)
            per_part.append([RowStopped(JOB, row, parts, rng.choice(["opted_out", "no_consent"]), 1)])
            continue
        if rng.random() < 0.05:  # a stop that comes when a part may be sent already: changes nothing
            per_part.append([RowStopped(JOB, row, parts, "opted_out", 1)])
        for part in range(1, parts + 1):
            seq: list[Event] = [PartSent(JOB, row, part, parts)]
            fate = rng.random()
            mid = f"{row}-{part}"
            if fate < 0.75:
                ack = PartAcked(JOB, row, part, parts, "smsc", mid)
                receipts: list[Event] = [
                    ReceiptSeen("smsc", mid, rng.choice(STATUSES)) for _ in range(rng.randint(0, 2))
                ]
                if receipts and rng.random() < 0.3:
                    seq += [*receipts, ack]  # receipts that overtake their ack
                else:
                    seq += [ack, *receipts]
            elif fate < 0.87:
                seq.append(PartFailed(JOB, row, part, parts, 0x0B))
            elif fate < 0.95:
                seq.append(PartUnknown(JOB, row, part, parts))
            elif fate < 0.98:
                seq.append(PartReturned(JOB, row, part, parts))  # throttled, then taken back: unsent
            if rng.random() < 0.1:
                seq.insert(1, PartSent(JOB, row, part, parts))  # a resend
            if rng.random() < 0.15:  # throttled first, sent again
                seq[0:0] = [PartSent(JOB, row, part, parts), PartReturned(JOB, row, part, parts)]
            per_part.append(seq)
    # merge the per-part sequences in random order, keeping each one's own order
    merged: list[Event] = []
    cursors = [0] * len(per_part)
    live = list(range(len(per_part)))
    while live:
        i = rng.choice(live)
        merged.append(per_part[i][cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(per_part[i]):
            live.remove(i)
    return merged


@settings(max_examples=60)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 25))
def test_redis_ledger_matches_the_model(redis_server_url: str, seed: int, rows: int, batch: int) -> None:
    client = redis.Redis.from_url(redis_server_url)
    client.flushall()
    ledger = RedisLedger(client, ledger=OP)
    model = MemoryLedger()
    history = random_history(random.Random(seed), rows)
    for i in range(0, len(history), batch):
        chunk = history[i : i + batch]
        ledger.apply(coalesce(chunk))  # as a bind writes them
        model.apply(chunk)
    assert counters(ledger) == model_counters(model)
    stats = {k.decode(): int(v) for k, v in client.hgetall(keys.receipt_stats(OP)).items()}
    assert stats.get("held", 0) == model.receipt_stats["held"]
    assert stats.get("matched_late", 0) == model.receipt_stats["matched_late"]
    states = ledger_hash(client, "rows", JOB, OP)
    for (job, row), r in model.rows.items():
        if r["state"] is not None:
            assert states[str(row).encode()] == r["state"].encode(), (job, row)
    # What a report reads of a one-part row (cluster.reports.report): a part state but stopped is
    # its row's, and such a row has no stop or outcome field.
    part_states = ledger_hash(client, "parts", JOB, OP)
    for row in {e.row for e in history if getattr(e, "parts", None) == 1}:
        state = part_states.get(b"%d:1" % row)
        if state is not None and state != b"x":
            key = str(row).encode()
            assert (states.get(key), states.get(key + b":x"), states.get(key + b":o")) == (state, None, None)
    c = counters(ledger)
    in_flight = sum(1 for (job, _), r in model.rows.items() if job == JOB and r["state"] == "s")
    assert c["submitted"] == c["acked"] + c["failed"] + c["unknown"] + in_flight
    outcomes = ("delivered", "undelivered", "expired", "rejected", "deleted", "receipt_unknown")
    assert sum(c[o] for o in outcomes) <= c["acked"]
    client.close()


def test_what_the_ledger_script_stores_reads_back_through_the_codecs(redis_client: redis.Redis) -> None:
    """The Lua script writes the part fields and the message-id map; ``ulak.records`` reads them."""
    ledger = RedisLedger(redis_client, ledger=OP)
    ledger.apply([PartSent("codec", 4, 1, 1), PartAcked("codec", 4, 1, 1, "smsc", "id|with|bars")])
    ledger.apply([ReceiptSeen("smsc", "id|with|bars", "UNDELIV", "011")])
    fields = redis_client.hmget(keys.job_bucket("codec", OP, 0), ["4:1", "4:1:m", "4:1:r"])
    assert PartState.read(fields[0]) is PartState.ACKED
    ack, receipt = Ack.read(fields[1]), Receipt.read(fields[2])
    assert ack.message_id == "id|with|bars" and ack.at_ms > 1_700_000_000_000
    assert (receipt.status, receipt.error, receipt.delivered) == ("UNDELIV", "011", False)
    assert receipt.at_ms >= ack.at_ms
    found = message_id_key(redis_client, OP, "smsc", "id|with|bars")
    assert found is not None
    owner = MessageOwner.read(found[1])
    assert owner.row == 4
    assert redis_client.hget(keys.message_id_jobs(OP), f"#{owner.job_number}") == b"codec"
