#!/usr/bin/env python3
"""One process of binds, no Ray: what a bind costs per message, and where (``--profile``).

``BindClient``s (what each ``SmppConnectionActor`` runs) in this process, on one event loop (uvloop
when installed, as Ray's async actors use it), against the bundled simulator in its own process, with
the ledger in Ulak's own redis-server (``--sink null`` drops the events instead). The parts are built
up front, as the runner would send them. Prints msgs/s and the CPU microseconds per message of this
process, of redis-server and of the simulator.

    python scripts/bench/bench_bind.py --messages 100000 [--binds 2] [--sink null] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import redis.asyncio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_e2e import TEXT, bench_operator  # noqa: E402

from api.cli.stack import start_simulator  # noqa: E402
from ulak import keys  # noqa: E402
from ulak.dispatch.bind import BindClient, OutboundPart  # noqa: E402
from ulak.dispatch.fence import FencedWrites  # noqa: E402
from ulak.dispatch.ledger import Event, RedisLedger  # noqa: E402
from ulak.dispatch.message import plan_for, submit_pdus  # noqa: E402
from ulak.dispatch.throttle import LocalTokenSource, SlidingWindowLimiter  # noqa: E402
from ulak.redis_server import RedisServer  # noqa: E402
from ulak.smpp.codec import preencode  # noqa: E402


def cpu_of(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


async def run(args: argparse.Namespace, redis_url: str, port: int) -> tuple[float, float, int, float]:
    op = bench_operator(port, binds=args.binds, window=args.window)
    binds = op.binds
    message = plan_for(TEXT, op, reference=0)
    parts: list[list[OutboundPart]] = [[] for _ in binds]
    for row in range(args.messages):
        (pdu,) = submit_pdus(message, destination=f"90532{row:07d}", bind=binds[0])
        parts[row % len(binds)].append(OutboundPart("bench", row, 1, 1, preencode(pdu)))
    client = redis.asyncio.Redis.from_url(redis_url)
    ledger = RedisLedger(client, ledger=op.ledger_name)

    async def null_sink(events: list[Event]) -> None:
        return None

    limiter = LocalTokenSource(SlidingWindowLimiter(op.tps))
    clients = []
    for b in binds:
        # As the actor does: receipts durable in the bind's inbox before they are answered, and
        # both the ledger's and the inbox's writes fenced (ulak.dispatch.fence).
        inbox: Any = None
        sink: Any = ledger.apply_async
        if args.sink == "null":
            sink = null_sink
        elif args.inbox:
            writes = FencedWrites(
                client,
                ledger=op.ledger_name,
                fence=keys.bind_fence(op.name, b.name, ledger=op.ledger_name),
                inbox=keys.bind_inbox(op.name, b.name, ledger=op.ledger_name),
            )
            sink, inbox = writes.apply, writes.inbox
        clients.append(BindClient(b, op, tokens=limiter, sink=sink, inbox=inbox))
    for c in clients:
        await c.start()
    for c in clients:
        await c.wait_bound(10)
    memory0 = (await client.info("memory"))["used_memory"]
    t0, cpu0 = time.perf_counter(), time.process_time()
    batch = 1000  # the runner's batches cross Ray in about this size
    for i in range(0, max(len(p) for p in parts), batch):
        for c, p in zip(clients, parts, strict=True):
            c.enqueue(p[i : i + batch])
    while sum(c.stats.receipts for c in clients) < args.messages:
        await asyncio.sleep(0.005)
    for c in clients:
        await c.flush()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    for c in clients:
        await c.stop()
    if args.sink == "redis":
        stats = await client.info("commandstats")
        top = sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:12]
        print("redis commandstats (µs per message: total, per call):", file=sys.stderr)
        for name, st in top:
            print(
                f"  {name:28} {st['usec'] / args.messages:7.2f} {st['usec_per_call']:7.2f}"
                f"  calls/message {st['calls'] / args.messages:.2f}",
                file=sys.stderr,
            )
    # What the job left in Redis (message ids, rows, parts, counters), per message.
    memory = ((await client.info("memory"))["used_memory"] - memory0) / args.messages
    await client.aclose()
    return elapsed, cpu, sum(c.stats.submitted for c in clients), memory


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--binds", type=int, default=2)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--sink", choices=("redis", "null"), default="redis")
    parser.add_argument("--profile", action="store_true", help="cProfile this process; print the top")
    parser.add_argument(
        "--no-inbox",
        dest="inbox",
        action="store_false",
        help="answer receipts before they are durable, and write without the fence",
    )
    parser.add_argument("--appendfsync", choices=("everysec", "always"), default="everysec")
    return parser


def main() -> int:
    args = _parser().parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="ulak-bench-bind-") as tmp:
        sim, port = start_simulator(Path(tmp))
        try:
            with RedisServer(Path(tmp) / "redis", appendfsync=args.appendfsync) as server:
                assert server.process is not None
                red, simp = psutil.Process(server.process.pid), psutil.Process(sim.pid)
                before = cpu_of(red), cpu_of(simp)
                profiler = cProfile.Profile() if args.profile else None
                if profiler:
                    profiler.enable()
                elapsed, cpu, sent, memory = asyncio.run(run(args, server.url, port))
                if profiler:
                    profiler.disable()
                after = cpu_of(red), cpu_of(simp)
        finally:
            sim.terminate()
            sim.wait(timeout=10)
    n = args.messages
    us = [round(c / n * 1e6, 1) for c in (cpu, *(a - b for a, b in zip(after, before, strict=True)))]
    print(
        json.dumps(
            {
                "messages": n,
                "sent": sent,
                "redis_bytes_per_message": round(memory),
                "binds": args.binds,
                "sink": args.sink,
                "inbox": args.inbox,
                "seconds": round(elapsed, 2),
                "msgs_per_second": round(n / elapsed),
                "cpu_us_per_message": {
                    "binds (this process, from the first enqueue)": us[0],
                    "redis": us[1],
                    "simulator": us[2],
                },
                "machine": f"{psutil.cpu_count()} cpu, python {platform.python_version()}",
            },
            indent=2,
        )
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
