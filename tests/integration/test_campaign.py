"""A campaign through the real stack: local Ray actors, the ledger in Redis, the simulator over TCP."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import SecretStr

from cluster.campaign import run_campaign
from cluster.local import Cluster
from tests.helpers import SimProcess
from ulak.redis_server import RedisServer
from ulak.settings import BindConfig, OperatorConfig, RayConfig, RedisConfig, Settings

TEXTS = [
    "Kampanya: tum urunlerde %20 indirim",
    "Şubat kampanyası: %20 indirim, ğüşıöç İĞÜŞÖÇ",
    "Привет! Скидка 20% 😀",
    "Uzun mesaj: " + "çok güzel bir kampanya, kaçırmayın! " * 9,
]


def settings_for(sim: SimProcess, redis_url: str) -> Settings:
    def bind(name: str) -> BindConfig:
        return BindConfig(
            name=name,
            host="127.0.0.1",
            port=sim.port,
            system_id="test",
            password_env="UNUSED",
            password=SecretStr("secret"),
            window=50,
        )

    return Settings(
        redis=RedisConfig(url=redis_url),
        ray=RayConfig(),
        operators=(
            OperatorConfig(name="tcell", prefixes=("90532",), tps=20000, binds=(bind("t1"), bind("t2"))),
            OperatorConfig(name="voda", prefixes=("90542",), tps=20000, binds=(bind("v1"), bind("v2"))),
        ),
    )


def test_campaign_over_two_operators_and_four_binds(
    ray_session: Any, sim: SimProcess, redis_server: RedisServer, tmp_path: Path
) -> None:
    rows = 2000
    phones = [
        (f"90532{i:07d}" if i % 2 else f"90542{i:07d}") if i % 97 else f"44770{i:07d}" for i in range(rows)
    ]
    table = pa.table({"phone": phones, "text": [TEXTS[i % 4] for i in range(rows)]})
    with Cluster(settings_for(sim, redis_server.url)) as cluster:
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
