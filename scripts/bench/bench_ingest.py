"""Ingest benchmark: a generated N-row campaign file to routed, planned blocks (``ingest.prepare``).

    python scripts/bench/bench_ingest.py --rows 1000000 --format csv
    python scripts/bench/bench_ingest.py --rows 1000000 --format xlsx
    python scripts/bench/bench_ingest.py --rows 5000000 --format csv

Starts a local Ray (2 CPUs, no dashboard) and a private Redis, prepares the file once cold (Ray
workers starting) and then ``--repeat`` times warm (the cluster already up, as in production), and
prints seconds per run and the peak growth of the whole stack's RSS (driver, Ray workers, raylet, Redis:
every process in this one's tree, sampled every 20 ms) over its level before the first run.
Generated files are cached under ``--dir``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

NAMES = ["Ayşe", "Mehmet", "Fatma", "Ahmet", "Zeynep", "Çağla", "İsmail", "Gülşen", "Emre", "Şule"]
PREFIXES = ["530", "532", "535", "542", "544", "505", "555", "212"]  # the last: landlines, refused
TEMPLATE = "Merhaba {ad}, {tutar} TL borcunuz bulunmaktadır. Ödeme için: https://ul.ak/o"


def generate(path: Path, rows: int, fmt: str) -> None:
    rnd = random.Random(rows)
    chunk = 250_000
    if fmt == "csv":
        writer = None
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            table = pa.table(
                {
                    "telefon": [f"0{rnd.choice(PREFIXES)} {rnd.randrange(10**7):07d}" for _ in range(n)],
                    "ad": [rnd.choice(NAMES) for _ in range(n)],
                    "tutar": [f"{rnd.randrange(10, 99_999)},{rnd.randrange(100):02d}" for _ in range(n)],
                }
            )
            if writer is None:
                writer = pacsv.CSVWriter(path, table.schema)
            writer.write_table(table)
        assert writer is not None
        writer.close()
        return
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet("Kampanya")
    sheet.write_row(0, 0, ["Telefon", "Ad", "Tutar"])
    for r in range(1, rows + 1):
        sheet.write_number(r, 0, int(rnd.choice(PREFIXES) + f"{rnd.randrange(10**7):07d}"))
        sheet.write_string(r, 1, rnd.choice(NAMES))
        sheet.write_number(r, 2, rnd.randrange(1000, 9_999_999) / 100)
    book.close()


class RssSampler:
    """Peak of the summed RSS of this process and all its descendants."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def total() -> int:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.total())
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/ulak-bench"))
    args = parser.parse_args()

    import ray

    from ingest.prepare import CampaignSpec, prepare
    from ulak.redis_server import RedisServer
    from ulak.settings import IngestConfig, load_settings

    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / f"campaign-{args.rows}.{args.format}"
    if not path.exists():
        t = time.perf_counter()
        generate(path, args.rows, args.format)
        print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f} s")
    env = dict.fromkeys(
        ("ULAK_TURKCELL_PASSWORD", "ULAK_VODAFONE_PASSWORD", "ULAK_TELEKOM_PASSWORD"), "bench"
    )
    settings = load_settings(environ={**os.environ, **env})
    config = IngestConfig(max_rows=max(args.rows, 10_000_000))
    with RedisServer(args.dir / "redis", appendonly=False) as redis_server:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        baseline = RssSampler.total()
        spec = CampaignSpec(template=TEMPLATE)
        with RssSampler() as sampler:
            times = []
            for i in range(args.repeat + 1):
                t = time.perf_counter()
                prepared = prepare(
                    path, spec, config=config, operators=settings.operators, redis_url=redis_server.url
                )
                elapsed = time.perf_counter() - t
                times.append(elapsed)
                label = "cold" if i == 0 else "warm"
                print(f"{label}: {elapsed:.2f} s  ({args.rows / elapsed:,.0f} rows/s)")
                del prepared
        preview_rows = args.rows
        ray.shutdown()
    warm = sorted(times[1:])
    print(
        f"{args.format} {preview_rows:,} rows: cold {times[0]:.2f} s, "
        f"warm median {warm[len(warm) // 2]:.2f} s "
        f"(best {warm[0]:.2f} s); peak RSS growth {(sampler.peak - baseline) / 2**20:,.0f} MiB "
        f"(baseline {baseline / 2**20:,.0f} MiB); {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
