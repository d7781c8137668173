#!/usr/bin/env python3
"""Per-bind limits as operators state them: how much of each bind's cap is used, and how often the
SMSC still says ESME_RTHROTTLED. Measured at the SMSC, from its own record.

The bundled simulator caps every bind at ``--tps`` submit_sm per sliding second (``--account-tps``
over all of them, optional). ``BindClient``s (what each ``SmppConnectionActor`` runs, no Ray) each
with ``tps`` set to that cap send a mixed campaign (GSM, Turkish single shift, UCS-2, multipart),
the ledger in Ulak's own redis-server. For every bind, from the timestamps of the parts the SMSC
accepted on its connection:

* utilisation = K / (t[K × cap] − t[0]), t the accepted parts' times in order and K = (accepted − 1)
  // cap: how many caps' worth went per second, from the first part to the first of the last
  cap-sized block (a sliding second lets a whole cap go at any instant, so the blocks' starts are
  what a limit spaces). Every sliding second full scores 1.0; a gap of d seconds over T scores
  about T / (T + d);
* the lowest whole second ([first + k, first + k + 1), the last, partial one left out).

    python scripts/bench/bench_limits.py --binds 4 --tps 100 --seconds 10 [--account-tps 300]
    python scripts/bench/bench_limits.py --matrix        # 1/4/8 binds × 100/1,000 per bind
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil
import redis.asyncio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from api.cli.stack import start_simulator  # noqa: E402
from ulak.dispatch.bind import BindClient, OutboundPart  # noqa: E402
from ulak.dispatch.ledger import RedisLedger  # noqa: E402
from ulak.dispatch.message import plan_for, submit_pdus  # noqa: E402
from ulak.dispatch.throttle import LocalTokenSource, SlidingWindowLimiter  # noqa: E402
from ulak.redis_server import RedisServer  # noqa: E402
from ulak.settings import BindConfig, OperatorConfig  # noqa: E402

TEXTS = [
    "Kampanya: tum urunlerde %20 indirim",  # GSM, 1 part
    "Şubat kampanyası: %20 indirim, ğüşıöç İĞÜŞÖÇ",  # Turkish single shift, 1 part
    "Привет! Скидка 20% 😀",  # UCS-2, 1 part
    "Uzun mesaj: " + "çok güzel bir kampanya, kaçırmayın! " * 9,  # Turkish, 3 parts
]


def operator(
    port: int, *, binds: int, tps: float, account_tps: float | None, window: int, own_caps: bool = True
) -> OperatorConfig:
    configs = tuple(
        BindConfig(
            name=f"b{i}",
            host="127.0.0.1",
            port=port,
            system_id="bench",
            password_env="UNUSED",
            window=window,
            tps=tps if own_caps else None,
        )
        for i in range(binds)
    )
    return OperatorConfig(name="op", prefixes=("90",), tps=account_tps or tps * binds, binds=configs)


def campaign(op: OperatorConfig, parts_per_bind: int) -> list[list[OutboundPart]]:
    """Each bind's share: whole messages, about *parts_per_bind* parts."""
    plans = [plan_for(t, op, reference=i) for i, t in enumerate(TEXTS)]
    out: list[list[OutboundPart]] = [[] for _ in op.binds]
    row = 0
    for share in out:
        while len(share) < parts_per_bind:
            pdus = submit_pdus(plans[row % len(plans)], destination=f"90532{row:07d}", bind=op.binds[0])
            share += [OutboundPart("bench", row, i, len(pdus), pdu) for i, pdu in enumerate(pdus, 1)]
            row += 1
    return out


async def send(op: OperatorConfig, redis_url: str, shares: list[list[OutboundPart]]) -> dict[str, int]:
    client = redis.asyncio.Redis.from_url(redis_url)
    account = LocalTokenSource(SlidingWindowLimiter(op.tps))  # the ThrottleActor's part
    binds = [
        BindClient(b, op, tokens=account, sink=RedisLedger(client, ledger=op.ledger_name).apply_async)
        for b in op.binds
    ]
    for b in binds:
        await b.start()
    for b in binds:
        await b.wait_bound(10)
    for b, share in zip(binds, shares, strict=True):
        b.enqueue(share)
    await asyncio.gather(*(b.drain(timeout=600) for b in binds))
    throttled = sum(b.stats.throttled for b in binds)
    for b in binds:
        await b.stop()
    await client.aclose()
    return {"throttled_seen_by_binds": throttled}


