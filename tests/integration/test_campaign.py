"""A campaign through the real stack: local Ray actors, the ledger in Redis, the simulator over TCP."""

from __future__ import annotations

import bisect
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import redis

from actors.local import Cluster
from scripts.bench.campaign import run_campaign
from tests.helpers import SimProcess, ledger_hash, settings_for, sim_bind, tcell_and_voda, wait_for
from ulak.redis_server import RedisServer
from ulak.settings import BindConfig, OperatorConfig, Settings

TEXTS = [
    "Kampanya: tum urunlerde %20 indirim",
    "Şubat kampanyası: %20 indirim, ğüşıöç İĞÜŞÖÇ",
    "Привет! Скидка 20% 😀",
    "Uzun mesaj: " + "çok güzel bir kampanya, kaçırmayın! " * 9,
]


def campaign_settings(sim: SimProcess, redis_url: str) -> Settings:
    def bind(name: str) -> BindConfig:
        return sim_bind(sim, name)

    return settings_for(redis_url, tcell_and_voda(bind, tps=20000, voda_binds=2))


def test_campaign_over_two_operators_and_four_binds(
    ray_session: Any, sim: SimProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    rows = 50_000  # the dispatch issue asks for 50,000 mixed messages over 2 operators x 2 binds
    phones = [
        (f"90532{i:07d}" if i % 2 else f"90542{i:07d}") if i % 97 else f"44770{i:07d}" for i in range(rows)
    ]
    table = pa.table({"phone": phones, "text": [TEXTS[i % 4] for i in range(rows)]})
    with Cluster(campaign_settings(sim, redis_server.url)) as cluster:
        counters = run_campaign(cluster, table, job_id="c1", receipt_wait=30)
        described = cluster.describe()
    unroutable = sum(1 for i in range(rows) if i % 97 == 0)
    sent = rows - unroutable
    assert counters["total"] == rows
    assert counters["unroutable"] == unroutable
    assert (counters["submitted"], counters["acked"], counters["delivered"]) == (sent, sent, sent)
    assert counters["failed"] == counters["unknown"] == counters["receipts_duplicate"] == 0
    records = sim.records()
    assert len(records) == counters["parts_acked"] == sim.stats()["submit_sm_accepted"]
    assert max(Counter((r["dst"], (r["concat"] or [0, 0, 1])[2]) for r in records).values()) == 1
    assert sorted(described) == ["tcell", "voda"]
    assert all(b["submitted"] > 0 for binds in described.values() for b in binds)  # all four binds worked


def _mean_per_second(times: list[float]) -> float:
    """The time-average of the SMSC's sliding one-second count over the run (sampled every 10 ms).

    For bursty but capped traffic this is the achieved rate; counting only windows that start at a send
    would undercount the windows between bursts.
    """
    times = sorted(times)
    starts = [times[0] + 0.01 * k for k in range(int((times[-1] - 1.0 - times[0]) / 0.01) + 1)]
    counts = [bisect.bisect_left(times, t + 1.0) - bisect.bisect_left(times, t) for t in starts]
    return sum(counts) / len(counts)


# Soak, not default: it asserts an achieved rate (≥ 97 % of the cap), a timing figure. Limits are kept
# whatever the load: a lease is charged until the SMSC *answered* its last PDU (measured from when the
# bind asked for it), so a lagging SMSC cannot count two leases in one second. Seen on this 2-core
# machine: idle, 292–295/s and no ESME_RTHROTTLED in 6 of 6 runs; with the end-to-end benchmark
# saturating both cores beside it, still no ESME_RTHROTTLED but 281/s (up to 15 throttled before;
# BENCHMARKS.md, operator cap). Run with `./scripts/test -m soak`.
@pytest.mark.soak
@pytest.mark.sim_args("--account-tps", "300")
def test_cap_300_over_three_binds_is_kept_and_used(
    ray_session: Any, sim: SimProcess, redis_server: RedisServer
) -> None:
    def bind(name: str) -> BindConfig:
        return sim_bind(sim, name)

    op = OperatorConfig(name="tcell", prefixes=("90532",), tps=300, binds=(bind("a"), bind("b"), bind("c")))
    settings = settings_for(redis_server.url, [op])
    rows = 2400  # eight seconds at the cap
    table = pa.table({"phone": [f"90532{i:07d}" for i in range(rows)], "text": ["Kampanya %20"] * rows})
    with Cluster(settings) as cluster:
        counters = run_campaign(cluster, table, job_id="cap", receipt_wait=30)
    stats = sim.stats()
    assert stats["rejected"].get("ESME_RTHROTTLED", 0) == 0  # the SMSC never had to say slow down
    assert counters["acked"] == rows
    times = sorted(r["mono"] for r in sim.records())
    busiest = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
    assert busiest <= 300  # no sliding second over the cap, seen from the SMSC
    assert _mean_per_second(times) >= 0.97 * 300, _mean_per_second(times)


@pytest.mark.sim_args("--drop-after", "2000", "--dlr-delay", "0.05:0.2")
def test_broken_binds_lose_nothing_and_repeat_nothing(
    ray_session: Any, sim: SimProcess, redis_server: RedisServer
) -> None:
    """Connections dropped every 2,000 PDUs, and once all at a time followed by 2 s of refused binds:
    no message reaches the SMSC twice, none is lost from the books, and exactly the ones whose fate
    is unknown (in flight at a drop) are counted unknown (at-most-once)."""
    import threading

    rows = 20_000
    phones = [f"90532{i:07d}" if i % 2 else f"90542{i:07d}" for i in range(rows)]
    table = pa.table({"phone": phones, "text": ["Kampanya: %20 indirim"] * rows})
    client = redis.Redis.from_url(redis_server.url)

    errors: list[BaseException] = []

    def faults() -> None:
        try:
            wait_for(lambda: sim.stats().get("submit_sm_accepted", 0) > 5000, timeout=60, interval=0.05)
            sim.control(op="refuse_binds", seconds=2)
            sim.control(op="drop")
        except BaseException as exc:
            errors.append(exc)

    chaos = threading.Thread(target=faults)
    chaos.start()
    settings = campaign_settings(sim, redis_server.url)
    with Cluster(settings) as cluster:
        counters = run_campaign(cluster, table, job_id="chaos", receipt_wait=30)
    chaos.join()
    assert not errors, errors
    ledgers = {op.ledger_name for op in settings.operators}  # one: both bind to the same account
    fields = {k: v for name in ledgers for k, v in ledger_hash(client, "rows", "chaos", name).items()}
    states = {int(k): v.decode() for k, v in fields.items() if k.isdigit()}
    client.close()
    stats = sim.stats()
    records = sim.records()
    recorded = Counter(r["dst"] for r in records)
    assert max(recorded.values()) == 1  # nothing repeated
    assert stats["connections_dropped"] >= 3  # the faults did happen (besides the one mass drop)
    assert stats.get("binds_refused", 0) >= 1, stats
    assert counters["submitted"] == counters["acked"] + counters["failed"] + counters["unknown"] == rows
    acked = {phones[r] for r, s in states.items() if s == "a"}
    unknown = {phones[r] for r, s in states.items() if s == "u"}
    assert len(acked) == counters["acked"] and len(unknown) == counters["unknown"] > 0
    assert acked <= set(recorded)  # every acknowledged message is really at the SMSC
    assert set(recorded) <= acked | unknown  # and nothing is there that the books do not allow for
    assert (
        counters["delivered"] + counters["undelivered"] + counters["expired"] + counters["rejected"]
        == counters["acked"]
    )
