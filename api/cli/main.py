"""The ``ulak`` command line.

The stack: ``ulak up`` (Redis, Ray, the control plane; ``--sim`` adds the bundled SMSC simulator),
``ulak demo`` (all of it with a generated campaign, over HTTP). Jobs, through the HTTP API:
``ulak submit FILE`` (with a live progress bar), ``ulak jobs``, ``ulak status ID``,
``ulak pause|resume|cancel ID``, ``ulak report ID -o out.csv``; ``ulak keys create|list|revoke``.
Offline tools: ``ulak plan`` (how a text is encoded and split), ``ulak ingest FILE`` (dry run of an
upload), ``ulak config`` (validate the configuration), ``ulak sim`` (the simulator).

The job commands find the API and a key in ``--api``/``--key``, else ``ULAK_API_URL``/``ULAK_API_KEY``,
else the stack file ``ulak up`` writes.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cluster.jobs.states import JobState
from ulak import __version__, redisclient
from ulak.settings import ConfigError, load_settings
from ulak.text import Concat, MessageTooLong, plan


def _plan(args: argparse.Namespace, console: Console) -> int:
    languages = () if args.no_national else (1,)
    try:
        result = plan(args.text, concat=Concat(args.concat), languages=languages, max_parts=args.max_parts)
    except MessageTooLong as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    console.print(
        f"encoding [bold]{result.encoding.name}[/bold] (data_coding {result.data_coding}), "
        f"{result.length} {'UTF-16 units' if result.encoding.ucs2 else 'septets'}, "
        f"[bold]{result.parts}[/bold] part(s), {len(result.segments)} PDU(s)"
    )
    table = Table("PDU", "esm_class", "SAR", "octets", "payload (hex)")
    for i, seg in enumerate(result.segments, start=1):
        table.add_row(
            str(i), f"0x{seg.esm_class:02X}", str(seg.sar or ""), str(len(seg.data)), seg.data.hex()
        )
    console.print(table)
    return 0


def _config(args: argparse.Namespace, console: Console) -> int:
    try:
        settings = load_settings(args.config_dir)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    table = Table("operator", "prefixes", "parts/s", "binds", "concatenation", "national tables")
    for op in settings.operators:
        binds = ", ".join(
            f"{b.name} {b.host}:{b.port} window {b.window}" + (f" {b.tps:g}/s" if b.tps else "")
            for b in op.binds
        )
        table.add_row(
            op.name,
            " ".join(op.prefixes),
            f"{op.tps:g}",
            binds,
            op.concatenation.value,
            ", ".join(op.national_languages) or "none",
        )
    console.print(table)
    console.print(
        f"redis: {settings.redis.url or 'embedded (started by Ulak)'}; ray: {settings.ray.address or 'local'}"
    )
    return 0


def _sim(argv: list[str]) -> int:
    from ulak.sim.smsc import main as simulate  # noqa: PLC0415 - only this command needs it

    return simulate(argv)


def _demo(args: argparse.Namespace) -> int:
    from api.cli.demo import run_demo  # noqa: PLC0415 - imports Ray, which the other commands do not need

    return run_demo(args.rows, tps_scale=args.tps_scale)


def _up(args: argparse.Namespace, console: Console) -> int:
    from api.cli.stack import LocalStack, stack_file  # noqa: PLC0415 - imports Ray

    environ = dict(os.environ)
    if args.address:
        environ["ULAK_RAY__ADDRESS"] = args.address
    if args.sim:  # the simulator accepts the stack's own password, whatever the variables say
        environ.update({b.password_env: "sim" for b in _bind_configs(args.config_dir, environ)})
    try:
        settings = load_settings(args.config_dir, environ=environ)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    stack = LocalStack(settings, simulator=args.sim, api_port=args.port)
    try:
        with console.status(
            "starting Redis, Ray" + (", the simulator" if args.sim else "") + " and the API…"
        ):
            stack.start()
        console.print(f"[green]Ulak is up[/green]: API {stack.api_url} (docs at {stack.api_url}/docs)")
        console.print(f"web manager: {stack.api_url}/ui/ (sign in with the API key)")
        console.print(f"tracked links: {stack.redirect_url}/<code> (links.base_url names the short domain)")
        if stack.token:
            console.print(f"API key (kept in {stack_file()}): {stack.token}")
        console.print("Ctrl-C stops everything; jobs still running resume on the next `ulak up`.")
        stack.supervise()
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        with console.status("stopping…"):
            stack.stop()
    return 0


def _bind_configs(config_dir: Path | None, environ: dict[str, str]) -> list[Any]:
    """The binds as configured, read before the passwords are resolved (for ``up --sim``)."""
    import yaml  # noqa: PLC0415

    from ulak.settings import DEFAULT_CONFIG_DIR, BindConfig  # noqa: PLC0415

    directory = config_dir or DEFAULT_CONFIG_DIR
    binds = []
    for path in sorted(Path(directory).glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        for op in data.get("operators") or []:
            for b in op.get("binds") or []:
                binds.append(BindConfig.model_validate({**b, "password": "x"}))
    return binds


def _client(args: argparse.Namespace) -> Any:
    from api.cli.stack import StackInfo  # noqa: PLC0415
    from api.client import ApiClient  # noqa: PLC0415

    info = StackInfo.load()
    url = args.api or os.environ.get("ULAK_API_URL") or (info.api_url if info else "http://127.0.0.1:8080")
    key = args.key or os.environ.get("ULAK_API_KEY") or (info.token if info else None)
    return ApiClient(url, key)


def _jobs(args: argparse.Namespace, console: Console) -> int:
    """The commands about jobs: submit, jobs (and purge), status, pause/resume/cancel, summary, report."""
    from api.client import ApiClientError  # noqa: PLC0415

    command = "purge" if args.command == "jobs" and args.action == "purge" else args.command
    try:
        with _client(args) as client:
            return _JOB_COMMANDS[command](client, args, console)
    except ApiClientError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1


def _submit(client: Any, args: argparse.Namespace, console: Console) -> int:
    from api.cli.console import follow, summary  # noqa: PLC0415

    options = {
        "template": args.template,
        "text_column": args.text_column,
        "phone_column": args.phone_column,
        "sheet": args.sheet,
        "encoding": args.encoding,
        "operators": ",".join(args.operators) if args.operators else None,
        "sender": args.sender,
        "send_at": args.send_at,
        "link_url": args.link_url,
        "send_window": args.send_window,
        "window_timezone": args.timezone,
        "validity_minutes": args.validity,
        "name": args.name,
        "brand": args.brand,
        "category": "commercial" if args.commercial else None,
        "frequency_cap": args.frequency_cap,
        "send_time": args.send_time,
        "send_time_horizon_hours": args.send_time_horizon,
        "send_time_control": args.send_time_control,
        "dry_run": args.dry_run or None,
    }
    job = client.submit(args.file, options, idempotency_key=args.idempotency_key)
    console.print(f"job [bold]{job['id']}[/bold] accepted")
    if args.no_wait:
        return 0
    view = follow(client, job["id"], console)
    summary(view, console)
    return 0 if view["state"] == JobState.DONE else 1


def _purge(client: Any, args: argparse.Namespace, console: Console) -> int:
    ids = client.purge(older_than_days=args.older_than, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    console.print(f"{verb} {len(ids):,} job(s) that ended long enough ago" + (": " if ids else ""))
    for job_id in ids:
        print(job_id)
    return 0


def _list_jobs(client: Any, args: argparse.Namespace, console: Console) -> int:
    table = Table("id", "name", "state", "rows", "accepted", "acked", "delivered", "created")
    for v in client.jobs(state=args.state, limit=args.limit):
        c = v["counts"]
        table.add_row(
            v["id"],
            v["options"].get("name", ""),
            v["state"],
            f"{c['rows']:,}",
            f"{c['accepted']:,}",
            f"{c['acked']:,}",
            f"{v['receipts']['delivered']:,}",
            v["times"].get("created", ""),
        )
    console.print(table)
    return 0


def _status(client: Any, args: argparse.Namespace, console: Console) -> int:
    from api.cli.console import blocked_binds, summary  # noqa: PLC0415

    view = client.job(args.id)
    if args.json:
        console.print_json(data=view)
    else:
        summary(view, console)
        if not view["ended"]:
            blocked_binds(client.operators(), console)
    return 0


def _steer(client: Any, args: argparse.Namespace, console: Console) -> int:
    view = client.steer(args.id, args.command)
    console.print(f"job {args.id}: {view['state']}")
    return 0


def _summary(client: Any, args: argparse.Namespace, console: Console) -> int:
    from api.cli.console import kpi_table  # noqa: PLC0415

    if args.csv:
        sys.stdout.buffer.write(client.summary_csv(args.id))
    elif args.json:
        console.print_json(data=client.summary(args.id))
    else:
        kpi_table(client.summary(args.id), console)
    return 0


def _report(client: Any, args: argparse.Namespace, console: Console) -> int:
    size = client.download(args.id, args.output, kind="rejected" if args.rejected else "report")
    console.print(f"wrote {args.output} ({size:,} bytes)")
    return 0


_JOB_COMMANDS: dict[str, Callable[[Any, argparse.Namespace, Console], int]] = {
    "submit": _submit,
    "purge": _purge,
    "jobs": _list_jobs,
    "status": _status,
    "pause": _steer,
    "resume": _steer,
    "cancel": _steer,
    "summary": _summary,
    "report": _report,
}


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds") if at else ""


def _optouts(args: argparse.Namespace, console: Console) -> int:
    """The commands about recipients: replies, consents, optouts (add, remove, import, export, list)."""
    from api.client import ApiClientError  # noqa: PLC0415

    try:
        with _client(args) as client:
            if args.command == "replies":
                return _replies(client, args, console)
            where = f"brand {args.brand}'s list" if args.brand else "the global list"
            if args.command == "consents":
                return _consents(client, args, console, where)
            if args.action == "export" and args.iys:
                return _export_iys(client, args, console)
            return _OPTOUT_ACTIONS[args.action](client, args, console, where)
    except ApiClientError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1


def _replies(client: Any, args: argparse.Namespace, console: Console) -> int:
    answer = client.replies(kind=args.kind, limit=args.limit)
    c = answer["counts"]
    console.print(
        f"{c['messages']:,} replies: {c['optout']:,} opt-outs, {c['optin']:,} opt-ins, "
        f"{c['reply']:,} free ({c['incomplete']:,} incomplete, {c['duplicate']:,} sent again)"
    )
    table = Table("received", "number", "to", "kind", "text")
    for r in answer["items"]:
        table.add_row(_when(r["received"]), r["number"], r["to"], r["kind"], r["text"])
    console.print(table)
    return 0


def _export_iys(client: Any, args: argparse.Namespace, console: Console) -> int:
    data = client.optouts_iys(brand=args.brand)
    if args.items:
        Path(args.items[0]).write_bytes(data)
        written = max(len(data.splitlines()) - 1, 0)
        console.print(f"wrote {written:,} RET rows to {args.items[0]}")
    else:
        sys.stdout.buffer.write(data)
    return 0


def _optouts_add(client: Any, args: argparse.Namespace, console: Console, where: str) -> int:
    if not args.items:
        console.print("[red]give the numbers to add[/red]")
        return 2
    done = client.optouts_add(args.items, brand=args.brand)
    console.print(f"{done['added']:,} added to {where} ({done['already']:,} already on it)")
    return 0


def _optouts_remove(client: Any, args: argparse.Namespace, console: Console, where: str) -> int:
    for number in args.items:
        client.optouts_remove(number, brand=args.brand)
        console.print(f"{number} taken off {where}")
    return 0


def _optouts_import(client: Any, args: argparse.Namespace, console: Console, where: str) -> int:
    if len(args.items) != 1:
        console.print("[red]give one CSV file to import[/red]")
        return 2
    path = Path(args.items[0])
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    header = rows[0] if rows else []
    index = header.index(args.column) if args.column in header else 0
    start = 1 if rows and not any(ch.isdigit() for ch in rows[0][index]) else 0
    numbers = [r[index] for r in rows[start:] if len(r) > index and r[index].strip()]
    added = already = 0
    for i in range(0, len(numbers), 50_000):
        done = client.optouts_add(
            numbers[i : i + 50_000], brand=args.brand, source="import", detail=path.name
        )
        added, already = added + done["added"], already + done["already"]
    console.print(f"{added:,} added to {where} from {path} ({already:,} already on it)")
    return 0


def _optouts_export(client: Any, args: argparse.Namespace, console: Console, where: str) -> int:
    out = Path(args.items[0]) if args.items else None
    stream: contextlib.AbstractContextManager[Any] = (
        out.open("w", newline="", encoding="utf-8") if out else contextlib.nullcontext(sys.stdout)
    )
    n = 0
    with stream as f:
        w = csv.writer(f)
        w.writerow(["number", "brand", "source", "at", "detail"])
        for e in client.optouts(brand=args.brand):
            w.writerow(["+" + e["number"], e["brand"] or "", e["source"], _when(e["at"]), e["detail"]])
            n += 1
    if out:
        console.print(f"wrote {n:,} entries of {where} to {out}")
    return 0


def _optouts_list(client: Any, args: argparse.Namespace, console: Console, where: str) -> int:
    table = Table("number", "source", "since", "detail")
    for e in client.optouts(brand=args.brand):
        table.add_row("+" + e["number"], e["source"], _when(e["at"]), e["detail"])
    console.print(table)
    return 0


_OPTOUT_ACTIONS: dict[str, Callable[[Any, argparse.Namespace, Console, str], int]] = {
    "add": _optouts_add,
    "remove": _optouts_remove,
    "import": _optouts_import,
    "export": _optouts_export,
    "list": _optouts_list,
}


_CONSENT_COLUMNS = {
    "number": ("number", "telefon", "recipient", "alici", "gsm", "phone", "msisdn"),
    "status": ("status", "durum"),
    "date": ("date", "tarih", "consentdate", "consent_date"),
    "source": ("source", "kaynak"),
}


def _consents(client: Any, args: argparse.Namespace, console: Console, where: str) -> int:
    import csv  # noqa: PLC0415
    from datetime import datetime  # noqa: PLC0415
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    if args.action == "counts":
        c = client.consents(brand=args.brand)
        console.print(f"{where}: {c['records']:,} records, {c['onay']:,} ONAY, {c['ret']:,} RET")
        return 0
    if args.file is None:
        console.print("[red]give the CSV file to import[/red]")
        return 2
    with args.file.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        names = {name.strip().lower(): name for name in reader.fieldnames or ()}
        columns = {k: next((names[c] for c in v if c in names), None) for k, v in _CONSENT_COLUMNS.items()}
        if columns["number"] is None or columns["status"] is None:
            console.print(
                f"[red]{args.file} needs a number column ({', '.join(_CONSENT_COLUMNS['number'])}) and a "
                f"status column (status or durum, ONAY or RET); it has: {', '.join(names)}[/red]"
            )
            return 2
        records = []
        for line, row in enumerate(reader, 2):
            status = (row[columns["status"]] or "").strip().upper()
            if status not in ("ONAY", "RET"):
                console.print(f"[red]{args.file}:{line}: status {status!r} is neither ONAY nor RET[/red]")
                return 2
            record: dict[str, Any] = {"number": row[columns["number"]], "status": status}
            if columns["date"] and (raw := (row[columns["date"]] or "").strip()):
                when = datetime.fromisoformat(raw.replace(" ", "T", 1))
                record["date"] = (
                    when if when.tzinfo else when.replace(tzinfo=ZoneInfo("Europe/Istanbul"))
                ).isoformat()
            if columns["source"] and (source := (row[columns["source"]] or "").strip()):
                record["source"] = source
            records.append(record)
    changed = 0
    for i in range(0, len(records), 50_000):
        changed += client.consents_record(records[i : i + 50_000], brand=args.brand)["changed"]
    console.print(f"{len(records):,} records read, {changed:,} changed {where} (an older one changes none)")
    return 0


def _keys(args: argparse.Namespace, console: Console) -> int:
    import redis  # noqa: PLC0415

    from api.cli.stack import StackInfo  # noqa: PLC0415
    from api.keys import create_key, list_keys, revoke  # noqa: PLC0415
    from ulak.redis_server import redacted  # noqa: PLC0415

    info = StackInfo.load()
    url = args.redis_url or os.environ.get("ULAK_REDIS__URL") or (info.redis_url if info else None)
    if not url:
        console.print("[red]no Redis to keep keys in: start `ulak up` or pass --redis-url[/red]")
        return 2
    client = redisclient.client(url)
    try:
        if args.keys_command == "create":
            token, key = create_key(client, name=args.name, scope="read" if args.read_only else "write")
            console.print(f"key {key.id} ({key.scope}) for {key.name}; the token is shown only now:")
            print(token)
        elif args.keys_command == "list":
            table = Table("id", "name", "scope", "created")
            for k in list_keys(client):
                table.add_row(
                    k.id, k.name, k.scope, time.strftime("%Y-%m-%d %H:%M", time.localtime(k.created))
                )
            console.print(table)
        elif not revoke(client, args.id):
            console.print(f"[red]no key {args.id}[/red]")
            return 1
        else:
            console.print(f"key {args.id} revoked (API processes stop accepting it within seconds)")
        return 0
    except redis.RedisError as exc:
        console.print(f"[red]cannot reach Redis at {redacted(url)}: {exc}[/red]")
        return 2
    finally:
        client.close()


def _ingest(args: argparse.Namespace, console: Console) -> int:
    from api.cli.preview import preview_file  # noqa: PLC0415 - imports Ray
    from ingest.errors import IngestError  # noqa: PLC0415
    from ingest.spec import CampaignSpec  # noqa: PLC0415

    try:
        settings = load_settings(args.config_dir, passwords=False)  # a dry run opens no bind
        spec = CampaignSpec(
            template=args.template,
            text_column=args.text_column,
            phone_column=args.phone_column,
            sheet=args.sheet,
            encoding=args.encoding,
        )
    except (ConfigError, IngestError) as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    if not args.file.is_file():
        console.print(f"[red]{args.file}: no such file[/red]")
        return 2
    return preview_file(settings, args.file, spec, rejected=args.rejected, console=console)


def _node_parser(sub: Any) -> None:
    p_node = sub.add_parser("node", help="start a node of a cluster: init, head, worker (see README)")
    node_sub = p_node.add_subparsers(dest="node_command", required=True)
    p_init = node_sub.add_parser("init", help="write a new cluster's environment file (it holds secrets)")
    p_init.add_argument("--head-ip", required=True, help="the head's address on the cluster network")
    p_init.add_argument("--redis-host", help="where Redis is, if not on the head (a compose service, say)")
    p_init.add_argument("--data-dir", default="/var/lib/ulak/jobs", help="jobs.data_dir every node reaches")
    p_health = node_sub.add_parser("health", help="exit 0 if the head's Ray port (and --api) answer")
    p_health.add_argument("--env-file", type=Path)
    p_health.add_argument("--api", help="also the control plane's /healthz at this URL")
    p_init.add_argument("-o", "--output", type=Path, help="the file (default: standard output)")
    for name, what in (("head", "Redis, the Ray head and the control plane"), ("worker", "a Ray worker")):
        p = node_sub.add_parser(name, help=f"start {what} in the foreground")
        p.add_argument("--env-file", type=Path, help="default: $ULAK_ENV_FILE, else /etc/ulak/ulak.env")
        p.add_argument("--ip", help="this node's address on the cluster network (default: see README)")
        p.add_argument("--num-cpus", type=int, help="CPUs this node offers Ray (default: all)")
        p.add_argument("--object-store-memory", type=int, help="bytes of Ray's object store (default: Ray's)")
        p.add_argument("--resources", help="custom Ray resources as JSON, e.g. '{\"egress\": 1}'")
        if name == "worker":
            p.add_argument("--egress", action="store_true", help="binds may leave from here")
        else:
            p.add_argument("--config-dir", type=Path, default=None)
            p.add_argument("--no-redis", action="store_true", help="ULAK_REDIS__URL is a Redis you run")
            p.add_argument("--no-api", action="store_true", help="only the Ray head")


def _node(args: argparse.Namespace, console: Console) -> int:
    from api.cli import node  # noqa: PLC0415 - the head imports Ray

    try:
        if args.node_command == "init":
            text = node.init_env(head_ip=args.head_ip, redis_host=args.redis_host, data_dir=args.data_dir)
            if args.output is None:
                sys.stdout.write(text)
            else:
                fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                console.print(f"wrote {args.output}: copy it to every node as /etc/ulak/ulak.env")
            return 0
        if args.node_command == "health":
            problem = node.health(args.env_file, api=args.api)
            if problem:
                console.print(f"[red]{problem}[/red]")
            return 1 if problem else 0
        sizes = {
            "ip": args.ip,
            "num_cpus": args.num_cpus,
            "resources": args.resources,
            "object_store_memory": args.object_store_memory,
        }
        if args.node_command == "worker":
            return node.run_worker(args.env_file, egress=args.egress, **sizes)
        return node.run_head(
            args.env_file, config_dir=args.config_dir, redis=not args.no_redis, api=not args.no_api, **sizes
        )
    except node.NodeError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2


def build_parser() -> argparse.ArgumentParser:
    """Every ``ulak`` command and its options (the deployment files' commands are checked against it)."""
    parser = argparse.ArgumentParser(prog="ulak", description="Ulak: distributed bulk-SMS dispatch over SMPP")
    parser.add_argument("--version", action="version", version=f"ulak {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _stack_parsers(sub)
    _job_parsers(sub)
    _list_parsers(sub)
    _local_parsers(sub)
    _node_parser(sub)
    return parser


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", help="control plane URL (default: $ULAK_API_URL, else the running stack)")
    p.add_argument("--key", help="API key (default: $ULAK_API_KEY, else the running stack's)")


def _stack_parsers(sub: Any) -> None:
    """plan, config, sim, demo, up."""
    p_plan = sub.add_parser("plan", help="show how a text is encoded and split into SMS parts")
    p_plan.add_argument("text")
    p_plan.add_argument("--concat", choices=[c.value for c in Concat], default=Concat.UDH8.value)
    p_plan.add_argument("--no-national", action="store_true", help="no national language shift tables")
    p_plan.add_argument("--max-parts", type=int, default=255)
    p_config = sub.add_parser("config", help="validate and summarise the configuration")
    p_config.add_argument("--config-dir", type=Path, default=None)
    sub.add_parser("sim", help="run the bundled SMSC simulator (see `ulak sim --help`)")
    p_demo = sub.add_parser("demo", help="the whole stack with a generated campaign, over HTTP")
    p_demo.add_argument("--rows", type=int, default=100_000, help="rows to generate (default 100,000)")
    p_demo.add_argument(
        "--tps-scale",
        type=float,
        default=10.0,
        help="multiply the operators' caps (default 10: a quick demo)",
    )
    p_up = sub.add_parser("up", help="start Redis, Ray and the control plane (Ctrl-C stops them)")
    p_up.add_argument("--config-dir", type=Path, default=None)
    p_up.add_argument("--sim", action="store_true", help="also run the SMSC simulator for every operator")
    p_up.add_argument("--port", type=int, default=None, help="API port (default: api.port)")
    p_up.add_argument(
        "--address",
        help="join a running Ray cluster ('auto' on one of its nodes, or HOST:PORT) instead of "
        "starting a local one (the same as ULAK_RAY__ADDRESS)",
    )


def _job_parsers(sub: Any) -> None:
    """submit, jobs, status, pause/resume/cancel, summary, report."""
    p_submit = sub.add_parser("submit", help="submit a campaign file and follow it to the end")
    p_submit.add_argument("file", type=Path)
    text_or_column = p_submit.add_mutually_exclusive_group(required=True)
    text_or_column.add_argument("--template", help="message template, e.g. 'Merhaba {ad}'")
    text_or_column.add_argument("--text-column", help="column holding each row's own text")
    p_submit.add_argument("--phone-column")
    p_submit.add_argument("--sheet")
    p_submit.add_argument("--encoding")
    p_submit.add_argument("--operators", nargs="+", help="allowed operators (default: all)")
    p_submit.add_argument("--sender", help="sender id (up to 11 letters/digits)")
    p_submit.add_argument(
        "--link-url",
        help="the page {link} in the template leads to: each row gets its own tracked short link",
    )
    p_submit.add_argument("--send-at", help="not before (ISO 8601 with zone)")
    p_submit.add_argument("--send-window", help="daily hours, e.g. 09:00-20:00")
    p_submit.add_argument(
        "--timezone", help="zone of --send-window (default Europe/Istanbul; recipient: each recipient's own)"
    )
    p_submit.add_argument("--validity", type=int, help="minutes the network keeps trying")
    p_submit.add_argument("--name")
    p_submit.add_argument("--brand", help="whose campaign: its opt-out and consent lists apply too")
    p_submit.add_argument(
        "--commercial",
        action="store_true",
        help="a commercial message: only to numbers with consent (ONAY); its text must say how to opt out",
    )
    p_submit.add_argument(
        "--frequency-cap",
        choices=("defer", "refuse", "off"),
        help="a message past its recipient's frequency cap waits (defer: commercial's default), ends as "
        "frequency_capped (refuse), or the caps do not apply (off: informational's default)",
    )
    p_submit.add_argument(
        "--send-time",
        choices=("now", "optimized"),
        help="optimized: each recipient at the hour they are most likely to engage, learned from their "
        "past clicks, replies and conversions (a control share at random hours measures the lift)",
    )
    p_submit.add_argument(
        "--send-time-horizon", type=int, metavar="HOURS", help="optimized: hours to choose in (default 24)"
    )
    p_submit.add_argument(
        "--send-time-control",
        type=float,
        metavar="SHARE",
        help="optimized: share sent at random hours, the lift's control (default 0.1)",
    )
    p_submit.add_argument("--dry-run", action="store_true", help="prepare and report, send nothing")
    p_submit.add_argument("--idempotency-key", help="a retried submit with the same key returns the same job")
    p_submit.add_argument("--no-wait", action="store_true", help="print the job id and return")
    _client_options(p_submit)
    p_jobs = sub.add_parser("jobs", help="list jobs, newest first; `ulak jobs purge` deletes old ones")
    p_jobs.add_argument("action", nargs="?", choices=["list", "purge"], default="list")
    p_jobs.add_argument(
        "--older-than", type=float, help="purge: days since a job ended (default: jobs.retention_days)"
    )
    p_jobs.add_argument("--dry-run", action="store_true", help="purge: list what would go, delete nothing")
    p_jobs.add_argument("--state")
    p_jobs.add_argument("--limit", type=int, default=20)
    _client_options(p_jobs)
    p_status = sub.add_parser("status", help="a job's figures")
    p_status.add_argument("id")
    p_status.add_argument("--json", action="store_true")
    _client_options(p_status)
    for action in ("pause", "resume", "cancel"):
        p_action = sub.add_parser(action, help=f"{action} a job")
        p_action.add_argument("id")
        _client_options(p_action)
    p_summary = sub.add_parser("summary", help="a campaign's KPIs: delivery, clicks, conversions, cost, ROI")
    p_summary.add_argument("id")
    shape = p_summary.add_mutually_exclusive_group()
    shape.add_argument("--csv", action="store_true", help="the total and each operator as CSV, to stdout")
    shape.add_argument("--json", action="store_true", help="everything, with the time series")
    _client_options(p_summary)
    p_report = sub.add_parser("report", help="download a job's row-level report (or its refused rows)")
    p_report.add_argument("id")
    p_report.add_argument("-o", "--output", type=Path, required=True, help="out.csv or out.parquet")
    p_report.add_argument("--rejected", action="store_true", help="the rows refused at ingest instead")
    _client_options(p_report)


def _list_parsers(sub: Any) -> None:
    """optouts, consents, replies."""
    p_opt = sub.add_parser("optouts", help="the opt-out lists: add, remove, list, import, export")
    p_opt.add_argument("action", choices=["add", "remove", "list", "import", "export"])
    p_opt.add_argument("items", nargs="*", help="add/remove: numbers; import/export: a CSV file")
    p_opt.add_argument("--brand", help="a brand's list (default: the global one)")
    p_opt.add_argument("--column", default=None, help="import: the numbers' column (default: the first)")
    p_opt.add_argument("--iys", action="store_true", help="export: the opt-outs by reply as İYS RET rows")
    p_consents = sub.add_parser("consents", help="consent on record (ONAY/RET): import a CSV, or counts")
    p_consents.add_argument("action", choices=["import", "counts"])
    p_consents.add_argument("file", nargs="?", type=Path, help="import: number, status, date, source columns")
    p_consents.add_argument("--brand", help="a brand's list (default: the global one)")
    _client_options(p_consents)
    _client_options(p_opt)
    p_replies = sub.add_parser("replies", help="the latest replies (MO) and what they meant")
    p_replies.add_argument("--kind", choices=["optout", "optin", "reply"])
    p_replies.add_argument("--limit", type=int, default=30)
    _client_options(p_replies)


def _local_parsers(sub: Any) -> None:
    """keys, ingest: on the machine, with Redis or Ray at hand."""
    p_keys = sub.add_parser("keys", help="API keys (kept hashed in Redis)")
    p_keys.add_argument("--redis-url", help="default: $ULAK_REDIS__URL, else the running stack's")
    keys_sub = p_keys.add_subparsers(dest="keys_command", required=True)
    p_create = keys_sub.add_parser("create", help="create a key; its token is printed once")
    p_create.add_argument("name", nargs="?", default="api")
    p_create.add_argument("--read-only", action="store_true", help="may read, may not submit or steer")
    keys_sub.add_parser("list")
    p_revoke = keys_sub.add_parser("revoke")
    p_revoke.add_argument("id")
    p_ingest = sub.add_parser(
        "ingest", help="dry run: read a campaign file, show what would be sent and what is refused"
    )
    p_ingest.add_argument("file", type=Path, help="CSV, Parquet, XLSX, XLS or ODS")
    text = p_ingest.add_mutually_exclusive_group(required=True)
    text.add_argument("--template", help="message template, e.g. 'Merhaba {ad}, {tutar} TL …'")
    text.add_argument("--text-column", help="column holding each row's own text")
    p_ingest.add_argument("--phone-column", help="column of numbers (default: detected by name)")
    p_ingest.add_argument("--sheet", help="spreadsheet sheet name (default: the first)")
    p_ingest.add_argument("--encoding", help="CSV text encoding (default: UTF-8, else cp1254)")
    p_ingest.add_argument("--rejected", type=Path, help="write the rejected-rows report (.csv or .parquet)")
    p_ingest.add_argument("--config-dir", type=Path, default=None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "sim":
        return _sim(argv[1:])
    args = build_parser().parse_args(argv)
    console = Console()
    if args.command == "node":
        return _node(args, console)
    if args.command == "ingest":
        return _ingest(args, console)
    if args.command == "plan":
        return _plan(args, console)
    if args.command == "config":
        return _config(args, console)
    if args.command == "up":
        return _up(args, console)
    if args.command == "keys":
        return _keys(args, console)
    if args.command in ("optouts", "replies", "consents"):
        return _optouts(args, console)
    if args.command in ("submit", "jobs", "status", "pause", "resume", "cancel", "report", "summary"):
        return _jobs(args, console)
    return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
