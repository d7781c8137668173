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
from cluster.jobs.states import JobState


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
        task = progress.add_task("job", total=None, state=JobState.QUEUED.value, detail="")
        while True:
            view = client.job(job_id)
            c, r = view["counts"], view["receipts"]
            stopped = sum(c.get(k, 0) for k in ("opted_out", "no_consent", "frequency_capped", "expired"))
            finished = c["acked"] + c["failed"] + c["unknown"] + c["cancelled"] + stopped
            rate = view["rates"]["messages_per_second"]
            eta = view["eta_seconds"]
            detail = f"delivered {r['delivered']:,} · failed {c['failed']:,} · {rate:,.0f} msg/s" + (
                f" · ETA {eta:,.0f} s" if eta is not None else ""
            )
            if view["state"] == JobState.INGESTING or c["rows"] == 0:
                detail = "reading and checking the upload…"
            progress.update(
                task,
                total=c["accepted"] or None,
                completed=finished,
                state=view["state"],
                detail=detail,
            )
            if view["ended"]:
                return view
            time.sleep(poll)


def _seconds(view: dict[str, Any]) -> float | None:
    times = view["times"]
    start = times.get(JobState.SENDING) or times.get(JobState.SCHEDULED)
    end = times.get(view["state"]) if view["ended"] else None
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
        ("stopped: opted out while sending", f"{c.get('opted_out', 0):,}"),
        ("stopped: consent withdrawn while sending", f"{c.get('no_consent', 0):,}"),
        ("not sent: frequency cap", f"{c.get('frequency_capped', 0):,}"),
        ("not sent: window past validity", f"{c.get('expired', 0):,}"),
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
    if view.get("capped_at_start"):
        console.print(f"frequency cap full when prepared: {view['capped_at_start']:,} rows")
    plan = view.get("send_plan")
    if plan:
        hours = ", ".join(
            f"{h['hour'][11:16]} {h['optimized'] + h['control']:,}"
            for h in plan["hours"]
            if h["optimized"] + h["control"]
        )
        console.print(
            f"send times (UTC hour: recipients; {plan['control_share']:.0%} at random as the control; "
            f"{plan['with_history']:,} with a history): {hours}"
        )
    if view["rejected_reasons"]:
        console.print("refused: " + ", ".join(f"{k} {v:,}" for k, v in view["rejected_reasons"].items()))
    if view["error"]:
        console.print(f"[red]{view['error']['code']}[/red]: {view['error']['message']}")
    if view.get("waiting"):
        console.print(f"[yellow]waiting[/yellow]: {view['waiting']}")
    identity = f"rows = accepted + refused: {c['rows']:,} = {c['accepted']:,} + {c['rejected']:,}; "
    if c.get("held_out"):
        identity = (
            f"rows = accepted + refused + held out: {c['rows']:,} = {c['accepted']:,} + "
            f"{c['rejected']:,} + {c['held_out']:,}; "
        )
    console.print(
        identity + f"submitted = acked + failed + unknown + in flight: {c['submitted']:,} = {c['acked']:,} + "
        f"{c['failed']:,} + {c['unknown']:,} + {c['in_flight']:,}"
    )


