#!/usr/bin/env python3
"""How long a finished campaign's summary takes to read: a 1M-recipient job with 100k clicks and 20k
conversions.

Starts the local stack (embedded Redis, local Ray, the simulator, the API and the redirect service),
sends a campaign of *rows* with ``{link}`` through the simulator at lifted caps, then records
*clicks* clicks on distinct rows (10 % of them clicked twice) through the redirect service's own Lua
script in pipelines (the redirect benchmark measures the HTTP side), and *conversions* conversions
through ``POST /v1/conversions`` over HTTP. Then it times ``GET /v1/jobs/{id}/summary``: the first
read (which takes the snapshot of the rows' outcomes) and the next ones (which read it), and the
CSV export.

    .venv/bin/python scripts/bench/bench_summary.py --rows 1000000 --clicks 100000 --conversions 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from api.client import ApiClient  # noqa: E402
from scripts.bench.bench_api import bench_stack  # noqa: E402
from ulak import keys, links, redisclient  # noqa: E402
from ulak.records import LinkOwner  # noqa: E402


def _codes(client: redis.Redis, n: int) -> list[tuple[str, int]]:
    """*n* link codes and their rows."""
    found: list[str] = []
    for key in client.scan_iter(match=keys.link("*"), count=10_000):
        found.append(key.decode().rpartition(":")[2])
        if len(found) >= n:
            break
    values = client.mget([keys.link(c) for c in found])
    return [(c, LinkOwner.read(v).row) for c, v in zip(found, values, strict=True) if v is not None]


def _click(client: redis.Redis, job_id: str, rows: list[int]) -> None:
    script = client.register_script(links.CLICK_SCRIPT)
    for start in range(0, len(rows), 5000):
        pipe = client.pipeline(transaction=False)
        for row in rows[start : start + 5000]:
            args = links.click_args(row=row, bot=False, user_agent="bench", address_hash="0" * 24)
            script(keys=links.click_keys(job_id), args=args, client=pipe)
        pipe.execute()


def _convert(url: str, token: str, codes: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}

    def send(chunk: list[tuple[int, str]]) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            for i, code in chunk:
                answer = http.post(
                    "/v1/conversions", json={"event_id": f"b{i}", "link_code": code, "value": "99.90"}
                )
                answer.raise_for_status()

    numbered = list(enumerate(codes))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, [numbered[i::8] for i in range(8)]))


def _timed(http: httpx.Client, path: str, **params: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    answer = http.get(path, params=params)
    answer.raise_for_status()
    return time.perf_counter() - started, answer


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clicks", type=int, default=100_000, help="distinct rows clicked")
    parser.add_argument("--conversions", type=int, default=20_000)
    parser.add_argument("--reads", type=int, default=5, help="summary reads after the first")
    parser.add_argument("--tps-scale", type=float, default=100.0, help="lift the operators' caps")
    args = parser.parse_args()
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="ulak-bench-summary-") as tmp:
        stack, campaign = bench_stack(Path(tmp), rows=args.rows, tps_scale=args.tps_scale)
        try:
            assert stack.token is not None
            with ApiClient(stack.api_url, stack.token) as client:
                options = {"template": "Merhaba {Ad}, kampanya: {link}", "link_url": "https://shop.example/k"}
                started = time.perf_counter()
                job_id = client.submit(campaign, options)["id"]
                while (view := client.job(job_id))["state"] not in ("done", "failed"):
                    time.sleep(0.5)
                deadline = time.monotonic() + 120
                while client.job(job_id)["receipts"]["awaiting"] and time.monotonic() < deadline:
                    time.sleep(0.5)
                result["send_seconds"] = round(time.perf_counter() - started, 1)
                result["job_state"] = view["state"]
            r = redisclient.client(stack.redis_url)
            picked = _codes(r, args.clicks)
            rows = [row for _, row in picked]
            began = time.perf_counter()
            _click(r, job_id, rows + rows[: len(rows) // 10])
            result["clicks_recorded_seconds"] = round(time.perf_counter() - began, 1)
            began = time.perf_counter()
            _convert(stack.api_url, stack.token, [c for c, _ in picked[: args.conversions]])
            result["conversions_posted_seconds"] = round(time.perf_counter() - began, 1)
            r.close()
            with httpx.Client(
                base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=600
            ) as http:
                first, answer = _timed(http, f"/v1/jobs/{job_id}/summary")
                reads = [_timed(http, f"/v1/jobs/{job_id}/summary")[0] for _ in range(args.reads)]
                csv_seconds, _ = _timed(http, f"/v1/jobs/{job_id}/summary", format="csv")
            summary = answer.json()
            result.update(
                recipients=summary["recipients"],
                delivered=summary["delivered"],
                unique_clicks=summary["clicks"]["unique"],
                total_clicks=summary["clicks"]["total"],
                conversions=summary["conversions"],
                conversion_rate=summary["conversion_rate"],
                first_read_seconds=round(first, 3),
                read_seconds_median=round(statistics.median(reads), 3),
                read_seconds_max=round(max(reads), 3),
                csv_seconds=round(csv_seconds, 3),
                series_points=len(summary["series"]["points"]),
            )
        finally:
            stack.stop()
    result["command"] = " ".join(["scripts/bench/bench_summary.py", *sys.argv[1:]])
    result["machine"] = f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
