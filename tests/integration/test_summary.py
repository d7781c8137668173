"""A campaign's summary from constructed data with known answers: 2,400 recipients over two operators,
10 refused by the SMSC, 2,000 people clicking (2,100 clicks), 500 conversions worth 12.50 each. The
summary, its CSV and the CLI say exactly that: 500 / 2,000 = 25 %, cost at each operator's price,
ROI, progress to the goal, and a time series that adds up to the totals."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cluster.jobs.store import JobStore
from cluster.reports.snapshot import current_outcomes
from tests.helpers import ApiProcess, SimProcess, wait_for
from tests.integration.stack import post_job, running_stack, wait_state
from ulak import keys
from ulak.jobfiles import JobDir
from ulak.redis_server import free_port

PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
ROWS = 1200  # per operator


def _file(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["telefon", "ad"])
        for prefix in ("905329", "905429"):  # tcell's, then voda's
            for i in range(ROWS):
                w.writerow([f"+{prefix}{i:06d}", f"Ada {i}"])


def _marked(table: pa.Table, at: int) -> pa.Table:
    """*table* with the status of its row *at* (a position, or -1: the last) "marked"."""
    status = table["status"].to_pylist()
    status[at] = "marked"
    return table.set_column(table.schema.get_field_index("status"), "status", [status])


def _chunk(folder: Path, index: int, table: pa.Table) -> None:
    """A snapshot's chunk, written whole (as its taker does)."""
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"{index:05d}.tmp")
    (folder / f"{index:05d}.tmp").rename(folder / f"{index:05d}.parquet")


