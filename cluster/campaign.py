"""Run one campaign through the cluster: route, plan, hand batches of parts to binds, wait, report.

This is the dispatch path until ingest (Ray Data) and the job actor of the control plane take over the
front and the lifecycle; the batches it hands to binds are the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import count
from typing import Any

import pyarrow as pa
import ray
import redis

from cluster.local import Cluster
from ulak import keys
from ulak.dispatch.batch import pack_parts
from ulak.dispatch.bind import OutboundPart, outbound_part
from ulak.dispatch.ledger import COUNTERS
from ulak.dispatch.message import PlanCache, SubmitBodies
from ulak.dispatch.routing import router_from_operators
from ulak.runtime import paused_gc
from ulak.text.plan import MessageTooLong

BATCH_PARTS = 500
MAX_BACKLOG = 4000  # parts waiting per bind before the runner holds back


def job_counters(client: redis.Redis, job_id: str) -> dict[str, int]:
    raw: dict[bytes, bytes] = client.hgetall(keys.job_counters(job_id))  # type: ignore[assignment]
    found = {k.decode(): int(v) for k, v in raw.items()}
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
    client = redis.Redis.from_url(cluster.redis_url)
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
        _feed(cluster, operators, per_operator=per_operator, client=client, job_id=job_id, progress=progress)
        ray.get([h.drain.remote(600.0) for hs in cluster.binds.values() for h in hs])
        return _await_receipts(client, job_id, receipt_wait, progress)
    finally:
        client.close()


def _feed(
    cluster: Cluster,
    operators: Any,
    *,
    per_operator: dict[int, list[OutboundPart]],
    client: redis.Redis,
    job_id: str,
    progress: Callable[[dict[str, int]], None] | None,
) -> None:
    """Hand the parts to the binds: each round gives a batch to every bind with room and asks the
    full ones how far they got, all in one round trip (as ``JobRunner`` does)."""
    cursors = dict.fromkeys(per_operator, 0)
    backlog: dict[Any, int] = {}
    last_report = 0.0
    for turn in count():
        if not any(cursors[i] < len(parts) for i, parts in per_operator.items()):
            break
        calls = []
        polls = []
        for i, parts in per_operator.items():
            handles = cluster.binds[operators[i].name]
            for k in range(len(handles)):
                handle = handles[(turn + k) % len(handles)]
                if backlog.get(handle, 0) > MAX_BACKLOG:
                    polls.append((handle, handle.backlog.remote()))
                elif cursors[i] < len(parts):
                    batch = parts[cursors[i] : cursors[i] + BATCH_PARTS]
                    cursors[i] += len(batch)
                    calls.append((handle, handle.enqueue.remote(pack_parts(batch))))
        answers = calls + polls
        for (handle, _), queued in zip(answers, ray.get([ref for _, ref in answers]), strict=True):
            backlog[handle] = queued
        if not calls:
            time.sleep(0.02)  # every bind is full: let them drain
        if progress is not None and time.monotonic() - last_report > 0.25:
            progress(job_counters(client, job_id))
            last_report = time.monotonic()


def _await_receipts(
    client: redis.Redis, job_id: str, timeout: float, progress: Callable[[dict[str, int]], None] | None
) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    outcomes = ("delivered", "undelivered", "expired", "rejected", "deleted", "receipt_unknown")
    while True:
        counters = job_counters(client, job_id)
        if progress is not None:
            progress(counters)
        if sum(counters[o] for o in outcomes) >= counters["acked"] or time.monotonic() > deadline:
            return counters
        time.sleep(0.2)
