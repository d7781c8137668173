"""The integration tests' harness for one bind or an operator's binds against the simulator, and
the operators the ingest tests route to. Test modules import from here, never from each other."""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis
import redis.asyncio

from tests.helpers import SimProcess, sim_bind
from ulak import keys
from ulak.dispatch.message import plan_for, submit_pdus
from ulak.dispatch.part import OutboundPart
from ulak.settings import BindConfig, OperatorConfig

TEXTS = [
    "Kampanya: tum urunlerde %20 indirim",  # GSM, 1 part
    "Şubat kampanyası: %20 indirim, ğüşıöç İĞÜŞÖÇ",  # Turkish single shift, 1 part
    "Привет! Скидка 20% 😀",  # UCS-2, 1 part
    "Uzun mesaj: " + "çok güzel bir kampanya, kaçırmayın! " * 9,  # Turkish, multipart
]


def operator_for(sim: SimProcess, **overrides: Any) -> OperatorConfig:
    bind_fields = {
        k: overrides.pop(k) for k in list(overrides) if k in BindConfig.model_fields and k not in ("name",)
    }
    bind = sim_bind(sim, "b1", **{"window": 20, **bind_fields})
    return OperatorConfig(
        name="op", prefixes=("90",), tps=overrides.pop("tps", 5000), binds=(bind,), **overrides
    )


def campaign(op: OperatorConfig, rows: int, job: str = "job1") -> tuple[list[OutboundPart], int]:
    parts: list[OutboundPart] = []
    for row in range(rows):
        text = TEXTS[row % len(TEXTS)]
        message = plan_for(text, op, reference=row & 0xFF)
        pdus = submit_pdus(message, destination=f"90532{row:07d}", bind=op.binds[0])
        parts += [OutboundPart(job, row, i, len(pdus), pdu) for i, pdu in enumerate(pdus, start=1)]
    return parts, len(parts)


def counters(url: str, job: str = "job1") -> dict[str, int]:
    client = redis.Redis.from_url(url)
    try:
        return {k.decode(): int(v) for k, v in client.hgetall(keys.job_op_counters(job, "op")).items()}
    finally:
        client.close()


def record_keys(sim: SimProcess) -> Counter[tuple[str, int | None]]:
    return Counter((r["dst"], (r["concat"] or [0, 0, 1])[2]) for r in sim.records())


def wait_receipts(url: str, expected: int, timeout: float = 20) -> dict[str, int]:
    from tests.helpers import wait_for

    wait_for(lambda: counters(url).get("receipts", 0) >= expected, timeout=timeout, what="receipts")
    return counters(url)


BIND = BindConfig(name="b", host="127.0.0.1", port=2775, system_id="x", password_env="X")


OPERATORS = (
    OperatorConfig(name="tcell", prefixes=("90532", "90533"), tps=100, binds=(BIND,), max_parts=2),
    OperatorConfig(name="voda", prefixes=("90542",), tps=100, binds=(BIND,), concatenation="sar"),
)
