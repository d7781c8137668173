"""The ``ulak`` command line.

``ulak demo`` (a generated campaign through the whole stack and the bundled simulator), ``ulak plan``
(how a text will be encoded and split), ``ulak ingest FILE`` (dry run of an upload: the cost preview
and the rejected-rows report), ``ulak config`` (validate the configuration), ``ulak sim`` (the
bundled SMSC simulator). Job submission over HTTP arrives with the control plane.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ulak import __version__
from ulak.settings import ConfigError, load_settings
from ulak.text import Concat, MessageTooLong, plan

SIMULATOR = Path(__file__).resolve().parent.parent / "scripts" / "smsc_sim.py"


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
    table = Table("operator", "prefixes", "parts/s", "binds", "concatenation")
    for op in settings.operators:
        binds = ", ".join(f"{b.name} {b.host}:{b.port} window {b.window}" for b in op.binds)
        table.add_row(op.name, " ".join(op.prefixes), f"{op.tps:g}", binds, op.concatenation.value)
    console.print(table)
    console.print(
        f"redis: {settings.redis.url or 'embedded (started by Ulak)'}; ray: {settings.ray.address or 'local'}"
    )
    return 0


def _sim(argv: list[str]) -> int:
    if not SIMULATOR.exists():
        print(
            f"the simulator ships in the source tree ({SIMULATOR}); run Ulak from a checkout", file=sys.stderr
        )
        return 2
    sys.argv = [str(SIMULATOR), *argv]
    runpy.run_path(str(SIMULATOR), run_name="__main__")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from cluster.demo import run_demo  # noqa: PLC0415 - imports Ray, which the other commands do not need

    return run_demo(args.rows, no_cap=args.no_cap)


def _ingest(args: argparse.Namespace, console: Console) -> int:
    from cluster.preview import preview_file  # noqa: PLC0415 - imports Ray
    from ingest.errors import IngestError  # noqa: PLC0415
    from ingest.prepare import CampaignSpec  # noqa: PLC0415

    try:
        settings = load_settings(args.config_dir)
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "sim":
        return _sim(argv[1:])
    parser = argparse.ArgumentParser(prog="ulak", description="Ulak: distributed bulk-SMS dispatch over SMPP")
    parser.add_argument("--version", action="version", version=f"ulak {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_plan = sub.add_parser("plan", help="show how a text is encoded and split into SMS parts")
    p_plan.add_argument("text")
    p_plan.add_argument("--concat", choices=[c.value for c in Concat], default=Concat.UDH8.value)
    p_plan.add_argument("--no-national", action="store_true", help="no national language shift tables")
    p_plan.add_argument("--max-parts", type=int, default=255)
    p_config = sub.add_parser("config", help="validate and summarise the configuration")
    p_config.add_argument("--config-dir", type=Path, default=None)
    sub.add_parser("sim", help="run the bundled SMSC simulator (see `ulak sim --help`)")
    p_demo = sub.add_parser("demo", help="send a generated campaign through the bundled simulator")
    p_demo.add_argument("--rows", type=int, default=10_000, help="messages to generate (default 10,000)")
    p_demo.add_argument("--no-cap", action="store_true", help="ignore the operators' speed limits")
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
    args = parser.parse_args(argv)
    console = Console()
    if args.command == "ingest":
        return _ingest(args, console)
    if args.command == "plan":
        return _plan(args, console)
    if args.command == "config":
        return _config(args, console)
    return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
