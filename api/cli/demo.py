"""The README's demo: the whole stack on one machine, driven through the HTTP API.

Starts the stack (``api.cli.stack.LocalStack``: Ulak's own Redis in a temporary directory, local Ray,
the bundled SMSC simulator serving every operator of configs/operators.yaml, and the control plane),
writes a campaign CSV with numbers in every usual form and a few bad ones, submits it over HTTP with a
Turkish template, follows it with a progress bar, and prints the job's figures and the first lines of
its row-level report.
"""

from __future__ import annotations

import csv
import os
import random
import tempfile
from pathlib import Path

import phonenumbers
from rich.console import Console

from api.cli.console import follow, summary
from api.cli.stack import LocalStack
from api.client import ApiClient
from cluster.jobs.states import JobState
from ulak.redis_server import free_port
from ulak.settings import JobsConfig, RedisConfig, Settings, load_settings

NAMES = ["Ayşe", "Mehmet", "Çağla", "İsmail", "Gülşen", "Oğuz", "Şule", "Ümit"]

DEMO_SIMULATOR_ARGS = (
    "--dlr-delay",
    "0.2:2",
    "--dlr-mix",
    "DELIVRD=0.93,UNDELIV=0.04,EXPIRED=0.02,REJECTD=0.01",
)


def demo_settings(*, tps_scale: float, workdir: Path) -> Settings:
    """configs/*.yaml with the demo's own Redis and job directory, and caps scaled by *tps_scale*."""
    environ = {**os.environ}
    for var in ("ULAK_TURKCELL_PASSWORD", "ULAK_VODAFONE_PASSWORD", "ULAK_TELEKOM_PASSWORD"):
        environ.setdefault(var, "demo")
    base = load_settings(environ=environ)
    operators = tuple(
        op.model_copy(
            update={
                "tps": op.tps * tps_scale,
                "binds": tuple(
                    b.model_copy(update={"tps": b.tps * tps_scale}) if b.tps else b for b in op.binds
                ),
            }
        )
        for op in base.operators
    )
    return base.model_copy(
        update={
            "redis": RedisConfig(url=None, data_dir=workdir / "redis", appendonly=False),
            "ray": base.ray.model_copy(update={"address": None}),
            "jobs": JobsConfig(data_dir=workdir / "jobs", receipt_wait=15),
            "api": base.api.model_copy(update={"host": "127.0.0.1"}),
            "operators": operators,
        }
    )


def demo_stack(settings: Settings, workdir: Path) -> LocalStack:
    """The demo's stack, not started: the simulator with receipts, free ports, its own run folder
    in *workdir*, nothing saved for later commands (``bench_product.py`` runs the same)."""
    return LocalStack(
        settings,
        simulator=True,
        sim_args=DEMO_SIMULATOR_ARGS,
        api_port=free_port(),
        redirect_port=free_port(),
        workdir=workdir / "run",
        save_info=False,
    )


def write_campaign(path: Path, rows: int, prefixes: list[str], *, seed: int = 1) -> None:
    """A campaign CSV as people export them: numbers in every usual form, a few bad or repeated ones."""
    rng = random.Random(seed)
    # Only ranges the numbering plan (phonenumbers' metadata) has: the bad rows are the planted ones.
    prefixes = [q for q in prefixes if phonenumbers.is_valid_number(phonenumbers.parse(f"+{q}1234567"))]
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["Telefon", "Ad", "Kod"])
        for i in range(rows):
            national = rng.choice(prefixes)[2:] + f"{i:07d}"[-7:]  # 532xxxxxxx
            form = i % 4
            phone = (
                f"+90 {national[:3]} {national[3:6]} {national[6:]}",
                "0" + national,
                "90" + national,
                national,
            )[form]
            if i % 997 == 0:
                phone = "0212 555 12 12"  # a landline
            elif i % 499 == 0:
                phone = "53"  # a typo
            out.writerow([phone, rng.choice(NAMES), f"{rng.randrange(16**6):06X}"])


TEMPLATE = "Merhaba {Ad}, Şubat kampanyası başladı: tüm ürünlerde %20 indirim! İndirim kodunuz: {Kod}"


def run_demo(rows: int, *, tps_scale: float = 10.0) -> int:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="ulak-demo-") as tmp:
        workdir = Path(tmp)
        settings = demo_settings(tps_scale=tps_scale, workdir=workdir)
        caps = ", ".join(f"{op.name} {op.tps:,.0f}/s" for op in settings.operators)
        console.print(f"[bold]Ulak demo[/bold]: {rows:,} rows; operators' caps (parts/s): {caps}")
        with console.status("starting Redis, Ray, the SMSC simulator and the control plane…"):
            stack = demo_stack(settings, workdir).start()
        try:
            campaign = workdir / "kampanya.csv"
            write_campaign(campaign, rows, [p for op in settings.operators for p in op.prefixes])
            console.print(f"control plane at {stack.api_url}; submitting {campaign.name} over HTTP")
            with ApiClient(stack.api_url, stack.token) as client:
                job = client.submit(campaign, {"template": TEMPLATE, "name": "demo"})
                view = follow(client, job["id"], console)
                summary(view, console)
                report = workdir / "report.csv"
                client.download(job["id"], report)
                with report.open(encoding="utf-8") as f:
                    lines = [next(f, "") for _ in range(4)]
                console.print("first lines of the row-level report (GET /v1/jobs/{id}/report):")
                console.print("".join(lines).rstrip(), markup=False, highlight=False)
        finally:
            with console.status("stopping…"):
                stack.stop()
    return 0 if view["state"] == JobState.DONE else 1
