"""GET /v1/jobs/{id} latency at a fixed request rate while a job sends at full speed.

Starts the local stack (embedded Redis, local Ray, the simulator for every operator, the API as its
own process), submits a generated campaign with the operators' caps lifted, and once the job is
sending, a *second process* sends GET /v1/jobs/{id} on a fixed schedule (open loop: a slow answer does
not delay the next request) over loopback and reports the latency percentiles.

    .venv/bin/python scripts/bench/bench_api.py --rows 300000 --rate 200 --seconds 20
    .venv/bin/python scripts/bench/bench_api.py --rows 2000 --idle     # the same, nothing sending
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from api.cli.demo import TEMPLATE, demo_settings, write_campaign  # noqa: E402
from api.cli.stack import LocalStack  # noqa: E402
from api.client import ApiClient  # noqa: E402
from ulak.redis_server import free_port  # noqa: E402


def _load(
    url: str,
    token: str,
    path: str,
    rate: float,
    seconds: float,
    *,
    threads: int = 8,
    paths: list[str] | None = None,
    ok: int = 200,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    """Open-loop load: *threads* keep-alive connections share a fixed schedule of *rate* requests per
    second; each latency counts from the request's *scheduled* time, so a slow server is not hidden
    by the client falling behind (no coordinated omission). With *paths*, request *i* asks for
    ``paths[i % len(paths)]``; an answer other than *ok* is an error."""
    parsed = urlsplit(url)
    headers = headers or {"Authorization": f"Bearer {token}"}
    paths = paths or [path]
    n = int(rate * seconds)
    start = time.perf_counter() + 0.5
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def worker(k: int) -> None:
        nonlocal errors
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        mine: list[float] = []
        failed = 0
        for i in range(k, n, threads):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                conn.request("GET", paths[i % len(paths)], headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != ok:
                    failed += 1
                    continue
            except (OSError, http.client.HTTPException):
                failed += 1
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
                continue
            mine.append(time.perf_counter() - due)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += failed

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return _latencies(latencies, requests=n, errors=errors, elapsed=time.perf_counter() - start)


def _latencies(latencies: list[float], *, requests: int, errors: int, elapsed: float) -> dict[str, float]:
    """What the load saw: its rate, errors and latency quantiles in milliseconds."""
    latencies.sort()

    def pct(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)

    return {
        "requests": requests,
        "errors": errors,
        "achieved_rate": round(requests / elapsed, 1),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * latencies[-1], 2),
        "mean_ms": round(1000 * statistics.fmean(latencies), 2),
    }


def bench_stack(workdir: Path, *, rows: int, tps_scale: float) -> tuple[LocalStack, Path]:
    """The local stack with the simulator for every operator (caps times *tps_scale*), each of its
    services on a free port, and a generated campaign of *rows* for those operators."""
    settings = demo_settings(tps_scale=tps_scale, workdir=workdir)
    stack = LocalStack(
        settings,
        simulator=True,
        api_port=free_port(),
        redirect_port=free_port(),
        workdir=workdir / "run",
        save_info=False,
    ).start()
    campaign = workdir / "bench.csv"
    try:
        write_campaign(campaign, rows, [p for op in settings.operators for p in op.prefixes])
    except BaseException:
        stack.stop()
        raise
    return stack, campaign


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=200.0, help="GET requests per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--tps-scale", type=float, default=100.0, help="lift the operators' caps")
    parser.add_argument("--idle", action="store_true", help="measure after the job is done (nothing sending)")
    parser.add_argument("--load", nargs=3, metavar=("URL", "TOKEN", "PATH"), help=argparse.SUPPRESS)
    return parser


def main() -> int:
    args = _parser().parse_args()
    if args.load:  # the second process
        print(json.dumps(_load(*args.load, args.rate, args.seconds)))
        return 0
    with tempfile.TemporaryDirectory(prefix="ulak-bench-api-") as tmp:
        stack, campaign = bench_stack(Path(tmp), rows=args.rows, tps_scale=args.tps_scale)
        try:
            assert stack.token is not None
            with ApiClient(stack.api_url, stack.token) as client:
                job_id = client.submit(campaign, {"template": TEMPLATE})["id"]
                wanted = ("done", "failed") if args.idle else ("sending",)
                while client.job(job_id)["state"] not in wanted:
                    time.sleep(0.1)
                loader = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--rate",
                        str(args.rate),
                        "--seconds",
                        str(args.seconds),
                        "--load",
                        stack.api_url,
                        stack.token,
                        f"/v1/jobs/{job_id}",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
                result = json.loads(loader.stdout)
                view = client.job(job_id)
                result["job_state_at_end"] = view["state"]
                result["job_msgs_per_s_at_end"] = view["rates"]["messages_per_second"]
                result["job_submitted_at_end"] = view["counts"]["submitted"]
                if not args.idle and not view["ended"]:  # a job that outlived the load
                    client.steer(job_id, "cancel")
        finally:
            stack.stop()
    result["machine"] = f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
