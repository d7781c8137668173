#!/usr/bin/env python3
"""The product path, as a user runs it: the local stack (Ulak's Redis, local Ray, the bundled SMSC
simulator serving the three operators of configs/operators.yaml, with delivery receipts, and the
control plane), a campaign CSV uploaded over HTTP, followed over HTTP to ``done``, then its report and
summary downloaded. What ``ulak demo`` does, measured.

It reports:

* ``parts_per_second_sending``: the job's own figure (parts sent / its ``sending_seconds``), as the
  demo prints it;
* ``seconds_202_to_done``: from the upload's 202 to the job's ``done`` (ingest, sending, and the wait
  for the last receipts);
* ``seconds_report`` / ``seconds_first_summary`` / ``seconds_report_after_summary``: downloading the
  row-level report right after ``done``, the first ``GET /summary`` of the finished job, and the
  report again (by then the outcomes snapshot exists, and the report reads no ledger);
* ``stack_cpu_us_per_part`` (all processes: API, Ray, the job's and binds' actors, Redis, the
  simulator; and without the simulator), CPU seconds by process, and the summed peak RSS and PSS of
  them (PSS counts a page shared by processes, such as a library or Ray's object store, once);
* ``sampling_cpu_seconds``: what this script's own sampling of the processes took (PSS every 5 s,
  RSS and CPU every half second), left out of the driver's CPU and of the stack's.

Caps are lifted with ``--tps-scale`` (1000 by default: the operators' 400–1,000/s become 400k–1M/s, so
the machine is the limit).

    python scripts/bench/bench_product.py --rows 1000000
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from api.cli.demo import TEMPLATE, demo_settings, demo_stack, write_campaign  # noqa: E402
from api.client import ApiClient, ApiClientError  # noqa: E402
from cluster.jobs.states import JobState  # noqa: E402
from scripts.bench.bench_e2e import TreeSampler  # noqa: E402
from ulak.settings import FrequencyCapsConfig  # noqa: E402

ENDED = {JobState.DONE.value, JobState.FAILED.value, JobState.CANCELLED.value}


def write_timeline(path: Path, timeline: list[tuple[float, dict[str, int], dict[str, int]]]) -> None:
    """RSS, then PSS, by kind of process over time, one row every 5 s, MiB."""
    kinds = sorted({kind for _, by_kind, _ in timeline for kind in by_kind})
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["seconds", *kinds, "total", *(f"pss {kind}" for kind in kinds), "pss total"])
        for at, rss, pss in timeline:
            out.writerow(
                [
                    round(at),
                    *(round(rss.get(kind, 0) / 2**20) for kind in kinds),
                    round(sum(rss.values()) / 2**20),
                    *(round(pss.get(kind, 0) / 2**20) for kind in kinds),
                    round(sum(pss.values()) / 2**20),
                ]
            )


def follow(client: ApiClient, job_id: str, *, poll: float) -> dict[str, object]:
    """Poll the job as a client does until it ends; returns its last view."""
    while True:
        view = client.job(job_id)
        if view["state"] in ENDED:
            return view
        time.sleep(poll)


def second_half(campaign: Path, rows: int, *, every: int = 97) -> list[str]:
    """Numbers of the campaign's second half (as written, in whatever form), every *every*-th."""
    with campaign.open(encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        return [row[0] for i, row in enumerate(reader) if i >= rows // 2 and i % every == 0]


def opt_out(
    url: str, token: str, numbers: list[str], rate: float, *, stop: threading.Event, done: list[int]
) -> None:
    """Opt *numbers* out one by one through the API, *rate* a second, until *stop* (a landline or a
    typo among them is refused with a 422, as it should be)."""
    with ApiClient(url, token) as client:
        for number in numbers:
            if stop.wait(1.0 / rate):
                return
            with contextlib.suppress(ApiClientError):
                client.optouts_add([number])
                done.append(1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tps-scale", type=float, default=1000.0, help="the operators' caps times this")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between the client's GETs")
    parser.add_argument(
        "--optouts-per-second",
        type=float,
        default=0.0,
        help="while the job sends, recipients of its second half opt out by the API at this rate "
        "(each stops that row in flight: the cost of refusals checked while sending)",
    )
    parser.add_argument(
        "--capped",
        action="store_true",
        help="the job is held to a frequency cap (its brand's 1/24h, every recipient new): each "
        "message is checked and counted in Redis as it is handed to a bind (the cost of ulak.caps)",
    )
    parser.add_argument(
        "--rss-csv",
        type=Path,
        help="write the RSS of each kind of process every 5 s (MiB) to this CSV: what grows with the job",
    )
    args = parser.parse_args()
    sampler = TreeSampler()
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="ulak-bench-product-") as tmp:
        workdir = Path(tmp)
        settings = demo_settings(tps_scale=args.tps_scale, workdir=workdir)
        options: dict[str, str] = {"template": TEMPLATE, "name": "bench"}
        if args.capped:
            caps = FrequencyCapsConfig(brands={"bench": ("1/24h",)})
            settings = settings.model_copy(update={"frequency_caps": caps})
            options |= {"brand": "bench", "frequency_cap": "defer"}
        campaign = workdir / "kampanya.csv"
        write_campaign(campaign, args.rows, [p for op in settings.operators for p in op.prefixes])
        stack = demo_stack(settings, workdir).start()
        try:
            with ApiClient(stack.api_url, stack.token) as client:
                cpu0 = sampler.cpu_by_process()
                sampling0 = sampler.own_cpu
                sampler.reset_peaks()
                t0 = time.perf_counter()
                job = client.submit(campaign, options)
                accepted_at = time.perf_counter()
                stop_optouts = threading.Event()
                optouts: list[int] = []
                if args.optouts_per_second > 0:
                    numbers = second_half(campaign, args.rows)
                    threading.Thread(
                        target=opt_out,
                        args=(stack.api_url, stack.token, numbers, args.optouts_per_second),
                        kwargs={"stop": stop_optouts, "done": optouts},
                        daemon=True,
                    ).start()
                view = follow(client, job["id"], poll=args.poll)
                done_at = time.perf_counter()
                stop_optouts.set()
                cpu1 = sampler.cpu_by_process()
                sampling = sampler.own_cpu - sampling0
                peak, peak_by_kind = sampler.peak_rss, dict(sampler.peak_rss_by_kind)
                peak_pss, peak_pss_by_kind = sampler.peak_pss, dict(sampler.peak_pss_by_kind)
                t = time.perf_counter()
                client.download(job["id"], workdir / "report.csv")
                report_s = time.perf_counter() - t
                t = time.perf_counter()
                client.summary(job["id"])
                summary_s = time.perf_counter() - t
                # Once the summary is read its snapshot exists: the report then reads no ledger.
                t = time.perf_counter()
                client.download(job["id"], workdir / "report-again.csv")
                report_again_s = time.perf_counter() - t
                peak_all, peak_pss_all = sampler.peak_rss, sampler.peak_pss
        finally:
            stack.stop()
    sampler.stop.set()
    by_kind = {k: round(v - cpu0.get(k, 0.0), 1) for k, v in sorted(cpu1.items())}
    counts, parts = view["counts"], view["parts"]
    assert isinstance(counts, dict) and isinstance(parts, dict)
    sent = parts["sent"]
    cpu = sum(by_kind.values())
    sending = view.get("sending_seconds") or 0.0
    assert isinstance(sending, float | int)
    result = {
        "rows": args.rows,
        "state": view["state"],
        "accepted": counts["accepted"],
        "refused": counts["rejected"],
        "acked": counts["acked"],
        "failed": counts["failed"],
        "unknown": counts["unknown"],
        "optouts_posted": len(optouts),
        "stopped_opted_out": counts.get("opted_out", 0),
        "frequency_capped": counts.get("frequency_capped", 0),
        "parts_sent": sent,
        "seconds_upload_to_202": round(accepted_at - t0, 2),
        "seconds_202_to_done": round(done_at - accepted_at, 1),
        "sending_seconds": round(float(sending), 1),
        "parts_per_second_sending": round(sent / sending) if sending else None,
        "seconds_report": round(report_s, 2),
        "seconds_first_summary": round(summary_s, 2),
        "seconds_report_after_summary": round(report_again_s, 2),
        "stack_cpu_seconds": round(cpu, 1),
        "sampling_cpu_seconds": round(sampling, 1),
        "stack_cpu_us_per_part": round(cpu / sent * 1e6, 1) if sent else None,
        "stack_cpu_us_per_part_without_simulator": round(
            (cpu - by_kind.get("simulator", 0.0)) / sent * 1e6, 1
        )
        if sent
        else None,
        "cpu_seconds_by_process": by_kind,
        "stack_peak_rss_mib": round(peak / 2**20),
        "peak_rss_mib_by_process": {k: round(v / 2**20) for k, v in sorted(peak_by_kind.items())},
        "stack_peak_rss_mib_with_report_and_summary": round(peak_all / 2**20),
        # PSS: shared pages (libraries, Ray's object store) counted once, not in every process
        "stack_peak_pss_mib": round(peak_pss / 2**20),
        "peak_pss_mib_by_process": {k: round(v / 2**20) for k, v in sorted(peak_pss_by_kind.items())},
        "stack_peak_pss_mib_with_report_and_summary": round(peak_pss_all / 2**20),
        "command": "python scripts/bench/bench_product.py " + " ".join(sys.argv[1:]),
        "machine": f"{psutil.cpu_count()} cpu, {round(psutil.virtual_memory().total / 2**30)} GiB, "
        f"python {platform.python_version()}",
    }
    if args.rss_csv:
        write_timeline(args.rss_csv, sampler.timeline)
    print(json.dumps(result, indent=2))
    return 0 if view["state"] == JobState.DONE.value else 1


if __name__ == "__main__":
    sys.exit(main())
