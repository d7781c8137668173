"""The README's demo: the whole stack on one machine against the bundled simulator.

Starts the SMSC simulator on a free port, Ulak's own Redis in a temporary directory, local Ray with
one actor per configured bind (configs/operators.yaml, pointed at the simulator), generates a campaign
of Turkish, GSM, UCS-2 and long messages, sends it at the operators' configured speeds with a progress
bar, and prints the report.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cluster.campaign import run_campaign
from cluster.local import Cluster
from ulak.settings import RayConfig, RedisConfig, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "Merhaba {name}, Şubat kampanyası başladı: tüm ürünlerde %20 indirim! Detaylar: https://ulak.example/k/{code}",
    "Sayın {name}, siparişiniz yola çıktı. Takip kodu: {code}",
    "Hello {name}, your one-time code is {code}",
    "Уважаемый {name}, ваш код {code} 😀",
    "{name}, hafta sonuna özel kampanyamızı kaçırmayın! Seçili ürünlerde ikinci ürün %50 indirimli, "
    "ücretsiz kargo ve hediye çeki fırsatı sizi bekliyor. Kampanya pazar gecesi sona erer. Kod: {code}",
]
NAMES = ["Ayşe", "Mehmet", "Çağla", "İsmail", "Gülşen", "Oğuz", "Şule", "Ümit"]


def generate(rows: int, prefixes: list[str], seed: int = 1) -> pa.Table:
    rng = random.Random(seed)
    phones, texts = [], []
    for i in range(rows):
        prefix = rng.choice(prefixes)
        phones.append(prefix + f"{i:012d}"[-(12 - len(prefix)) :])
        texts.append(rng.choice(TEXTS).format(name=rng.choice(NAMES), code=f"{rng.randrange(16**6):06X}"))
    return pa.table({"phone": phones, "text": texts})


DEMO_SIMULATOR_ARGS = (
    "--dlr-delay",
    "0.2:2",
    "--dlr-mix",
    "DELIVRD=0.93,UNDELIV=0.04,EXPIRED=0.02,REJECTD=0.01",
)


def start_simulator(workdir: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """The bundled simulator on a free port (extra *args* go to it); returns the process and port."""
    port_file = workdir / "sim.port"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "smsc_sim.py"),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            *args,
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the SMSC simulator did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text().split()[0])


def demo_settings(port: int, *, no_cap: bool) -> Settings:
    environ = {**os.environ}
    for var in ("ULAK_TURKCELL_PASSWORD", "ULAK_VODAFONE_PASSWORD", "ULAK_TELEKOM_PASSWORD"):
        environ.setdefault(var, "demo")
    base = load_settings(environ=environ)
    operators = tuple(
        op.model_copy(
            update={
                "binds": tuple(b.model_copy(update={"host": "127.0.0.1", "port": port}) for b in op.binds),
                **({"tps": 100_000.0} if no_cap else {}),
            }
        )
        for op in base.operators
    )
    return Settings(redis=RedisConfig(url=None), ray=RayConfig(num_cpus=2), operators=operators)


def run_demo(rows: int, *, no_cap: bool = False) -> int:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="ulak-demo-") as tmp:
        workdir = Path(tmp)
        sim, port = start_simulator(workdir, *DEMO_SIMULATOR_ARGS)
        try:
            settings = demo_settings(port, no_cap=no_cap)
            prefixes = [p for op in settings.operators for p in op.prefixes]
            table = generate(rows, prefixes)
            caps = ", ".join(f"{op.name} {op.tps:g}/s" for op in settings.operators)
            console.print(
                f"[bold]Ulak demo[/bold]: {rows:,} messages, simulator on port {port}, caps: {caps}"
            )
            console.print("starting Redis, Ray and one actor per bind …")
            with Cluster(settings, redis_dir=workdir / "redis") as cluster:
                with Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[detail]}"),
                    TimeElapsedColumn(),
                    console=console,
                ) as progress:
                    sent = progress.add_task("acked", total=rows, detail="")
                    started = time.monotonic()

                    def update(c: dict[str, int]) -> None:
                        rate = c["parts_acked"] / max(0.001, time.monotonic() - started)
                        progress.update(
                            sent,
                            completed=c["acked"]
                            + c["failed"]
                            + c["unknown"]
                            + c["unroutable"]
                            + c["too_long"],
                            detail=f"{rate:,.0f} parts/s, delivered {c['delivered']:,}",
                        )

                    counters = run_campaign(cluster, table, job_id="demo", receipt_wait=15, progress=update)
                elapsed = time.monotonic() - started
            _report(console, counters, elapsed)
        finally:
            sim.terminate()
            sim.wait(timeout=10)
    return 0


def _report(console: Console, c: dict[str, int], elapsed: float) -> None:
    table = Table(title="Campaign report", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rate = c["delivered"] / c["acked"] if c["acked"] else 0.0
    rows: list[tuple[str, int | str]] = [
        ("messages", c["total"]),
        ("submitted", c["submitted"]),
        ("acknowledged by the SMSC", c["acked"]),
        ("failed", c["failed"]),
        ("unknown (lost in flight)", c["unknown"]),
        ("unroutable / too long", c["unroutable"] + c["too_long"]),
        ("SMS parts sent", c["parts_acked"]),
        ("delivered", c["delivered"]),
        ("undelivered / expired / rejected", c["undelivered"] + c["expired"] + c["rejected"]),
        ("delivery rate", f"{rate:.1%}"),
        ("parts per second", f"{c['parts_acked'] / elapsed:,.0f}"),
    ]
    for name, value in rows:
        table.add_row(name, f"{value:,}" if isinstance(value, int) else value)
    console.print(table)
    in_flight = c["submitted"] - c["acked"] - c["failed"] - c["unknown"]
    console.print(
        f"submitted = acked + failed + unknown + in flight: {c['submitted']:,} = {c['acked']:,} + "
        f"{c['failed']:,} + {c['unknown']:,} + {in_flight:,}"
    )
