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

With ``--undeclared`` the binds are not told their cap: only the account's (binds × tps), as most
users first configure an operator, so each bind learns its real limit from the SMSC's 0x58
(``ulak.dispatch.learning``); the figures after the first ``--learning`` seconds are reported apart.
``--drop 50@15-30`` lowers the SMSC's per-bind limit to 50 from second 15 to second 30 of sending
(its control port), and reports how many seconds each bind took to follow each way: down, until a
second with fewer than 10 % of the new limit answered 0x58; up, until a second at 90 % of the
restored limit. The 0x58 times come from the binds' counters, sampled every 0.1 s.

    python scripts/bench/bench_limits.py --binds 4 --tps 100 --seconds 10 [--account-tps 300]
    python scripts/bench/bench_limits.py --matrix        # 1/4/8 binds × 100/1,000 per bind
    python scripts/bench/bench_limits.py --undeclared --seconds 40 --drop 50@15-30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import socket
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


class Drop:
    """The SMSC's per-bind limit lowered to *tps* from second *start* to second *end* of sending."""

    def __init__(self, spec: str) -> None:
        tps, _, span = spec.partition("@")
        start, _, end = span.partition("-")
        self.tps, self.start, self.end = float(tps), float(start), float(end)


def control(port: int, **command: Any) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(json.dumps(command).encode() + b"\n")
        sock.recv(4096)


async def send(
    op: OperatorConfig,
    redis_url: str,
    shares: list[list[OutboundPart]],
    *,
    drop: Drop | None = None,
    control_port: int | None = None,
    sim_tps: float = 0.0,
) -> dict[str, Any]:
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
    samples: list[tuple[float, list[tuple[int, int]]]] = []  # (seconds, [(submitted, throttled)])

    async def sample() -> None:
        t0 = time.monotonic()
        dropped = restored = False
        while True:
            now = time.monotonic() - t0
            samples.append((now, [(b.stats.submitted, b.stats.throttled) for b in binds]))
            if drop is not None and control_port is not None:
                if not dropped and now >= drop.start:
                    control(control_port, op="set", values={"tps": drop.tps})
                    dropped = True
                if not restored and now >= drop.end:
                    control(control_port, op="set", values={"tps": sim_tps})
                    restored = True
            await asyncio.sleep(0.1)

    for b, share in zip(binds, shares, strict=True):
        b.enqueue(share)
    sampler = asyncio.create_task(sample())
    await asyncio.gather(*(b.drain(timeout=600) for b in binds))
    sampler.cancel()
    throttled = sum(b.stats.throttled for b in binds)
    learned = [round(b.sender.learner.rate, 1) for b in binds]
    for b in binds:
        await b.stop()
    await client.aclose()
    return {"throttled_seen_by_binds": throttled, "learned_tps": learned, "samples": samples}


def per_second(samples: list[tuple[float, list[tuple[int, int]]]]) -> list[list[tuple[int, int]]]:
    """Each bind's (accepted, throttled) in each whole second of sending, from the samples."""
    out: list[list[tuple[int, int]]] = []
    at = 0
    for second in range(int(samples[-1][0])):
        nxt = next((i for i in range(at, len(samples)) if samples[i][0] >= second + 1), len(samples) - 1)
        row = []
        for (s0, t0), (s1, t1) in zip(samples[at][1], samples[nxt][1], strict=True):
            row.append((s1 - s0 - (t1 - t0), t1 - t0))
        out.append(row)
        at = nxt
    return out


