#!/usr/bin/env python3
"""What the job ledger costs in Redis (``ulak.dispatch.ledger``): its Lua script's CPU per event and
the memory a row keeps, on a real redis-server, as binds write it (``apply_in_batches``: 128 events a
call).

*rows* single-part rows of one job, spread at random over three operators' ledgers as a campaign's
are, each acked (its first and only write, as a send answered within a bind's 50 ms tick goes), then
each delivered by a receipt. Redis's CPU (``used_cpu_user + used_cpu_sys``) and wall time per event
for each pass, and ``used_memory`` per row at the end: the row's bucket fields and its message id in
the map, what a finished job keeps until its receipts' map expires. Redis as Ulak runs it (an
append-only file, fsync every second).

    .venv/bin/python scripts/bench/bench_ledger.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ulak import keys  # noqa: E402
from ulak.dispatch.ledger import Event, PartAcked, ReceiptSeen, RedisLedger  # noqa: E402
from ulak.redis_server import RedisServer  # noqa: E402

OPERATORS = ("turkcell", "vodafone-tr", "turk-telekom")
JOB = "20261206-36c579a779"  # a job id as Ulak makes them


def _cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _pass(client: redis.Redis, events: dict[str, list[Event]], count: int) -> dict[str, float]:
    cpu, started = _cpu(client), time.perf_counter()
    for operator, mine in events.items():
        RedisLedger(client, ledger=operator).apply_in_batches(mine)
    return {
        "redis_cpu_us_per_event": round((_cpu(client) - cpu) / count * 1e6, 2),
        "wall_us_per_event": round((time.perf_counter() - started) / count * 1e6, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = random.Random(1)
    owner = {row: rng.choice(OPERATORS) for row in range(1, args.rows + 1)}
    smsc = {op: f"smsc.{op}.example:2775/ulak" for op in OPERATORS}
    acks: dict[str, list[Event]] = {op: [] for op in OPERATORS}
    receipts: dict[str, list[Event]] = {op: [] for op in OPERATORS}
    for row, op in owner.items():
        acks[op].append(PartAcked(JOB, row, 1, 1, smsc[op], f"{row:x}"))
        receipts[op].append(ReceiptSeen(smsc[op], f"{row:x}", "DELIVRD", "000"))
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        client = redis.Redis.from_url(server.url)
        before = int(client.info("memory")["used_memory"])
        acked = _pass(client, acks, args.rows)
        delivered = _pass(client, receipts, args.rows)
        after = int(client.info("memory")["used_memory"])
        counted = sum(
            int(client.hget(keys.job_op_counters(JOB, op), "delivered") or 0)  # type: ignore[arg-type]
            for op in OPERATORS
        )
        client.close()
    assert counted == args.rows, f"{counted} rows delivered of {args.rows}"
    result = {
        "rows": args.rows,
        "acks": acked,
        "receipts": delivered,
        "redis_bytes_a_row": round((after - before) / args.rows, 1),
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()}, python {platform.python_version()}",
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
