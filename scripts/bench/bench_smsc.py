#!/usr/bin/env python3
"""Sustained rate of the bundled SMSC simulator, with delivery receipts, and what it costs in CPU.

Starts ``scripts/smsc_sim.py`` on a free port and drives it with ``smpp_load.py`` (a plain asyncio
ESME on Ulak's codec). On a 2-core machine the client and the simulator each take a core, so the
end-to-end rate is bounded by the slower of the two; the simulator's own CPU seconds per message tell
its capacity when it is not the bottleneck.

    python scripts/bench/bench_smsc.py --messages 200000 --binds 2 --window 100 [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--binds", type=int, default=2)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--record", action="store_true", help="let the simulator write its JSONL record")
    p.add_argument("--no-receipts", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        cmd = [
            sys.executable,
            str(ROOT / "scripts" / "smsc_sim.py"),
            "--port",
            "0",
            "--port-file",
            str(port_file),
        ]
        if args.record:
            cmd += ["--record", str(Path(tmp) / "record.jsonl")]
        sim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists():
                if time.monotonic() > deadline or sim.poll() is not None:
                    raise SystemExit("the simulator did not start")
                time.sleep(0.05)
            port = port_file.read_text().split()[0]
            sim_cpu0 = cpu_seconds(sim.pid)
            load = [
                sys.executable,
                str(HERE / "smpp_load.py"),
                "--port",
                port,
                "--messages",
                str(args.messages),
                "--binds",
                str(args.binds),
                "--window",
                str(args.window),
            ]
            if args.no_receipts:
                load.append("--no-receipts")
            out = subprocess.run(load, capture_output=True, text=True, check=True, cwd=ROOT)
            sim_cpu = cpu_seconds(sim.pid) - sim_cpu0
        finally:
            sim.send_signal(signal.SIGINT)
            sim.wait(timeout=30)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["receipts_enabled"] = not args.no_receipts
    result["record_enabled"] = args.record
    result["simulator_cpu_seconds"] = round(sim_cpu, 3)
    result["simulator_us_per_message"] = round(sim_cpu / args.messages * 1e6, 1)
    result["simulator_capacity_msgs_per_cpu_second"] = round(args.messages / sim_cpu) if sim_cpu else None
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
