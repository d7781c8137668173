#!/usr/bin/env python3
"""End-to-end dispatch benchmark: N messages, 1 operator, 4 binds, no cap, with receipts.

Everything real: the bundled simulator (no record) on a free port, Ulak's own Redis, local Ray, one
SmppConnectionActor per bind, the ledger in Redis. Prints msgs/s, the CPU seconds and peak RSS of the
whole stack (this process and all its descendants: Ray workers, Redis, the simulator).

    python scripts/bench/bench_e2e.py --messages 1000000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import ray
import redis
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from actors.local import Cluster  # noqa: E402
from api.cli.stack import start_simulator  # noqa: E402
from scripts.bench.campaign import run_campaign  # noqa: E402
from ulak.settings import BindConfig, OperatorConfig, RayConfig, RedisConfig, Settings  # noqa: E402

TEXT = "Kampanya: tum urunlerde %20 indirim, detaylar icin https://ulak.example/k/Ab3"


def bench_operator(port: int, *, binds: int, window: int) -> OperatorConfig:
    """The benchmark's operator: *binds* binds to the simulator on *port*, no cap (bench_bind.py
    measures the same binds without Ray)."""
    configs = tuple(
        BindConfig(
            name=f"b{i}",
            host="127.0.0.1",
            port=port,
            system_id="bench",
            password_env="UNUSED",
            password=SecretStr("bench"),
            window=window,
        )
        for i in range(binds)
    )
    return OperatorConfig(name="op", prefixes=("90",), tps=10_000_000, binds=configs)


class TreeSampler(threading.Thread):
    """Samples the RSS and CPU times of this process and its descendants every half second, and
    their PSS every ``PSS_EVERY`` samples. CPU is kept per process as last seen, so processes that
    ended meanwhile (a job's actor, Ray Data's workers) still count, up to their last sample.

    The sampling is not the stack's work: its own CPU (``own_cpu``) is left out of the driver's.
    PSS is the costly part (the kernel walks every page table: ~0.2 s of CPU for the ~30 processes
    of a running stack on the 2-core machine). Taken every second it was a fifth of a core taken
    from the run it measured, and counted as the stack's."""

    PSS_EVERY = 10  # every 5 s, with the timeline's rows

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_rss = 0
        self.peak_rss_by_kind: dict[str, int] = {}  # kind -> the highest RSS its processes summed to
        # PSS: a shared page counted once over the processes mapping it. Summed RSS counts each Ray
        # worker's shared libraries (~95 MiB) and every object-store page it touched again and again.
        self.peak_pss = 0
        self.peak_pss_by_kind: dict[str, int] = {}
        # (seconds, RSS by kind, PSS by kind) every 5 s
        self.timeline: list[tuple[float, dict[str, int], dict[str, int]]] = []
        self.stop = threading.Event()
        self._cpu: dict[int, tuple[str, float]] = {}  # pid -> (kind, CPU seconds as last seen)
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._samples = 0
        self.own_cpu = 0.0  # CPU seconds the sampling itself took (the driver's, not the stack's)

    def tree(self) -> list[psutil.Process]:
        me = psutil.Process()
        return [me, *me.children(recursive=True)]

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            time.sleep(0.5)

    def sample(self) -> None:
        started = time.thread_time()
        try:
            self._sample()
        finally:
            with self._lock:
                self.own_cpu += time.thread_time() - started

    def _sample(self) -> None:
        total = total_pss = 0
        by_kind: dict[str, int] = {}
        pss_by_kind: dict[str, int] = {}
        with_pss = self._samples % self.PSS_EVERY == 0  # smaps_rollup walks page tables: costly
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                rss = p.memory_info().rss
                pss = p.memory_full_info().pss if with_pss else 0
                t = p.cpu_times()
                kind = self._kind(p)
                total += rss
                total_pss += pss
                by_kind[kind] = by_kind.get(kind, 0) + rss
                pss_by_kind[kind] = pss_by_kind.get(kind, 0) + pss
                with self._lock:
                    self._cpu[p.pid] = (kind, t.user + t.system)
        with self._lock:
            self.peak_rss = max(self.peak_rss, total)
            for kind, rss in by_kind.items():
                self.peak_rss_by_kind[kind] = max(self.peak_rss_by_kind.get(kind, 0), rss)
            if with_pss:
                self.peak_pss = max(self.peak_pss, total_pss)
                for kind, pss in pss_by_kind.items():
                    self.peak_pss_by_kind[kind] = max(self.peak_pss_by_kind.get(kind, 0), pss)
            if with_pss:
                self.timeline.append((time.monotonic() - self._t0, by_kind, pss_by_kind))
            self._samples += 1

    def reset_peaks(self) -> None:
        """Forget the peaks so far (the stack's start): what follows is the job's."""
        with self._lock:
            self.peak_rss = self.peak_pss = 0
            self.peak_rss_by_kind = {}
            self.peak_pss_by_kind = {}

    @staticmethod
    def _kind(p: psutil.Process) -> str:
        cmd = " ".join(p.cmdline())
        if "smsc_sim" in cmd or "ulak.sim" in cmd:
            return "simulator"
        if "redis-server" in cmd:
            return "redis"
        if p.pid == psutil.Process().pid:
            return "driver"
        if cmd.startswith("ray::"):
            # ray::SmppConnectionActor, ray::IDLE; a call in progress shows as ray::ThrottleActor.exchange
            return cmd.split()[0].split(".")[0]
        if "-m api.redirect" in cmd:
            return "redirect"
        if "-m api" in cmd:
            return "api"
        return "ray-system (raylet, gcs, …)"

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds per kind of process in the tree (driver, Ray workers, redis, simulator, …),
        the driver's without what the sampling itself took (``own_cpu``)."""
        self.sample()
        found: dict[str, float] = {}
        with self._lock:
            for kind, seconds in self._cpu.values():
                found[kind] = found.get(kind, 0.0) + seconds
            if "driver" in found:
                found["driver"] -= self.own_cpu
        return found

    def cpu_seconds(self) -> float:
        return sum(self.cpu_by_process().values())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--window", type=int, default=100)
    args = parser.parse_args()
    sampler = TreeSampler()
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="ulak-bench-") as tmp:
        sim, port = start_simulator(Path(tmp))
        try:
            op = bench_operator(port, binds=args.binds, window=args.window)
            settings = Settings(redis=RedisConfig(url=None), ray=RayConfig(num_cpus=2), operators=(op,))
            table = pa.table(
                {"phone": [f"90532{i:07d}" for i in range(args.messages)], "text": [TEXT] * args.messages}
            )
            with Cluster(settings, redis_dir=Path(tmp) / "redis") as cluster:
                cpu0 = sampler.cpu_by_process()
                t0 = time.perf_counter()
                counters = run_campaign(cluster, table, job_id="bench", receipt_wait=120)
                elapsed = time.perf_counter() - t0
                throttle = ray.get(cluster.throttle("op").describe.remote())
                stats = redis.Redis.from_url(cluster.redis_url).info("commandstats")
                redis_calls = {
                    name.removeprefix("cmdstat_"): round(st["calls"] / args.messages, 3)
                    for name, st in sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:8]
                }
                cpu1 = sampler.cpu_by_process()
                by_kind = {k: round(v - cpu0.get(k, 0.0), 1) for k, v in cpu1.items()}
                cpu = sum(by_kind.values())
        finally:
            sim.terminate()
            sim.wait(timeout=10)
    sampler.stop.set()
    result = {
        "messages": args.messages,
        "binds": args.binds,
        "window": args.window,
        "acked": counters["acked"],
        "delivered": counters["delivered"],
        "failed": counters["failed"],
        "unknown": counters["unknown"],
        "seconds": round(elapsed, 2),
        "msgs_per_second": round(args.messages / elapsed),
        "stack_cpu_seconds": round(cpu, 1),
        "cpu_seconds_by_process": by_kind,
        "stack_peak_rss_mib": round(sampler.peak_rss / 2**20),
        "stack_peak_pss_mib": round(sampler.peak_pss / 2**20),
        "leases": throttle["leases"],
        "redis_calls_per_message": redis_calls,
        "machine": f"{psutil.cpu_count()} cpu, {round(psutil.virtual_memory().total / 2**30)} GiB, "
        f"python {platform.python_version()}",
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
