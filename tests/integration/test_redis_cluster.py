"""A campaign through a real 3-master Redis Cluster (the bundled redis-server in cluster mode).

Ulak's keys are hash-tagged so that every ledger call and every MULTI is one slot: what binds write
is in its operator's slot, a job's own keys in the job's (``ulak.keys``). This runs a two-operator
campaign through the API on such a cluster, with the operators' ledgers on different shards, a
pause and resume and a receipt webhook, and holds it to what a single Redis gives: every row in one
final state, each part once at the SMSC, the report, the webhook's events (each row's outcome once,
the final state after them), and a purge that leaves no key behind on any shard.
"""

from __future__ import annotations

import csv
import http.server
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import SimProcess, crash_redis, start_redis_cluster, wait_for
from tests.integration.stack import (
    assert_adds_up,
    assert_report_agrees,
    campaign_csv,
    no_duplicates,
    post_job,
    running_stack,
    wait_state,
)
from ulak import keys, redisclient
from ulak.consent import ONAY, Consent, Consents
from ulak.optouts import OptOuts
from ulak.redis_server import RedisServer
from ulak.refusals import NO_CONSENT, OPTED_OUT, RowCheck, Scope

PASSWORD = "cluster-test"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    servers = start_redis_cluster(tmp_path_factory.mktemp("cluster"), masters=3, password=PASSWORD)
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def _url(servers: list[RedisServer]) -> str:
    # One node is enough to find the rest; two, so that the one named first may be down.
    return redisclient.cluster_url([f"127.0.0.1:{s.port}" for s in servers[:2]], password=PASSWORD)


