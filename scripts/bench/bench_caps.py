#!/usr/bin/env python3
"""What frequency caps cost (``ulak.caps``): the gate's check-and-count on a real redis-server, as a
job's runner calls it (batches of 500 messages, one script per slot shard, pipelined), and the
memory a recipient's history takes.

Three passes over *numbers* recipients with acme's 1/24h and the commercial 4/7d cap: a first job
(every message passes and is recorded), a second job of the brand (every message is capped: the
scripts read each history), then the preview's look (nothing recorded). Memory is Redis's
``used_memory`` before and after, per recipient.

    .venv/bin/python scripts/bench/bench_caps.py --numbers 1000000
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ulak.caps import Cap, Gate, rules_for  # noqa: E402
from ulak.redis_server import RedisServer  # noqa: E402

BATCH = 500


def _pass(gate: Gate, numbers: list[str], now: float, *, record: bool = True) -> tuple[float, int]:
    started = time.perf_counter()
    capped = 0
    for i in range(0, len(numbers), BATCH):
        chunk = numbers[i : i + BATCH]
        capped += len(gate.admit([(n, i + k) for k, n in enumerate(chunk)], now, record=record))
    return time.perf_counter() - started, capped


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--numbers", type=int, default=1_000_000)
    args = parser.parse_args()
    numbers = [f"90532{i:07d}" for i in range(args.numbers)]
    rules = rules_for(
        commercial_caps=[Cap.parse("4/7d")],
        brand_caps={"acme": [Cap.parse("1/24h")]},
        brand="acme",
        commercial=True,
    )
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis", appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        before = int(client.info("memory")["used_memory"])
        now = time.time()
        first = Gate(client, rules, job_id="job-a", brand="acme", commercial=True, keep=7 * 86400)
        second = Gate(client, rules, job_id="job-b", brand="acme", commercial=True, keep=7 * 86400)
        seconds_a, capped_a = _pass(first, numbers, now)
        after = int(client.info("memory")["used_memory"])
        seconds_b, capped_b = _pass(second, numbers, now + 60)
        seconds_p, capped_p = _pass(second, numbers, now + 120, record=False)
        client.close()
    n = args.numbers
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    print(f"command: .venv/bin/python scripts/bench/bench_caps.py --numbers {n}")
    print("| pass | messages/s | capped |")
    print("|---|---|---|")
    print(f"| first job (all recorded) | {n / seconds_a:,.0f} | {capped_a:,} |")
    print(f"| second job (all capped) | {n / seconds_b:,.0f} | {capped_b:,} |")
    print(f"| preview (look only) | {n / seconds_p:,.0f} | {capped_p:,} |")
    print(f"Redis memory: {(after - before) / n:.0f} bytes a recipient ({(after - before) / 2**20:,.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
