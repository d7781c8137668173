"""Run one campaign through the cluster: route, plan, hand batches of parts to binds, wait, report.

This is the dispatch path until ingest (Ray Data) and the job actor of the control plane take over the
front and the lifecycle; the batches it hands to binds are the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pyarrow as pa
import redis

from actors.local import Cluster
from cluster.send.pool import BindPool
from ulak import keys, redisclient
from ulak.dispatch.ledger import COUNTERS, LedgerReader
from ulak.dispatch.message import PlanCache, SubmitBodies
from ulak.dispatch.part import OutboundPart, outbound_part
from ulak.dispatch.routing import router_from_operators
from ulak.runtime import paused_gc
from ulak.settings import OperatorConfig
from ulak.text.plan import MessageTooLong

BATCH_PARTS = 500


def job_counters(client: redis.Redis, job_id: str, operators: Sequence[OperatorConfig]) -> dict[str, int]:
    """The campaign's own counters and its *operators*' ledger counters, summed."""
    raw: dict[bytes, bytes] = client.hgetall(keys.job_counters(job_id))  # type: ignore[assignment]
    found = {k.decode(): int(v) for k, v in raw.items()}
    ledgers = {op.name: op.ledger_name for op in operators}
    for name, value in LedgerReader(client, job_id, ledgers).counters().items():
        found[name] = found.get(name, 0) + value
    return {name: found.get(name, 0) for name in ("total", "unroutable", "too_long", *COUNTERS)}


def run_campaign(
    cluster: Cluster,
    table: pa.Table,
    *,
    job_id: str,
    phone_column: str = "phone",
    text_column: str = "text",
    receipt_wait: float = 30.0,
    progress: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, int]:
    """Send every row of *table* (E.164 numbers without '+', and texts); return the job's counters.

    Rows no operator serves count as ``unroutable``; texts over the operator's part limit as
    ``too_long``; everything else ends in the ledger's states. Waits up to *receipt_wait* seconds after
    the last acknowledgement for receipts.
    """
    client = redisclient.client(cluster.redis_url)
    try:
        operators = cluster.settings.operators
        numbers = table.column(phone_column).cast(pa.string())
        texts = table.column(text_column).to_pylist()
        routes = router_from_operators(operators).route(numbers).to_pylist()
        numbers_list = numbers.to_pylist()
        client.hset(keys.job_counters(job_id), mapping={"total": len(texts)})
        plans = PlanCache()
        bodies = SubmitBodies()
        per_operator: dict[int, list[OutboundPart]] = {i: [] for i in range(len(operators))}
        unroutable = too_long = 0
        with paused_gc():  # a part per message, all alive until sent: no collector passes over them
            for row, (number, text, op_index) in enumerate(zip(numbers_list, texts, routes, strict=True)):
                if op_index is None or number is None:
                    unroutable += 1
                    continue
                op = operators[op_index]
                try:
                    message = plans.plan(text, op, row=row)
                except MessageTooLong:
                    too_long += 1
                    continue
                pdus = bodies.parts(message, destination=number, bind=op.binds[0])
                per_operator[op_index] += [
                    outbound_part(job_id, row, i, len(pdus), p) for i, p in enumerate(pdus, 1)
                ]
        client.hincrby(keys.job_counters(job_id), "unroutable", unroutable)
        client.hincrby(keys.job_counters(job_id), "too_long", too_long)
        assert cluster.pool is not None, "the cluster was started without binds"
        names = {i: op.name for i, op in enumerate(operators)}
        queues = {names[i]: parts for i, parts in per_operator.items()}
        _feed(cluster.pool, queues, operators, client=client, job_id=job_id, progress=progress)
        cluster.pool.drain(600.0)
        return _await_receipts(client, job_id, operators, receipt_wait, progress)
    finally:
        client.close()


def _feed(
    pool: BindPool,
    queues: dict[str, list[OutboundPart]],
    operators: Sequence[OperatorConfig],
    *,
    client: redis.Redis,
    job_id: str,
    progress: Callable[[dict[str, int]], None] | None,
) -> None:
    """Hand the parts to the binds a round at a time (``BindPool.feed``, as ``JobRunner`` does)."""
    cursors = dict.fromkeys(queues, 0)
    last_report = 0.0

    def take(name: str) -> list[OutboundPart]:
        start = cursors[name]
        cursors[name] = min(start + BATCH_PARTS, len(queues[name]))
        return queues[name][start : cursors[name]]

    while True:
        waiting = [name for name, parts in queues.items() if cursors[name] < len(parts)]
        if not waiting:
            break
        if not pool.feed(job_id, waiting, take):
            time.sleep(0.02)  # every bind is full: let them drain
        if progress is not None and time.monotonic() - last_report > 0.25:
            progress(job_counters(client, job_id, operators))
            last_report = time.monotonic()


def _await_receipts(
    client: redis.Redis,
    job_id: str,
    operators: Sequence[OperatorConfig],
    timeout: float,
    progress: Callable[[dict[str, int]], None] | None,
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    outcomes = ("delivered", "undelivered", "expired", "rejected", "deleted", "receipt_unknown")
    while True:
        counters = job_counters(client, job_id, operators)
        if progress is not None:
            progress(counters)
        if sum(counters[o] for o in outcomes) >= counters["acked"] or time.monotonic() > deadline:
            return counters
        time.sleep(0.2)
