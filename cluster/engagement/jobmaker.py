"""The jobs the replies actor makes of what replies ask for (survey follow-ups, opt-out
confirmations): a CSV of numbers and their texts written to a new job's folder, then submitted
through the control plane under an idempotency digest, so a sender that dies and tries the same
batch again gets the same job back instead of a second one."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any

from cluster.jobs.options import JobOptions


class JobMaker:
    """Makes them through the control plane *plane* gives (made on first use)."""

    def __init__(self, plane: Callable[[], Any]) -> None:
        self._plane_factory = plane
        self._plane: Any = None
        self.made = 0  # jobs created (not found again by their digest)

    def plane(self) -> Any:
        if self._plane is None:
            self._plane = self._plane_factory()
        return self._plane

    def submit(
        self, rows: Sequence[tuple[str, str]], options: JobOptions, *, name: str, source: str, digest: str
    ) -> tuple[str, bool]:
        """A job of *rows* (E.164 number without '+', text) with *options* (its text column is
        ``metin``); returns its id and whether it was created now."""
        plane = self.plane()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["telefon", "metin"])
        for number, text in rows:
            writer.writerow(["+" + number, text])
        job_id, directory = plane.new_job_dir()
        with directory.open_output(name) as sink:
            sink.write(out.getvalue().encode("utf-8"))
        made, created = plane.submit(
            job_id=job_id,
            directory=directory,
            upload=name,
            filename=name,
            source=source,
            options=options,
            idempotency_digest=digest,
            automatic=True,
        )
        self.made += bool(created)
        return str(made), bool(created)


def sender_ok(value: str | None) -> bool:
    """Whether *value* may be a job's sender (a short code or an alphanumeric id)."""
    return value is not None and len(value) <= 11 and all(c.isalnum() or c in " ._-" for c in value)