def learning_figures(
    seconds: list[list[tuple[int, int]]], *, cap: float, learning: int, drop: Drop | None
) -> dict[str, Any]:
    """After the learning period (and outside a drop and the 10 s after it): accepted per second
    against the real limit, and the share of submits answered 0x58; with a drop, how long each
    bind took to follow it each way."""
    steady = [
        row
        for k, row in enumerate(seconds)
        if k >= learning and (drop is None or not drop.start - 1 <= k < drop.end + 10)
    ]
    steady = steady[:-1]  # the last whole second may be the queue running dry
    out: dict[str, Any] = {"learning_seconds": learning}
    if steady:
        accepted = [sum(r[i][0] for r in steady) / len(steady) for i in range(len(steady[0]))]
        submits = sum(a + t for row in steady for a, t in row)
        out["steady_seconds"] = len(steady)
        out["steady_utilisation_per_bind"] = [round(a / cap, 3) for a in accepted]
        out["steady_0x58_share"] = round(sum(t for row in steady for _, t in row) / max(1, submits), 4)
    if drop is not None:
        down, up = [], []
        for i in range(len(seconds[0])):
            d = next(
                (
                    k - drop.start
                    for k in range(int(drop.start), int(drop.end))
                    if seconds[k][i][1] < 0.1 * drop.tps
                ),
                None,
            )
            u = next(
                (
                    k + 1 - drop.end
                    for k in range(int(drop.end), len(seconds))
                    if seconds[k][i][0] >= 0.9 * cap
                ),
                None,
            )
            down.append(d)
            up.append(u)
        out["follow_down_s"], out["follow_up_s"] = down, up
    return out


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
    binds: int,
    tps: float,
    seconds: float,
    account_tps: float | None,
    window: int,
    *,
    own_caps: bool = True,
    drop: Drop | None = None,
    learning: int = 10,
    fixed_second: bool = False,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ulak-bench-limits-") as tmp:
        record = Path(tmp) / "record.jsonl"
        stats_file = Path(tmp) / "stats.json"
        args = ["--tps", f"{tps:g}", "--record", str(record), "--stats-file", str(stats_file)]
        args += ["--control-port", "0"] + (["--fixed-second"] if fixed_second else [])
        if account_tps:
            args += ["--account-tps", f"{account_tps:g}"]
        sim, port = start_simulator(Path(tmp), *args)
        control_port = int((Path(tmp) / "sim.port").read_text().split()[1])
        try:
            with RedisServer(Path(tmp) / "redis") as server:
                op = operator(
                    port, binds=binds, tps=tps, account_tps=account_tps, window=window, own_caps=own_caps
                )
                per_cap = min(tps, (account_tps or tps * binds) / binds)
                shares = campaign(op, int(per_cap * seconds))
                t0 = time.perf_counter()
                seen = asyncio.run(
                    send(op, server.url, shares, drop=drop, control_port=control_port, sim_tps=tps)
                )
                elapsed = time.perf_counter() - t0
        finally:
            sim.terminate()
            sim.wait(timeout=30)
        stats = json.loads(stats_file.read_text())
        rows = per_bind(record, per_cap)
        every = sorted(json.loads(line)["mono"] for line in record.open(encoding="utf-8"))
        account_util = utilisation(every, int(account_tps)) if account_tps else None
    utils = [r["utilisation"] for r in rows if r["utilisation"] is not None]
    samples = seen.pop("samples")
    learned = learning_figures(per_second(samples), cap=per_cap, learning=learning, drop=drop)
    return {
        "binds": binds,
        "tps_per_bind": tps,
        "account_tps": account_tps,
        "window": window,
        "bind_caps": own_caps,
        "drop": f"{drop.tps:g}@{drop.start:g}-{drop.end:g}" if drop else None,
        "smsc_counts": "fixed second" if fixed_second else "sliding second",
        "parts": sum(len(s) for s in shares),
        "seconds": round(elapsed, 1),
        "esme_rthrottled": stats["rejected"].get("ESME_RTHROTTLED", 0),
        **seen,
        "utilisation_min": min(utils),
        "utilisation_mean": round(sum(utils) / len(utils), 4),
        "lowest_second_min": min((r["lowest_second"] or 0) for r in rows),
        "account_utilisation": account_util,
        **(learned if not own_caps or drop else {}),
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
        "--undeclared",
        "--no-bind-caps",
        action="store_true",
        help="the binds are not told their cap, only the account's (binds × tps): they learn it",
    )
    parser.add_argument(
        "--drop", type=Drop, help="TPS@START-END: the SMSC's per-bind limit lowered meanwhile"
    )
    parser.add_argument("--fixed-second", action="store_true", help="the SMSC counts per calendar second")
    parser.add_argument("--learning", type=int, default=10, help="seconds left out as the learning period")
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
            binds,
            tps,
            args.seconds,
            args.account_tps,
            args.window,
            own_caps=not args.undeclared,
            drop=args.drop,
            learning=args.learning,
            fixed_second=args.fixed_second,
        )
        if args.matrix:
            result.pop("per_bind")
        print(json.dumps({**result, "machine": machine}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