def _pct(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "–"


def _money(text: str) -> str:
    whole, _, cents = f"{float(text):,.2f}".partition(".")
    return f"{whole}.{cents}"


def kpi_table(summary: dict[str, Any], console: Console) -> None:
    """A campaign's KPIs (``GET /v1/jobs/{id}/summary``): the total and each operator side by side,
    then the goal and the time series' busiest points."""
    groups = [("total", summary), *summary["operators"].items(), *summary.get("variants", {}).items()]
    title = f"Job {summary['job_id']}" + (f" · {summary['name']}" if summary.get("name") else "")
    table = Table(title=f"{title}: {summary['state']} ({summary['currency']})")
    table.add_column("figure")
    for name, _ in groups:
        table.add_column(name, justify="right")
    lines: list[tuple[str, Any]] = [
        ("recipients", lambda g: f"{g['recipients']:,}"),
        ("sent (accepted by the SMSC)", lambda g: f"{g['sent']:,}"),
        ("failed", lambda g: f"{g['failed']:,}"),
        ("delivered", lambda g: f"{g['delivered']:,}"),
        ("delivery rate", lambda g: _pct(g["delivery_rate"])),
        ("delivery time p50 / p90 (s)", lambda g: _times(g["delivery_time"])),
        ("SMS parts sent", lambda g: f"{g['parts_sent']:,}"),
        ("cost", lambda g: _money(g["cost"])),
        ("unique clicks", lambda g: f"{g['clicks']['unique']:,}"),
        ("total clicks", lambda g: f"{g['clicks']['total']:,}"),
        ("click rate (unique / delivered)", lambda g: _pct(g["click_rate"])),
        ("conversions", lambda g: f"{g['conversions']:,}"),
        ("conversion rate (conversions / clicks)", lambda g: _pct(g["conversion_rate"])),
        ("value", lambda g: _money(g["value"])),
        ("ROI ((value - cost) / cost)", lambda g: _pct(g["roi"])),
    ]
    for label, cell in lines:
        table.add_row(label, *(cell(g) for _, g in groups))
    console.print(table)
    reasons = summary["failed_by_reason"]
    if reasons:
        console.print("not delivered: " + ", ".join(f"{k} {v:,}" for k, v in reasons.items()))
    console.print(
        f"bot clicks (previews, scanners) apart: {summary['bot_clicks']:,}; conversions outside the "
        f"windows ({summary['windows_days']['click']:g} d after a click, "
        f"{summary['windows_days']['delivery']:g} d after delivery): {summary['unattributed_conversions']:,}"
    )
    _comparisons(summary, console)
    _survey(summary.get("survey"), console)


def _comparisons(summary: dict[str, Any], console: Console) -> None:
    """The A/B test's verdicts, the lift over the holdout, and the goals."""
    test = summary.get("ab_test")
    if test:
        for kind in ("clicks", "conversions"):
            found = test[kind]
            best = ", ".join(f"{k} {v:.0%}" for k, v in found["probability_best"].items())
            verdict = "significant" if found["significant"] else "not significant"
            console.print(
                f"A/B {kind} ({found['rate']}): leader {found['leader'] or '–'}, p = {found['p_value']} "
                f"({verdict}); probability best: {best}"
            )
    holdout = summary.get("holdout")
    if holdout and holdout["lift"] is not None:
        low, high = holdout["lift_interval_95"]
        console.print(
            f"lift over the holdout: {holdout['lift']:+.2%} (95 % interval {low:+.2%} to {high:+.2%}; "
            f"sent {holdout['sent']['rate']:.2%} of {holdout['sent']['recipients']:,}, held out "
            f"{holdout['held_out']['rate']:.2%} of {holdout['held_out']['recipients']:,})"
        )
    for kind, goal in (summary.get("goal") or {}).items():
        console.print(f"goal ({kind}): {goal['reached']} of {goal['target']} = {goal['progress']:.1%}")


def _survey(survey: dict[str, Any] | None, console: Console) -> None:
    """A survey's answers: response rate, YES/NO or NPS, the free replies."""
    if survey:
        t = survey["time_to_answer"]
        console.print(
            f"survey ({survey['kind']}): {survey['responses']:,} answers, response rate "
            f"{_pct(survey['response_rate'])}, time to answer p50 / p90 {_times(t)} s; "
            f"{survey['comments']:,} comments, {survey['unparsed']:,} replies that were no answer"
        )
        if "yes_no" in survey:
            yn = survey["yes_no"]
            console.print(
                f"  YES {yn['yes']:,} ({_pct(yn['yes_share'])}) · NO {yn['no']:,} ({_pct(yn['no_share'])})"
            )
        else:
            n = survey["nps"]
            spread = " ".join(f"{s}:{c}" for s, c in n["distribution"].items())
            console.print(
                f"  NPS {n['nps'] if n['nps'] is not None else '–'} · promoters {n['promoters']:,}, passives "
                f"{n['passives']:,}, detractors {n['detractors']:,} · {spread}"
            )
        for reply in survey["free_replies"][:10]:
            console.print(f"  +{reply['number']}: {reply['text']}")


def _times(times: dict[str, Any]) -> str:
    if times["p50_seconds"] is None:
        return "–"
    return f"{times['p50_seconds']:,.1f} / {times['p90_seconds']:,.1f}"


def blocked_binds(operators: list[dict[str, Any]], console: Console) -> None:
    """Say which binds cannot send now and why (a job routed to them waits for them)."""
    for op in operators:
        for b in op["binds"]:
            if b["state"] in BIND_DOWN:
                console.print(
                    f"[yellow]bind {op['name']}/{b['bind']} is {b['state']}[/yellow]: "
                    f"{b.get('last_error') or 'no error recorded'}; its operator's rows wait for it"
                )
