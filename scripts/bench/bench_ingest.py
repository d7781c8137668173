"""Ingest benchmark: a generated N-row campaign file to routed, planned rows (``ingest.prepare``), written
as the job's ``accepted.parquet`` and ``rejected.parquet``.

    python scripts/bench/bench_ingest.py --rows 1000000 --format csv
    python scripts/bench/bench_ingest.py --rows 1000000 --format xlsx
    python scripts/bench/bench_ingest.py --rows 5000000 --format csv

Starts a local Ray (2 CPUs, no dashboard) and a private Redis, prepares the file once cold (Ray
workers starting) and then ``--repeat`` times warm (the cluster already up, as in production), and
prints seconds per run and the peak growth of the whole stack's memory (driver, Ray workers, raylet,
Redis: every process in this one's tree) as summed RSS and summed PSS (see MemorySampler), over the
idle stack and, for the warm runs, over the stack as the cold run left it.
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


class MemorySampler:
    """Peaks of the summed RSS and the summed PSS of this process and all its descendants.

    RSS summed over processes counts a shared page once per process that maps it: every Ray worker's
    copy of libarrow, and every object-store page each process has read (the object store is one
    shared-memory file). PSS splits each shared page among the processes that map it, so its sum is
    the memory the stack really holds. Both are printed; PSS is read less often (it walks page maps).
    """

    def __init__(self, *, pss: bool = False) -> None:
        self.peak_rss = 0
        self.peak_pss = 0
        self.with_pss = pss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _procs() -> list[psutil.Process]:
        me = psutil.Process()
        return [me, *me.children(recursive=True)]

    @classmethod
    def rss(cls, procs: list[psutil.Process] | None = None) -> int:
        total = 0
        for proc in cls._procs() if procs is None else procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    @classmethod
    def pss(cls, procs: list[psutil.Process] | None = None) -> int:
        total = 0
        for proc in cls._procs() if procs is None else procs:
            # smaps_rollup: the kernel's one-line sum (psutil's memory_full_info parses all of smaps).
            with contextlib.suppress(OSError), open(f"/proc/{proc.pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        return total

    def _run(self) -> None:
        # Listing the process tree reads every process's /proc stat (2.5 ms here): done every 0.5 s,
        # not at every 20 ms sample, so that the sampler does not take CPU from the run it measures.
        procs, listed = self._procs(), time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - listed > 0.5:
                procs, listed = self._procs(), time.monotonic()
            self.peak_rss = max(self.peak_rss, self.rss(procs))
            if self.with_pss:
                self.peak_pss = max(self.peak_pss, self.pss(procs))
            time.sleep(0.02)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/ulak-bench"))
    return parser


def _print_memory(
    sampler: MemorySampler, seconds: float, *, base: tuple[float, float], warm: tuple[float, float]
) -> None:
    """The memory run's peaks over the idle stack (*base*: RSS, PSS) and the warmed-up one (*warm*)."""
    mib = 2**20
    print(
        f"memory run ({seconds:.2f} s, PSS sampled): peak growth over the idle stack: "
        f"RSS {(sampler.peak_rss - base[0]) / mib:,.0f} MiB, "
        f"PSS {(sampler.peak_pss - base[1]) / mib:,.0f} MiB; "
        f"over the warmed-up stack: RSS {(sampler.peak_rss - warm[0]) / mib:,.0f} MiB, "
        f"PSS {(sampler.peak_pss - warm[1]) / mib:,.0f} MiB "
        f"(idle stack: RSS {base[0] / mib:,.0f} MiB, PSS {base[1] / mib:,.0f} MiB)"
    )


def main() -> None:
    args = _parser().parse_args()

    import ray

    from ingest.prepare import prepare
    from ingest.spec import CampaignSpec
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
        ray.init(
            address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR"
        )
        base_rss, base_pss = MemorySampler.rss(), MemorySampler.pss()
        spec = CampaignSpec(template=TEMPLATE)

        def run(sampler: MemorySampler) -> float:
            with sampler:
                t = time.perf_counter()
                prepare(
                    path,
                    spec,
                    config=config,
                    operators=settings.operators,
                    redis_url=redis_server.url,
                    directory=args.dir / "prepared",
                )
                return time.perf_counter() - t

        # Timed runs sample RSS only (reading PSS walks every page table: it slows the run it
        # measures); run 0 is cold (Ray starts its workers and Ray Data's own actors).
        times = []
        for i in range(args.repeat + 1):
            sampler = MemorySampler()
            times.append(run(sampler))
            print(
                f"{'cold' if i == 0 else 'warm'}: {times[-1]:.2f} s  ({args.rows / times[-1]:,.0f} rows/s); "
                f"peak RSS growth over the idle stack {(sampler.peak_rss - base_rss) / 2**20:,.0f} MiB"
            )
        # One more warm run, for memory: PSS too, over the idle stack and over the warmed-up one.
        warm_rss, warm_pss = MemorySampler.rss(), MemorySampler.pss()
        sampler = MemorySampler(pss=True)
        seconds = run(sampler)
        ray.shutdown()
    _print_memory(sampler, seconds, base=(base_rss, base_pss), warm=(warm_rss, warm_pss))
    warm = sorted(times[1:])
    print(
        f"{args.format} {args.rows:,} rows: cold {times[0]:.2f} s, "
        f"warm median {warm[len(warm) // 2]:.2f} s (best {warm[0]:.2f} s); {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
