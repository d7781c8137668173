"""JobRunner against an in-memory bind pool and a real Redis: no Ray, no sockets.

The pool is the runner's only way to binds (``cluster.send.pool``), so a fake one here drives every path of
the runner's dispatch: rounds of batches, pause and resume taking parts back, a message whose first
part went being finished, a bind dying with parts it may have sent, and the drain's reconcile. The
fake "sends" a part by writing its ack and receipt through the real ledger, and remembers every part
it sent, so a part sent twice or never is caught.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from actors.factories import control_plane
from cluster.jobs.options import JobOptions
from cluster.jobs.record import YES, ledgers_field
from cluster.jobs.states import JobEvent, JobState
from cluster.jobs.store import JobStore
from cluster.send import progress as progress_module
from cluster.send.pool import BindDied, BindRef, Take
from cluster.send.runner import JobRunner
from ingest.collect import ACCEPTED_FILE
from tests.helpers import settings_for, tcell_and_voda, wait_for
from ulak import keys
from ulak.dispatch.ledger import Event, PartAcked, PartUnknown, ReceiptSeen, RedisLedger
from ulak.dispatch.message import plan_for
from ulak.dispatch.part import OutboundPart
from ulak.redis_server import RedisServer
from ulak.refusals import Scope
from ulak.settings import BindConfig, JobsConfig, Settings

TEXTS = ["Kısa mesaj", "Uzun mesaj: " + "çok güzel bir kampanya, kaçırmayın! " * 9]


class FakePool:
    """Binds in memory. Each call sends up to *per_call* parts of every bind (ack and receipt written
    to the real ledger); with *die_after*, the first bind dies once that many parts went, having sent
    its next two parts without a word to the ledger (they are in its send record)."""

    def __init__(
        self, settings: Settings, client: redis.Redis, *, per_call: int, die_after: int | None = None
    ):
        self.queues: dict[BindRef, deque[OutboundPart]] = {
            BindRef(op.name, b.name): deque() for op in settings.operators for b in op.binds
        }
        self.ledgers = {op.name: RedisLedger(client, ledger=op.ledger_name) for op in settings.operators}
        self.per_call = per_call
        self.die_after = die_after
        self.sent: Counter[tuple[int, int]] = Counter()
        self.record: list[PartUnknown] = []  # the dead bind's send record
        self.dead: BindRef | None = None
        self.unwritten: dict[str, list[Event]] = {}  # per operator, as a bind keeps what a write did not take
        self.stalled: set[str] = set()  # operators whose binds cannot reach their SMSC
        self.lock = threading.Lock()
        self._ids = 0

    def _step(self) -> None:
        with self.lock:
            if self.dead is not None:
                raise BindDied(f"bind {self.dead.operator}/{self.dead.bind} died")
            events: dict[str, list[Event]] = {}
            for ref, queue in self.queues.items():
                if ref.operator in self.stalled:
                    continue
                for _ in range(min(self.per_call, len(queue))):
                    p = queue.popleft()
                    self.sent[(p.row, p.part)] += 1
                    self._ids += 1
                    mid = f"{self._ids:x}"
                    events.setdefault(ref.operator, []).extend(
                        [
                            PartAcked(p.job, p.row, p.part, p.parts, "smsc", mid),
                            ReceiptSeen("smsc", mid, "DELIVRD", "000"),
                        ]
                    )
                if (
                    self.die_after is not None
                    and sum(self.sent.values()) >= self.die_after
                    and len(queue) >= 2
                ):
                    # Two parts on the wire, not yet in the ledger; the rest of the queue dies unsent.
                    for p in (queue.popleft(), queue.popleft()):
                        self.sent[(p.row, p.part)] += 1
                        self.record.append(PartUnknown(p.job, p.row, p.part, p.parts))
                    queue.clear()
                    self.dead, self.die_after = ref, None
            for op, batch in events.items():
                self.unwritten.setdefault(op, []).extend(batch)
            for op in list(self.unwritten):
                self.ledgers[op].apply(self.unwritten[op])  # Redis away: they stay for the next write
                del self.unwritten[op]
            if self.dead is not None:
                raise BindDied(f"bind {self.dead.operator}/{self.dead.bind} died")

    def feed(
        self, job: str, operators: list[str], take: Take, *, weight: float = 1.0, scope: Scope | None = None
    ) -> int:
        self._step()
        fed = 0
        for ref, queue in self.queues.items():
            if ref.operator in operators and len(queue) < 1000:
                chunk = take(ref.operator)
                if chunk:
                    queue.extend(chunk)
                    fed += 1
        return fed

    def enqueue(self, ref: BindRef, parts: list[OutboundPart], *, weight: float = 1.0) -> None:
        self.queues[ref].extend(parts)

    def withdraw(self, job: str) -> list[tuple[BindRef, list[OutboundPart]]]:
        self._step()
        taken = [(ref, list(q)) for ref, q in self.queues.items()]
        for q in self.queues.values():
            q.clear()
        return taken

    def pending(self, job: str) -> int:
        self._step()
        return sum(len(q) for q in self.queues.values())

    def queued(self, job: str) -> int:
        return self.pending(job)

    def probe(self) -> tuple[list[BindRef], list[BindRef]]:
        dead = [self.dead] if self.dead is not None else []
        return dead, [r for r in self.queues if r not in dead]

    def settle_dead(self, ref: BindRef) -> int:
        self.ledgers[ref.operator].apply(list(self.record))
        return len(self.record)

    def recover(self, *, timeout: float = 2.0) -> tuple[list[BindRef], list[BindRef]]:
        return self.replace_dead(), []

    def replace_dead(self) -> list[BindRef]:
        dead, _ = self.probe()
        for ref in dead:
            self.settle_dead(ref)
        self.dead = None
        return dead

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for ref in self.queues:
            down = ref.operator in self.stalled
            out.setdefault(ref.operator, []).append(
                {
                    "bind": ref.bind,
                    "state": "reconnecting" if down else "bound",
                    "last_error": "[Errno 111] Connection refused" if down else "",
                }
            )
        return out

    def close(self) -> None:
        pass


def _settings(url: str, tmp_path: Path) -> Settings:
    def bind(name: str) -> BindConfig:
        return BindConfig(name=name, host="127.0.0.1", port=1, system_id="x", password_env="X")

    jobs = JobsConfig(data_dir=tmp_path / "jobs", receipt_wait=5, batch_rows=50)
    return settings_for(url, tcell_and_voda(bind, tps=100), jobs=jobs)


def _job(settings: Settings, client: redis.Redis, tmp_path: Path, rows: int) -> tuple[str, int]:
    """A prepared job of *rows* messages (one or three parts), as ingest leaves it."""
    ops = {op.name: op for op in settings.operators}
    table: dict[str, list[Any]] = {"row": [], "msisdn": [], "operator": [], "text": [], "parts": []}
    for row in range(1, rows + 1):
        name = "tcell" if row % 3 else "voda"
        text = TEXTS[row % 2]
        table["row"].append(row)
        table["msisdn"].append(f"{ops[name].prefixes[0]}{row:07d}")
        table["operator"].append(name)
        table["text"].append(text)
        table["parts"].append(plan_for(text, ops[name], reference=0).parts)
    directory = tmp_path / "job"
    directory.mkdir()
    pq.write_table(pa.table(table), directory / ACCEPTED_FILE)
    store = JobStore(client)
    store.create("j1", options=JobOptions(text_column="text"), source="test", directory=directory)
    store.update("j1", prepared=YES, ledgers=ledgers_field(settings.operators))
    client.hset(keys.job_counters("j1"), mapping={"rows": rows, "accepted": rows})
    store.transition("j1", JobEvent.PREPARED)
    return "j1", sum(table["parts"])


def _run(settings: Settings, url: str, job: str, pool: Any) -> tuple[list[JobState], threading.Thread]:
    result: list[JobState] = []
    runner = JobRunner(job, settings=settings, redis_url=url, namespace="test", poll=0.02, pool=pool)
    thread = threading.Thread(target=lambda: result.append(runner.run()), daemon=True)
    thread.start()
    return result, thread


@pytest.mark.parametrize("die_after", [None, 150], ids=["pause-resume", "bind-dies"])
def test_pauses_and_a_dying_bind_lose_nothing_and_send_nothing_twice(
    redis_client: redis.Redis, redis_server_url: str, tmp_path: Path, die_after: int | None
) -> None:
    settings = _settings(redis_server_url, tmp_path)
    job, parts = _job(settings, redis_client, tmp_path, rows=300)
    pool = FakePool(settings, redis_client, per_call=3, die_after=die_after)
    plane = control_plane(settings, redis_url=redis_server_url, namespace="test")  # makes no actor here
    result, thread = _run(settings, redis_server_url, job, pool)
    store = JobStore(redis_client)
    for at in (60, 200, 350):  # pause while sending, resume: three times over the run
        wait_for(lambda at=at: sum(pool.sent.values()) >= at, timeout=30, what=f"{at} parts sent")
        plane.pause(job)
        wait_for(lambda: all(not q for q in pool.queues.values()), timeout=10, what="parts taken back")
        plane.resume(job)
    thread.join(timeout=60)
    assert result == [JobState.DONE]
    counters = store.counters(job)
    assert max(pool.sent.values()) == 1  # nothing sent twice
    unknown = {(e.row, e.part) for e in pool.record}
    assert len(pool.sent) == parts  # every part sent once
    assert counters["parts_acked"] + counters["parts_unknown"] == parts
    assert counters["parts_unknown"] == len(unknown) == (2 if die_after else 0)
    assert counters["submitted"] == counters["accepted"] == 300
    assert counters["acked"] + counters["unknown"] == 300
    assert [h["state"] for h in store.view(job)["history"]].count("paused") == 3


def test_a_redis_restart_mid_job_fails_nothing(tmp_path: Path) -> None:
    # Its own Redis, with AOF, stopped (SIGTERM: a clean shutdown) and started again on its port.
    with RedisServer(tmp_path / "redis", appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        settings = _settings(server.url, tmp_path)
        job, parts = _job(settings, client, tmp_path, rows=300)
        pool = FakePool(settings, client, per_call=3)
        result, thread = _run(settings, server.url, job, pool)
        wait_for(lambda: sum(pool.sent.values()) >= 150, timeout=30, what="150 parts sent")
        server.stop()
        time.sleep(2.0)  # the outage itself: the runner meets it in every call it makes
        server.start()
        thread.join(timeout=90)
        assert result == [JobState.DONE]
        assert max(pool.sent.values()) == 1 and len(pool.sent) == parts
        counters = JobStore(client).counters(job)
        assert counters["parts_acked"] == parts and counters["acked"] == 300
        client.close()


def test_a_job_that_cannot_send_says_which_operator_and_why(
    redis_client: redis.Redis, redis_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress_module, "STALL_SECONDS", 1.0)
    settings = _settings(redis_server_url, tmp_path)
    job, parts = _job(settings, redis_client, tmp_path, rows=300)
    pool = FakePool(settings, redis_client, per_call=3)
    store = JobStore(redis_client)
    result, thread = _run(settings, redis_server_url, job, pool)
    wait_for(lambda: sum(pool.sent.values()) >= 50, timeout=30, what="50 parts sent")
    assert store.view(job)["waiting"] is None
    pool.stalled = {"tcell", "voda"}  # every SMSC unreachable: nothing goes out
    waiting = wait_for(lambda: store.view(job)["waiting"], timeout=30, what="the job to say why it waits")
    assert waiting == (
        "tcell down: t1: reconnecting ([Errno 111] Connection refused); t2: reconnecting ([Errno 111] "
        "Connection refused); voda down: v1: reconnecting ([Errno 111] Connection refused)"
    )
    pool.stalled = set()
    thread.join(timeout=60)
    assert result == [JobState.DONE]
    assert store.view(job)["waiting"] is None  # said while it lasted, gone once it moved
    assert max(pool.sent.values()) == 1 and len(pool.sent) == parts