def test_the_summary_says_exactly_what_happened(ray_session: Any, tmp_path: Path) -> None:
    # voda's last ten numbers are refused by the SMSC as invalid destinations.
    sim = SimProcess(tmp_path, "--seed", "2", "--reject-prefix", "90542900119")
    port = free_port()
    with running_stack(
        tmp_path, sim, tps=600, name="summary", links={"port": port, "scanner_seconds": 0}
    ) as stack:
        redirect = ApiProcess(tmp_path, stack.config_dir, stack.env, port=port, module="api.redirect")
        try:
            path = tmp_path / "summary.csv"
            _file(path)
            with stack.client() as http:
                created = post_job(
                    http,
                    path,
                    name="Aralık",
                    template="Merhaba {ad}, indirim: {link}",
                    link_url="https://shop.example/aralik",
                    goal_conversions="1000",
                    goal_value="5000",
                )
                assert created.status_code == 202, created.text
                job_id = created.json()["id"]
                assert wait_state(http, job_id, "done", "failed")["state"] == "done"
                wait_for(
                    lambda: http.get(f"/v1/jobs/{job_id}").json()["receipts"]["awaiting"] == 0,
                    timeout=30,
                    what="every receipt",
                )
                # The job's actor takes the summary's snapshot as the job ends, before anyone asks:
                # the first read is as quick as the next (issue 31: 24 s for a 1M-row job).
                wait_for(
                    lambda: stack.redis.hget(keys.job(job_id), "outcomes_stamp") is not None,
                    timeout=30,
                    what="the outcomes snapshot",
                )
                # The report of an ended job reads its rows' outcomes from that snapshot: the same
                # bytes as from every row's ledger (the snapshot made stale, it reads those).
                from_snapshot = http.get(f"/v1/jobs/{job_id}/report").text
                stamp = stack.redis.hget(keys.job(job_id), "outcomes_stamp")
                stack.redis.hdel(keys.job(job_id), "outcomes_stamp")
                assert http.get(f"/v1/jobs/{job_id}/report").text == from_snapshot
                # A report asked for while a snapshot is being taken (its lock held, here by the
                # test, with the token naming its folder) follows it: it reads each chunk as it is
                # written rather than every row's ledger beside it, and ends once the snapshot is
                # named (its rows marked here to tell where they came from).
                folder = tmp_path / "jobs" / job_id / "outcomes"
                files = stack.redis.hget(keys.job(job_id), "outcomes_files").decode()
                token, chunks = files.split()
                taken = pa.concat_tables(
                    [pq.read_table(folder / token / f"{i:05d}.parquet") for i in range(int(chunks))]
                )
                assert taken.num_rows == 2 * ROWS
                first, rest = _marked(taken.slice(0, 1000), 0), _marked(taken.slice(1000), -1)
                stack.redis.set(keys.job_summary_lock(job_id), "following", ex=60)
                _chunk(folder / "following", 0, first)
                with ThreadPoolExecutor(1) as pool:
                    waiting = pool.submit(lambda: http.get(f"/v1/jobs/{job_id}/report").text)
                    with pytest.raises(FutureTimeout):
                        waiting.result(timeout=1.5)  # its next chunk is not there yet
                    # It waits in its body: its client has the answer and the header line meanwhile
                    # (then a batch of rows as soon as the chunks hold it).
                    with http.stream("GET", f"/v1/jobs/{job_id}/report") as early:
                        assert early.status_code == 200
                        assert next(early.iter_lines()).startswith('"row","msisdn","operator"')
                    _chunk(folder / "following", 1, rest)
                    stack.redis.hset(
                        keys.job(job_id), mapping={"outcomes_stamp": stamp, "outcomes_files": "following 2"}
                    )
                    stack.redis.delete(keys.job_summary_lock(job_id))
                    marked = list(csv.DictReader(io.StringIO(waiting.result(timeout=60))))
                assert [marked[0]["status"], marked[-1]["status"]] == ["marked", "marked"]
                assert len(marked) == 2 * ROWS
                assert [r["status"] for r in marked[1:-1]] == taken["status"].to_pylist()[1:-1]
                stack.redis.hset(keys.job(job_id), "outcomes_files", files)
                # A taker that dies (its lock let go, no snapshot named): what it wrote is read, the
                # rest from the ledgers.
                stack.redis.hdel(keys.job(job_id), "outcomes_stamp")
                stack.redis.set(keys.job_summary_lock(job_id), "dying", ex=60)
                _chunk(folder / "dying", 0, first)
                with ThreadPoolExecutor(1) as pool:
                    waiting = pool.submit(lambda: http.get(f"/v1/jobs/{job_id}/report").text)
                    with pytest.raises(FutureTimeout):
                        waiting.result(timeout=1.5)
                    stack.redis.delete(keys.job_summary_lock(job_id))
                    half = waiting.result(timeout=60)
                assert half.replace('"marked"', '"acked"', 1) == from_snapshot
                # Nor for ever: a report waits for a chunk up to its wait, then reads the ledgers.
                stack.redis.set(keys.job_summary_lock(job_id), "stuck", ex=60)
                directory = JobDir.local_dir(tmp_path / "jobs" / job_id)
                follower = current_outcomes(JobStore(stack.redis), job_id, directory, wait=0.5)
                assert follower is not None and list(follower) == []
                stack.redis.delete(keys.job_summary_lock(job_id))
                assert http.get(f"/v1/jobs/{job_id}/report").text == from_snapshot
                report = list(csv.DictReader(io.StringIO(from_snapshot)))
                before = http.get(f"/v1/jobs/{job_id}/summary").json()
            delivered = [r for r in report if r["receipt"] == "delivered"]
            assert len(delivered) == 2 * ROWS - 10
            clicked = delivered[:2000]  # tcell's 1,200 and voda's first 800
            with httpx.Client(base_url=redirect.url) as web:
                for r in clicked + clicked[:100]:
                    assert web.get(f"/{r['link_code']}", headers={"User-Agent": PHONE}).status_code == 302
                for r in clicked[:10]:
                    assert web.head(f"/{r['link_code']}").status_code == 302
            with stack.client() as http:
                for i, r in enumerate(clicked[1000:1500]):  # tcell's last 200, voda's 300
                    answer = http.post(
                        "/v1/conversions",
                        json={"event_id": f"order-{i}", "link_code": r["link_code"], "value": "12.50"},
                    )
                    assert answer.status_code == 201, answer.text
                summary = http.get(f"/v1/jobs/{job_id}/summary").json()
                again = http.get(f"/v1/jobs/{job_id}/summary").json()
                # A snapshot removed under a reader (a newer one taken meanwhile removes it): the
                # summary reads the ledgers instead, and says the same.
                named = stack.redis.hget(keys.job(job_id), "outcomes_files").decode().split()[0]
                shutil.rmtree(tmp_path / "jobs" / job_id / "outcomes" / named)
                unkept = http.get(f"/v1/jobs/{job_id}/summary").json()
                hourly = http.get(f"/v1/jobs/{job_id}/summary", params={"bucket": 3600}).json()
                exported = http.get(f"/v1/jobs/{job_id}/summary", params={"format": "csv"})
                assert http.get(f"/v1/jobs/{job_id}/summary", params={"bucket": 7}).status_code == 422
            cli = subprocess.run(
                [sys.executable, "-m", "api.cli.main", "summary", job_id, "--api", stack.api.url],
                env={**stack.env, "ULAK_API_KEY": stack.token, "COLUMNS": "200"},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            redirect.stop()

    assert before["clicks"] == {"unique": 0, "total": 0} and before["conversions"] == 0
    cost = Decimal("0.20") * ROWS + Decimal("0.15") * (ROWS - 10)  # parts the SMSC took x price
    value = Decimal("12.50") * 500
    assert {k: summary[k] for k in ("recipients", "sent", "failed", "unknown", "delivered")} == {
        "recipients": 2 * ROWS,
        "sent": 2 * ROWS - 10,
        "failed": 10,
        "unknown": 0,
        "delivered": 2 * ROWS - 10,
    }
    assert summary["failed_by_reason"] == {"ESME_RINVDSTADR": 10}
    assert summary["delivery_rate"] == 1.0
    assert summary["clicks"] == {"unique": 2000, "total": 2100} and summary["bot_clicks"] == 10
    assert summary["click_rate"] == round(2000 / (2 * ROWS - 10), 4)
    assert (summary["conversions"], summary["converters"], summary["conversion_rate"]) == (500, 500, 0.25)
    assert Decimal(summary["value"]) == value and Decimal(summary["cost"]) == cost
    assert summary["roi"] == round(float((value - cost) / cost), 4)
    assert (summary["parts"], summary["parts_sent"]) == (2 * ROWS, 2 * ROWS - 10)
    assert summary["goal"] == {
        "conversions": {"target": 1000, "reached": 500, "progress": 0.5},
        "value": {"target": "5000", "reached": "6250", "progress": 1.25},
    }
    assert summary["delivery_time"]["p50_seconds"] is not None
    assert summary["delivery_time"]["p50_seconds"] <= summary["delivery_time"]["p90_seconds"]
    last = datetime.fromisoformat(max(r["receipt_at"] for r in delivered)).timestamp()
    assert 0 <= last - datetime.fromisoformat(summary["delivery_time"]["completed_at"]).timestamp() < 1

    tcell, voda = summary["operators"]["tcell"], summary["operators"]["voda"]
    assert (tcell["sent"], tcell["clicks"], tcell["conversions"], tcell["value"], tcell["cost"]) == (
        ROWS,
        {"unique": 1200, "total": 1300},
        200,
        "2500",
        "240",
    )
    assert (
        voda["sent"],
        voda["failed"],
        voda["clicks"],
        voda["conversions"],
        voda["value"],
        voda["cost"],
    ) == (
        ROWS - 10,
        10,
        {"unique": 800, "total": 800},
        300,
        "3750",
        "178.5",
    )
    assert voda["failed_by_reason"] == {"ESME_RINVDSTADR": 10} and tcell["failed_by_reason"] == {}
    assert (tcell["conversion_rate"], voda["conversion_rate"]) == (round(200 / 1200, 4), round(300 / 800, 4))

    # The time series adds up to the totals, in any bucket.
    for series in (summary["series"], hourly["series"]):
        points = series["points"]
        assert sum(p["sent"] for p in points) == summary["sent"]
        assert sum(p["delivered"] for p in points) == summary["delivered"]
        assert (sum(p["clicks"] for p in points), sum(p["unique_clicks"] for p in points)) == (2100, 2000)
        assert sum(p["conversions"] for p in points) == 500
        assert sum(Decimal(p["value"]) for p in points) == value
    assert hourly["series"]["bucket_seconds"] == 3600 and len(hourly["series"]["points"]) <= 2

    # Read again (from the snapshot the ended job keeps): the same, bar the time it was read.
    assert {**again, "as_of": None} == {**summary, "as_of": None} == {**unkept, "as_of": None}

    # The CSV: the total, then each operator, one row each.
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["group"] for r in rows] == ["total", "operator:tcell", "operator:voda"]
    assert (rows[0]["conversions"], rows[0]["unique_clicks"], rows[0]["conversion_rate"]) == (
        "500",
        "2000",
        "0.25",
    )
    assert Decimal(rows[0]["cost"]) == cost and Decimal(rows[2]["value"]) == Decimal(3750)

    # The CLI shows the same figures.
    assert cli.returncode == 0, cli.stderr
    assert "Aralık" in cli.stdout and "25.0%" in cli.stdout and "6,250" in cli.stdout, cli.stdout
