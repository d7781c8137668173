#!/usr/bin/env python3
"""Soak: campaigns back to back for N minutes at a fixed limit, with a fault every so often.

The stack is the chaos test's (``tests/integration/test_chaos.py``), so what is soaked is what CI
tests: the API as a process of its own, local Ray, our Redis with an append-only file, and the
simulator over TCP enforcing the binds' limits. Two operators (three binds), each account capped
at ``--tps``. Faults go round, one every ``--fault-every`` seconds: the SMSC's connections dropped,
a bind actor killed, the SMSC stopped and started again, Redis restarted, Redis crashed (SIGKILL,
its file cut back a second), a throttle killed, the API restarted, the SMSC killed (SIGKILL).

Every 15 s it samples the resident memory of every process of the stack (this one's descendants,
grouped by what they are), and at the end reads what the SMSC recorded: parts twice at the SMSC
(duplicated), rows acked by us and absent at the SMSC or never final (lost), and ``unknown`` (sent
maybe, as at-most-once says). Prints one JSON object; ``--out`` also writes it to a file.

    python scripts/bench/soak.py --minutes 30 --tps 150 --fault-every 60
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import psutil
import ray

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers import ApiProcess, SimProcess, crash_redis  # noqa: E402
from tests.integration.stack import (  # noqa: E402
    SIM_ARGS,
    TEMPLATE,
    Stack,
    mixed_campaign,
    post_job,
    restart_smsc,
    running_stack,
)

FAULTS = (
    "drop",
    "kill_bind",
    "restart_smsc",
    "restart_redis",
    "crash_redis",
    "kill_throttle",
    "restart_api",
    "kill_smsc",
)
PREFIXES = ("905320", "905420")  # both operators


def label(process: psutil.Process) -> str:
    """What a process of the stack is, for grouping its memory."""
    try:
        cmd = process.cmdline()
        name = process.name()
    except psutil.Error:
        return "gone"
    text = " ".join(cmd)
    if name.startswith("ray::"):
        return name
    for marker, what in (
        ("redis-server", "redis-server"),
        ("simulator", "simulator"),
        ("-m api", "api"),
        ("raylet", "raylet"),
        ("gcs_server", "gcs_server"),
        ("default_worker", "ray worker (idle)"),
        ("dashboard", "ray dashboard"),
        ("log_monitor", "ray log_monitor"),
        ("monitor.py", "ray monitor"),
    ):
        if marker in text:
            return what
    return name


def memory() -> dict[str, float]:
    """MiB resident per kind of process (summed over the processes of that kind)."""
    me = psutil.Process()
    rss: dict[str, float] = defaultdict(float)
    rss["soak driver"] = me.memory_info().rss / 2**20
    for child in me.children(recursive=True):
        try:
            rss[label(child)] += child.memory_info().rss / 2**20
        except psutil.Error:
            continue
    return {k: round(v, 1) for k, v in sorted(rss.items())}


def fault(stack: Stack, action: str, n: int, rng: random.Random) -> None:
    if action == "drop":
        stack.sim.control(op="drop")
    elif action == "kill_bind":
        victim = rng.choice(["bind:tcell:t1", "bind:tcell:t2", "bind:voda:v1"])
        ray.kill(ray.get_actor(victim, namespace=stack.namespace), no_restart=True)
    elif action in ("restart_smsc", "kill_smsc"):
        restart_smsc(stack, n, kill=action == "kill_smsc")
    elif action == "restart_redis":
        stack.redis_server.stop()
        time.sleep(rng.uniform(0.5, 2.0))
        stack.redis_server.start()
    elif action == "crash_redis":
        before = stack.redis_server.aof.stat().st_size
        time.sleep(1.0)  # a second of writes, then the crash loses them
        crash_redis(stack.redis_server, keep_bytes=before)
    elif action == "kill_throttle":
        victim = rng.choice(["throttle:tcell", "throttle:voda"])
        ray.kill(ray.get_actor(victim, namespace=stack.namespace), no_restart=False)
    elif action == "restart_api":
        port = stack.api.port
        stack.api.stop()
        stack.api = ApiProcess(stack.workdir, stack.config_dir, stack.env, port=port)


def get_json(stack: Stack, path: str) -> Any:
    """GET through whatever API is up now (it is restarted now and then)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            with stack.client() as http:
                answer = http.get(path)
            if answer.status_code == 200:
                return answer.json() if "report" not in path else answer.text
        except Exception:  # the API restarting, or Redis away: 503
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"GET {path} did not answer 200 for two minutes")
        time.sleep(1.0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--tps", type=int, default=150, help="each operator's account cap, parts/s")
    parser.add_argument("--fault-every", type=float, default=60.0, help="seconds between faults")
    parser.add_argument("--rows", type=int, default=6000, help="rows a campaign")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    return parser


def _context(
    elapsed: float, jobs: list[str], faults: list[tuple[float, str]], samples: list[dict[str, Any]]
) -> dict[str, Any]:
    """The command, the machine, and how the soak went (beside the tally of its jobs)."""
    return {
        "command": "python scripts/bench/soak.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "minutes": round(elapsed / 60, 1),
        "jobs": len(jobs),
        "faults": faults,
        "rss_first_last": {"first": samples[1]["rss_mib"], "last": samples[-1]["rss_mib"]}
        if len(samples) > 1
        else {},
        "samples": samples,
    }


def main() -> int:
    args = _parser().parse_args()
    rng = random.Random(args.seed)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    workdir = Path(tempfile.mkdtemp(prefix="ulak-soak-"))
    sim = SimProcess(workdir, *SIM_ARGS, "--seed", str(args.seed))
    began = time.monotonic()
    end = began + args.minutes * 60
    samples: list[dict[str, Any]] = []
    faults: list[tuple[float, str]] = []
    jobs: list[str] = []
    next_fault = began + args.fault_every
    next_sample = began
    with running_stack(workdir, sim, tps=args.tps, name="soak", appendonly=True) as stack:
        current: str | None = None
        acked_done = 0
        while True:
            now = time.monotonic()
            if current is None and now < end:
                path = workdir / f"soak-{len(jobs)}.csv"
                mixed_campaign(path, PREFIXES, args.rows)
                # numbers differ per campaign: the SMSC's record tells campaigns apart by them
                offset = len(jobs) * args.rows
                _renumber(path, offset)
                with stack.client() as http:
                    current = post_job(http, path, template=TEMPLATE).json()["id"]
                jobs.append(current)
            if now >= next_sample:
                view = get_json(stack, f"/v1/jobs/{current}") if current else {}
                samples.append(
                    {
                        "t": round(now - began),
                        "rss_mib": memory(),
                        "parts_acked_so_far": acked_done + view.get("parts", {}).get("acked", 0),
                    }
                )
                next_sample = now + 15
            if now >= next_fault and now < end:
                action = FAULTS[len(faults) % len(FAULTS)]
                fault(stack, action, len(faults), rng)
                faults.append((round(now - began, 1), action))
                next_fault = time.monotonic() + args.fault_every
            if current is not None:
                state = get_json(stack, f"/v1/jobs/{current}")["state"]
                if state in ("done", "failed", "cancelled"):
                    acked_done += get_json(stack, f"/v1/jobs/{current}")["parts"]["acked"]
                    current = None
                    if time.monotonic() >= end:
                        break
            elif now >= end:
                break
            time.sleep(1.0)
        elapsed = time.monotonic() - began
        result = _tally(stack, jobs)
    ray.shutdown()
    result.update(_context(elapsed, jobs, faults, samples))
    result["parts_per_second"] = round(result["parts_at_smsc"] / elapsed, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if result["duplicated"] == 0 and result["lost"] == 0 else 1


def _renumber(path: Path, offset: int) -> None:
    """Shift a campaign's numbers by *offset*, so that no two campaigns share one."""
    rows = list(csv.reader(path.open(encoding="utf-8")))
    for row in rows[1:]:
        number = row[0]
        row[0] = number[:7] + f"{int(number[7:]) + offset:0{len(number) - 7}d}"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def _tally(stack: Stack, jobs: list[str]) -> dict[str, Any]:
    """What the SMSC recorded against what the jobs say: duplicated parts, lost rows, unknown rows."""
    records = [r for r in stack.sim.records() if r["dst"].startswith(PREFIXES)]
    parts = Counter((r["dst"], tuple(r["concat"] or (0, 0, 1))[2]) for r in records)
    at_smsc = {dst for dst, _ in parts}
    states: Counter[str] = Counter()
    lost = 0
    for job in jobs:
        view = get_json(stack, f"/v1/jobs/{job}")
        states[view["state"]] += 1
        for row in csv.DictReader(io.StringIO(get_json(stack, f"/v1/jobs/{job}/report"))):
            never_final = row["status"] in ("pending", "in_flight")
            lost += never_final or (row["status"] == "acked" and row["msisdn"] not in at_smsc)
    return {
        "job_states": dict(states),
        "parts_at_smsc": len(records),
        "duplicated": sum(n - 1 for n in parts.values() if n > 1),
        "lost": lost,
        "unknown": sum(get_json(stack, f"/v1/jobs/{j}")["counts"]["unknown"] for j in jobs),
        "throttled_at_smsc": stack.sim.stats().get("rejected", {}).get("ESME_RTHROTTLED", 0),
    }


if __name__ == "__main__":
    sys.exit(main())
