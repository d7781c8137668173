"""``ulak ingest FILE``: prepare an upload on the local stack and show the cost preview (a dry run).

Nothing is sent: no bind is opened. The rejected-rows report is written where ``--rejected`` says.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from actors.local import Cluster
from ingest.errors import IngestError
from ingest.prepare import check_upload, prepare
from ingest.spec import CampaignSpec
from ulak.settings import Settings


def preview_file(
    settings: Settings, path: Path, spec: CampaignSpec, *, rejected: Path | None, console: Console
) -> int:
    try:  # the checks the API makes before 202, before Ray is started at all
        check_upload(path, spec, config=settings.ingest, operators=settings.operators)
    except IngestError as exc:
        console.print(f"[red]{exc.code}:[/red] {exc}")
        return 2
    # Ray Data logs a failed read with its whole stack; the one-line error below says what matters.
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    with console.status("starting Ray and Redis…"):
        cluster = Cluster(settings).start(binds=False)
    workdir = tempfile.TemporaryDirectory(prefix="ulak-ingest-")  # the prepared rows, then gone
    try:
        started = time.perf_counter()
        with console.status(f"reading {path.name}…"):
            try:
                prepared = prepare(
                    path,
                    spec,
                    config=settings.ingest,
                    operators=settings.operators,
                    redis_url=cluster.redis_url,
                    directory=Path(workdir.name),
                )
            except IngestError as exc:
                console.print(f"[red]{exc.code}:[/red] {exc}")
                return 2
        preview = prepared.preview
        console.print(
            f"[bold]{path.name}[/bold]: {preview.rows:,} rows, [green]{preview.accepted:,} to send[/green] "
            f"({preview.parts:,} parts), [red]{preview.rows - preview.accepted:,} refused[/red] "
            f"in {time.perf_counter() - started:.1f} s"
        )
        ops = Table("operator", "messages", "parts")
        for name, counts in preview.operators.items():
            ops.add_row(name, f"{counts['messages']:,}", f"{counts['parts']:,}")
        console.print(ops)
        if preview.rejected:
            reasons = Table("reason", "rows")
            for reason, count in preview.rejected.items():
                reasons.add_row(reason, f"{count:,}")
            console.print(reasons)
        if preview.encodings:
            console.print("encodings: " + ", ".join(f"{k} {v:,}" for k, v in preview.encodings.items()))
        samples = Table("row", "number", "operator", "parts", "text")
        for sample in preview.samples:
            samples.add_row(
                str(sample["row"]), sample["msisdn"], sample["operator"], str(sample["parts"]), sample["text"]
            )
        console.print(samples)
        if rejected is not None:
            count = prepared.write_rejected(rejected)
            console.print(f"rejected-rows report: {rejected} ({count:,} rows)")
        return 0
    finally:
        workdir.cleanup()
        cluster.stop()