class _Hook:
    """A webhook receiver on 127.0.0.1: keeps every body in arrival order."""

    def __init__(self) -> None:
        bodies: list[dict[str, Any]] = []

        class Receiver(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies = bodies
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def events(self) -> list[dict[str, Any]]:
        """Every event once (a repeated delivery id is a retry), in the order they came."""
        seen: dict[str, list[dict[str, Any]]] = {}
        for body in self.bodies:
            seen.setdefault(body["delivery"], body["events"])
        return [e for batch in seen.values() for e in batch]


def _keys_everywhere(servers: list[RedisServer], pattern: str) -> list[bytes]:
    found: list[bytes] = []
    for server in servers:
        node = redis.Redis(port=server.port, password=PASSWORD)
        found += list(node.scan_iter(match=pattern, count=1000))
        node.close()
    return found


def test_a_campaign_through_a_redis_cluster(
    ray_session: Any, cluster: list[RedisServer], tmp_path: Path
) -> None:
    client = redisclient.client(_url(cluster))
    # The two operators' state is on different shards: a real spread, not one node doing it all.
    nodes = {op: client.get_node_from_key(keys.receipt_stats(op)).port for op in ("tcell", "voda")}  # type: ignore[attr-defined]
    assert nodes["tcell"] != nodes["voda"], nodes

    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    a = campaign_csv(first, "905325", 400, bad_every=40, long_every=15)
    b = campaign_csv(second, "905425", 400, long_every=25)
    path = tmp_path / "both.csv"
    lines = first.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(
        "".join(lines + second.read_text(encoding="utf-8").splitlines(keepends=True)[1:]), "utf-8"
    )
    accepted = a["accepted"] + b["accepted"]

    hook = _Hook()
    # Two SMSC accounts, one an operator: two ledgers (operators sharing an account share one).
    sim = SimProcess(
        tmp_path, "--account", "tc:secret", "--account", "vf:secret", "--seed", "9", "--dlr-delay", "0.05:0.2"
    )
    try:
        accounts = {"tcell": "tc", "voda": "vf"}
        url = _url(cluster)
        with running_stack(tmp_path, sim, tps=300, name="cluster", redis_url=url, accounts=accounts) as stack:
            with stack.client() as http_client:
                created = post_job(http_client, path, template="Selam {ad} {tutar}", webhook_url=hook.url)
                assert created.status_code == 202, created.text
                job_id = created.json()["id"]

                def sent(at: int) -> bool:
                    view = http_client.get(f"/v1/jobs/{job_id}").json()
                    return bool(view["counts"]["submitted"] >= at)

                wait_for(lambda: sent(100), timeout=60, what="100 rows sent")
                assert http_client.post(f"/v1/jobs/{job_id}/pause").status_code == 200
                wait_state(http_client, job_id, "paused")
                assert http_client.post(f"/v1/jobs/{job_id}/resume").status_code == 200
                view = wait_state(http_client, job_id, "done", "failed", timeout=180)
                report = http_client.get(f"/v1/jobs/{job_id}/report", params={"format": "csv"}).text
                records = stack.records("9053") + stack.records("9054")
                wait_for(
                    lambda: {"type": "state", "state": "done"} in hook.events(),
                    timeout=30,
                    what="the final event",
                )
                events = hook.events()
                assert _keys_everywhere(cluster, f"*{job_id}*")  # its keys are there, on the shards

                def purged() -> bool:
                    http_client.post("/v1/jobs/purge", json={"older_than_days": 1e-9})
                    return http_client.get(f"/v1/jobs/{job_id}").status_code == 404

                wait_for(purged, timeout=10, what="the job to be purged")
            assert not _keys_everywhere(cluster, f"*{job_id}*")  # every shard forgot it
    finally:
        hook.server.shutdown()
        client.close()

    assert view["state"] == "done", view
    assert_adds_up(view)
    c = view["counts"]
    assert (c["rows"], c["accepted"], c["acked"]) == (800, accepted, accepted)
    assert set(view["operators"]) == {"tcell", "voda"}
    no_duplicates(records)
    assert len(records) == view["parts"]["total"] == view["parts"]["acked"]
    rows = list(csv.DictReader(io.StringIO(report)))
    assert len(rows) == accepted and {r["status"] for r in rows} == {"acked"}
    assert {r["operator"] for r in rows} == {"tcell", "voda"} and all(r["message_ids"] for r in rows)

    receipts = [e for e in events if e["type"] == "receipt"]
    by_row = Counter(e["row"] for e in receipts)
    assert len(receipts) == len(by_row) == accepted, (  # each row's outcome once
        len(receipts),
        len(by_row),
        min(by_row),
        max(by_row),
        Counter(b["delivery"].partition("/")[0] for b in hook.bodies),
        [r for r, n in by_row.items() if n > 1][:10],
    )
    outcomes = Counter(e["outcome"] for e in receipts)
    assert sum(outcomes.values()) == sum(view["receipts"][k] for k in outcomes)
    done_at = events.index({"type": "state", "state": "done"})
    assert done_at == len(events) - 1, events[done_at:]  # the final state after every outcome


def test_a_shard_that_goes_away_is_a_503_until_it_is_back(
    ray_session: Any, cluster: list[RedisServer], tmp_path: Path
) -> None:
    sim = SimProcess(tmp_path, "--account", "tc:secret", "--account", "vf:secret", "--seed", "3")
    accounts = {"tcell": "tc", "voda": "vf"}
    with running_stack(
        tmp_path, sim, tps=300, name="shard", redis_url=_url(cluster), accounts=accounts
    ) as stack:
        path = tmp_path / "small.csv"
        campaign_csv(path, "905325", 20)
        with stack.client() as http_client:
            job_id = post_job(http_client, path, template="Selam {ad}").json()["id"]
            wait_state(http_client, job_id, "done")
            client = redisclient.client(_url(cluster))
            port = client.get_node_from_key(keys.job(job_id)).port  # type: ignore[attr-defined]
            client.close()
            shard = next(s for s in cluster if s.port == port)
            shard.kill()  # the shard that holds the job's record, with no replica to take over
            try:
                answer = wait_for(
                    lambda: (r := http_client.get(f"/v1/jobs/{job_id}")).status_code != 200 and r,
                    timeout=30,
                    what="the API to notice the shard is gone",
                )
                assert answer.status_code == 503 and answer.json()["code"] == "redis_unavailable", answer.text
            finally:
                shard.start()  # its nodes.conf brings it back with its slots
            wait_for(
                lambda: http_client.get(f"/v1/jobs/{job_id}").status_code == 200,
                timeout=60,
                what="the job to be readable again",
            )
            assert http_client.get(f"/v1/jobs/{job_id}").json()["state"] == "done"


def _two_accounts(tmp_path: Path, *, seed: int) -> tuple[SimProcess, dict[str, str]]:
    """The simulator with an account per operator, and which operator binds with which."""
    sim = SimProcess(tmp_path, "--account", "tc:secret", "--account", "vf:secret", "--seed", str(seed))
    return sim, {"tcell": "tc", "voda": "vf"}


def _both_operators(
    tmp_path: Path, prefix_a: str, prefix_b: str, rows: int
) -> tuple[Path, dict[str, int], dict[str, int]]:
    """One file with *rows* rows for each operator (some long), and what each part should become."""
    path, parts = tmp_path / "both.csv", tmp_path / "second.csv"
    a = campaign_csv(path, prefix_a, rows, long_every=20)
    b = campaign_csv(parts, prefix_b, rows, long_every=30)
    path.write_text(path.read_text("utf-8") + "".join(parts.read_text("utf-8").splitlines(True)[1:]), "utf-8")
    return path, a, b


def test_a_job_outlives_the_crash_of_the_shard_its_binds_write_to(
    ray_session: Any, cluster: list[RedisServer], tmp_path: Path
) -> None:
    """A shard dies (SIGKILL, its append-only file cut back a second, as a machine crash leaves it)
    while a job sends, and stays away past the cluster's node timeout, so that the other shards
    call the cluster down too; then it comes back. The job ends by itself, each part at most once
    at the SMSC, and every row where the SMSC says it is."""
    sim, accounts = _two_accounts(tmp_path, seed=5)
    path, a, b = _both_operators(tmp_path, "905326", "905426", 400)
    url = _url(cluster)
    client = redisclient.client(url)
    port = client.get_node_from_key(keys.receipt_stats("tcell")).port  # type: ignore[attr-defined]
    client.close()
    shard = next(s for s in cluster if s.port == port)
    with running_stack(tmp_path, sim, tps=100, name="crash", redis_url=url, accounts=accounts) as stack:
        with stack.client() as http:
            job_id = post_job(http, path, template="Selam {ad}").json()["id"]
            sizes: list[tuple[float, int]] = []  # (when, the shard's file size): what "a second ago" was

            def sent(at: int) -> bool:
                now = time.monotonic()
                sizes.append((now, shard.aof.stat().st_size))
                # ...and a size of the file from at least a second ago to cut it back to: without
                # one (a fast machine sends 200 rows within a second) the cut emptied the shard, a
                # loss no journal covers, and the job rightly sent again what it no longer knew of.
                if sizes[0][0] > now - 1.0:
                    return False
                return bool(http.get(f"/v1/jobs/{job_id}").json()["counts"]["submitted"] >= at)

            wait_for(lambda: sent(200), timeout=60, what="200 rows sent, a second after the first look")
            keep = max(size for at, size in sizes if at <= time.monotonic() - 1.0)
            assert keep > 0  # the shard's file had the cluster's own state in it by then
            # Away past the node timeout (3 s): the other shards call the whole cluster down.
            cut = crash_redis(shard, keep_bytes=keep, down=4.0)
            view = wait_state(http, job_id, "done", "failed", timeout=240)
            report = http.get(f"/v1/jobs/{job_id}/report", params={"format": "csv"}).text
        records = stack.records("905326") + stack.records("905426")
    assert view["state"] == "done", view
    assert_adds_up(view)
    c = view["counts"]
    assert (c["accepted"], c["pending"], c["in_flight"]) == (a["accepted"] + b["accepted"], 0, 0)
    no_duplicates(records)
    rows = list(csv.DictReader(io.StringIO(report)))
    assert len(rows) == c["accepted"] and not {r["status"] for r in rows} - {"acked", "unknown"}
    assert_report_agrees(rows, records, {"cut": cut})


def test_a_job_outlives_its_record_losing_the_last_seconds(
    ray_session: Any, cluster: list[RedisServer], tmp_path: Path
) -> None:
    """The shard that holds the job's own record crashes while the job sends, its file cut back to
    a time when the job was still being prepared: Redis comes back saying the job is not prepared
    and has not begun sending, while the binds have sent parts of it. The runner, which outlived
    the crash, writes again what it had written (and says so): it neither prepares the job again
    nor sends anything twice. (Before, it did both, and every part reached the SMSC twice.)"""
    sim, accounts = _two_accounts(tmp_path, seed=6)
    path, a, b = _both_operators(tmp_path, "905327", "905427", 300)
    url = _url(cluster)
    client = redisclient.client(url)
    with running_stack(tmp_path, sim, tps=100, name="record", redis_url=url, accounts=accounts) as stack:
        with stack.client() as http:
            job_id = post_job(http, path, template="Selam {ad}").json()["id"]
            port = client.get_node_from_key(keys.job(job_id)).port  # type: ignore[attr-defined]
            shard = next(s for s in cluster if s.port == port)
            before: list[int] = []  # the shard's file sizes while the job was still being prepared

            def sending() -> bool:
                # The size, then the record's state read from Redis itself (the API may answer with a
                # view up to api.view_max_age old): states only move on, so a job still being
                # prepared now was so when the size was taken.
                size = shard.aof.stat().st_size
                if client.hget(keys.job(job_id), "state") in (b"queued", b"ingesting"):
                    before.append(size)
                return bool(http.get(f"/v1/jobs/{job_id}").json()["counts"]["submitted"] >= 150)

            wait_for(sending, timeout=60, interval=0.005, what="150 rows sent")
            assert before, "the job was never seen being prepared: nothing to cut back to"
            cut = crash_redis(shard, keep_bytes=before[-1], down=4.0)
            assert cut > 0
            view = wait_state(http, job_id, "done", "failed", timeout=240)
            report = http.get(f"/v1/jobs/{job_id}/report", params={"format": "csv"}).text
        records = stack.records("905327") + stack.records("905427")
    client.close()
    assert view["state"] == "done", view
    assert "sending" in [h["state"] for h in view["history"]]
    assert_adds_up(view)
    c = view["counts"]
    assert (c["accepted"], c["pending"], c["in_flight"]) == (a["accepted"] + b["accepted"], 0, 0)
    no_duplicates(records)
    rows = list(csv.DictReader(io.StringIO(report)))
    assert len(rows) == c["accepted"] and not {r["status"] for r in rows} - {"acked", "unknown"}
    assert_report_agrees(rows, records, {"cut": cut})


def test_a_batch_is_checked_against_the_lists_on_their_shards(cluster: list[RedisServer]) -> None:
    """``RowCheck`` on a cluster (whose lists live on different shards): the commands go through the
    cluster client's own pipeline, with the same answers as on one Redis."""
    client = redisclient.client(_url(cluster))
    numbers = [f"90532222{i:04d}" for i in range(500)]
    OptOuts(client).add(numbers[:2], brand=None, source="api")
    OptOuts(client).add(numbers[5:6], brand="acme", source="api")
    Consents(client).record([Consent(n, ONAY, 1.0, "x") for n in numbers[:400]], brand="acme")
    got = RowCheck(client, Scope(brand="acme", commercial=True)).refused(numbers)
    assert got == {0: OPTED_OUT, 1: OPTED_OUT, 5: OPTED_OUT, **dict.fromkeys(range(400, 500), NO_CONSENT)}
    client.close()
