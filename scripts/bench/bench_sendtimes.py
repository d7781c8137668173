#!/usr/bin/env python3
"""What the send-time model costs at scale (``ulak.sendtime``): building it for *numbers* recipients
on a real redis-server, the memory it takes there, and reading it back as a planner does.

The numbers are distinct Turkish mobile numbers spread over ten operator prefixes. The build folds
*events* engagements a number at random local hours, in chunks of 1,000,000 events (as a refresh
folds a job's new events: one script call a bucket touched, pipelined), then the planner's read:
every number's 24 counts and its prior, in batches of 1,000,000 (``histories`` + ``Priors.of`` +
``scores``). Memory is Redis's ``used_memory`` after against before; the process's peak RSS is
the benchmark's own (numbers, arguments).

    .venv/bin/python scripts/bench/bench_sendtimes.py --numbers 10000000 --events 2
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ulak import sendtime  # noqa: E402
from ulak.redis_server import RedisServer  # noqa: E402

CHUNK = 1_000_000
PREFIXES = ("90530", "90532", "90533", "90535", "90538", "90541", "90542", "90543", "90551", "90555")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--numbers", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=2, help="engagements folded a number")
    parser.add_argument("--read", type=int, default=1_000_000, help="numbers read back as a planner does")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    per_prefix = -(-args.numbers // len(PREFIXES))
    suffixes = rng.choice(10_000_000, size=per_prefix, replace=False)
    numbers = [f"{p}{s:07d}" for p in PREFIXES for s in suffixes.tolist()][: args.numbers]
    order = rng.permutation(len(numbers))
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis", appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        before = int(client.info("memory")["used_memory"])
        started = time.perf_counter()
        folded = 0
        for _ in range(args.events):
            hours = rng.integers(0, 24, size=len(numbers))
            for i in range(0, len(numbers), CHUNK):
                idx = order[i : i + CHUNK]
                chunk = [numbers[k] for k in idx.tolist()]
                folded += sendtime.fold(client, chunk, hours[idx].tolist(), prefix_digits=5)
        build = time.perf_counter() - started
        memory = client.info("memory")
        after = int(memory["used_memory"])
        keys = int(client.dbsize())
        started = time.perf_counter()
        priors = sendtime.Priors.read(client, digits=5)
        sample = [numbers[k] for k in order[: args.read].tolist()]
        known = 0
        for i in range(0, len(sample), CHUNK):
            chunk = sample[i : i + CHUNK]
            history = sendtime.histories(client, chunk)
            score = sendtime.scores(history, priors.of(chunk, weight=4.0), weight=4.0)
            known += int(history.any(axis=1).sum())
            assert score.shape == (len(chunk), 24)
        read = time.perf_counter() - started
        client.close()
    assert known == len(sample), (known, len(sample))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    n = len(numbers)
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    print(
        f"command: .venv/bin/python scripts/bench/bench_sendtimes.py --numbers {args.numbers} "
        f"--events {args.events} --read {args.read}"
    )
    print("| what | figure |")
    print("|---|---|")
    print(f"| numbers in the model | {n:,} ({keys:,} Redis keys) |")
    print(f"| build: engagements folded | {folded:,} in {build:,.1f} s ({folded / build:,.0f}/s) |")
    print(
        f"| Redis memory | {(after - before) / n:.0f} bytes a number "
        f"({(after - before) / 2**30:.2f} GiB; rss {int(memory['used_memory_rss']) / 2**30:.2f} GiB) |"
    )
    rate = len(sample) / read
    print(f"| read as the planner does | {len(sample):,} numbers in {read:.1f} s ({rate:,.0f}/s) |")
    print(f"| the benchmark's own peak RSS | {peak:.2f} GiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