def utilisation(times: list[float], cap: int) -> float | None:
    """See the module docstring (None: fewer than two caps' worth of parts)."""
    blocks = (len(times) - 1) // cap
    if blocks < 1 or times[blocks * cap] <= times[0]:
        return None
    return round(blocks / (times[blocks * cap] - times[0]), 4)


def per_bind(record: Path, cap: float) -> list[dict[str, Any]]:
    times: dict[int, list[float]] = defaultdict(list)
    with record.open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            times[r["conn"]].append(r["mono"])
    out = []
    for conn, ts in sorted(times.items()):
        ts.sort()
        first, last = ts[0], ts[-1]
        seconds = int(last - first)
        buckets = [0] * max(1, seconds)
        for t in ts:
            k = int(t - first)
            if k < seconds:
                buckets[k] += 1
        out.append(
            {
                "conn": conn,
                "accepted": len(ts),
                "utilisation": utilisation(ts, int(cap)),
                "lowest_second": min(buckets) if seconds else None,
            }
        )
    return out


def run_case(
    binds: int, tps: float, seconds: float, account_tps: float | None, window: int, *, own_caps: bool = True
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ulak-bench-limits-") as tmp:
        record = Path(tmp) / "record.jsonl"
        stats_file = Path(tmp) / "stats.json"
        args = ["--tps", f"{tps:g}", "--record", str(record), "--stats-file", str(stats_file)]
        if account_tps:
            args += ["--account-tps", f"{account_tps:g}"]
        sim, port = start_simulator(Path(tmp), *args)
        try:
            with RedisServer(Path(tmp) / "redis") as server:
                op = operator(
                    port, binds=binds, tps=tps, account_tps=account_tps, window=window, own_caps=own_caps
                )
                per_cap = min(tps, (account_tps or tps * binds) / binds)
                shares = campaign(op, int(per_cap * seconds))
                t0 = time.perf_counter()
                seen = asyncio.run(send(op, server.url, shares))
                elapsed = time.perf_counter() - t0
        finally:
            sim.terminate()
            sim.wait(timeout=30)
        stats = json.loads(stats_file.read_text())
        rows = per_bind(record, per_cap)
        every = sorted(json.loads(line)["mono"] for line in record.open(encoding="utf-8"))
        account_util = utilisation(every, int(account_tps)) if account_tps else None
    utils = [r["utilisation"] for r in rows if r["utilisation"] is not None]
    return {
        "binds": binds,
        "tps_per_bind": tps,
        "account_tps": account_tps,
        "window": window,
        "bind_caps": own_caps,
        "parts": sum(len(s) for s in shares),
        "seconds": round(elapsed, 1),
        "esme_rthrottled": stats["rejected"].get("ESME_RTHROTTLED", 0),
        **seen,
        "utilisation_min": min(utils),
        "utilisation_mean": round(sum(utils) / len(utils), 4),
        "lowest_second_min": min((r["lowest_second"] or 0) for r in rows),
        "account_utilisation": account_util,
        "per_bind": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--tps", type=float, default=100, help="each bind's cap (the SMSC's and ours)")
    parser.add_argument("--account-tps", type=float, help="the account's cap over all binds")
    parser.add_argument("--seconds", type=float, default=10, help="about how long each bind sends")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--matrix", action="store_true", help="1/4/8 binds × 100/1,000 per bind")
    parser.add_argument(
        "--no-bind-caps",
        action="store_true",
        help="the binds carry no cap of their own, only the account's (binds × tps): how it was before",
    )
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    cases = [(b, t) for t in (100, 1000) for b in (1, 4, 8)] if args.matrix else [(args.binds, args.tps)]
    machine = f"{psutil.cpu_count()} cpu, python {platform.python_version()}"
    for binds, tps in cases:
        result = run_case(
            binds, tps, args.seconds, args.account_tps, args.window, own_caps=not args.no_bind_caps
        )
        if args.matrix:
            result.pop("per_bind")
        print(json.dumps({**result, "machine": machine}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
