"""How the ``ulak`` commands show a job: a live progress bar while it runs, a summary when it ends."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.client import ApiClient
from api.schemas import BIND_DOWN

TERMINAL = ("done", "failed", "cancelled")


def follow(client: ApiClient, job_id: str, console: Console, *, poll: float = 0.5) -> dict[str, Any]:
    """Show the job's progress until it ends; return its final view."""
    with Progress(
        TextColumn("[bold]{task.fields[state]:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("job", total=None, state="queued", detail="")
        while True:
            view = client.job(job_id)
            c, r = view["counts"], view["receipts"]
            finished = c["acked"] + c["failed"] + c["unknown"] + c["cancelled"]
            rate = view["rates"]["messages_per_second"]
            eta = view["eta_seconds"]
            detail = f"delivered {r['delivered']:,} · failed {c['failed']:,} · {rate:,.0f} msg/s" + (
                f" · ETA {eta:,.0f} s" if eta is not None else ""
            )
            if view["state"] == "ingesting" or c["rows"] == 0:
                detail = "reading and checking the upload…"
            progress.update(
                task,
                total=c["accepted"] or None,
                completed=finished,
                state=view["state"],
                detail=detail,
            )
            if view["state"] in TERMINAL:
                return view
            time.sleep(poll)


def _seconds(view: dict[str, Any]) -> float | None:
    times = view["times"]
    start = times.get("sending") or times.get("scheduled")
    end = times.get(view["state"]) if view["state"] in TERMINAL else None
    if not start or not end:
        return None
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def summary(view: dict[str, Any], console: Console) -> None:
    """The job's figures, and the identities they satisfy."""
    c, r, p = view["counts"], view["receipts"], view["parts"]
    table = Table(title=f"Job {view['id']}: {view['state']}", show_header=True)
    table.add_column("figure")
    table.add_column("messages", justify="right")
    rows: list[tuple[str, str]] = [
        ("rows in the upload", f"{c['rows']:,}"),
        ("refused at ingest", f"{c['rejected']:,}"),
        ("accepted", f"{c['accepted']:,}"),
        ("submitted", f"{c['submitted']:,}"),
        ("acknowledged by the SMSC", f"{c['acked']:,}"),
        ("failed (refused by the SMSC)", f"{c['failed']:,}"),
        ("unknown (connection lost in flight)", f"{c['unknown']:,}"),
        ("cancelled", f"{c['cancelled']:,}"),
        ("SMS parts sent", f"{p['sent']:,}"),
        ("delivered", f"{r['delivered']:,}"),
        ("undelivered / expired / rejected", f"{r['undelivered'] + r['expired'] + r['rejected']:,}"),
        ("awaiting a receipt", f"{r['awaiting']:,}"),
        ("delivery rate", f"{view['delivery_rate']:.1%}" if view["delivery_rate"] is not None else "–"),
    ]
    seconds = view.get("sending_seconds") or _seconds(view)
    if seconds:
        rows.append(("parts per second (while sending)", f"{p['sent'] / seconds:,.0f}"))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if view["rejected_reasons"]:
        console.print("refused: " + ", ".join(f"{k} {v:,}" for k, v in view["rejected_reasons"].items()))
    if view["error"]:
        console.print(f"[red]{view['error']['code']}[/red]: {view['error']['message']}")
    if view.get("waiting"):
        console.print(f"[yellow]waiting[/yellow]: {view['waiting']}")
    console.print(
        f"rows = accepted + refused: {c['rows']:,} = {c['accepted']:,} + {c['rejected']:,}; "
        f"submitted = acked + failed + unknown + in flight: {c['submitted']:,} = {c['acked']:,} + "
        f"{c['failed']:,} + {c['unknown']:,} + {c['in_flight']:,}"
    )


def blocked_binds(operators: list[dict[str, Any]], console: Console) -> None:
    """Say which binds cannot send now and why (a job routed to them waits for them)."""
    for op in operators:
        for b in op["binds"]:
            if b["state"] in BIND_DOWN:
                console.print(
                    f"[yellow]bind {op['name']}/{b['bind']} is {b['state']}[/yellow]: "
                    f"{b.get('last_error') or 'no error recorded'}; its operator's rows wait for it"
                )
