"""A job's record (``keys.job``, a hash) read once and typed: every field a module reads has one
property here, and the fields a module writes (``JobStore.update``) have one name each.

The record is written by the control plane (create, upload), the job's runner (prepared fields,
progress, waiting, the A/B decision), the summaries (their stamps) and the follow-ups; it is read by
all of them and the API. Nothing else parses its values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any

from cluster.jobs.options import JobOptions
from cluster.jobs.states import JobState
from ulak.settings import OperatorConfig

YES = "1"  # a flag field's value when set (prepared, sending_began)


def ledgers_field(operators: Iterable[OperatorConfig]) -> str:
    """The ``ledgers`` field of a job whose rows go to *operators*: ``op:ledger,...``."""
    return ",".join(f"{op.name}:{op.ledger_name}" for op in sorted(operators, key=lambda o: o.name))


class JobRecord:
    """The job record's fields, typed (see the module docstring)."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)

    @classmethod
    def from_redis(cls, raw: Mapping[bytes, bytes]) -> JobRecord:
        return cls({k.decode(): v.decode() for k, v in raw.items()})

    def _text(self, name: str) -> str | None:
        return self.fields.get(name) or None

    @property
    def id(self) -> str:
        return self.fields["id"]

    @property
    def state(self) -> JobState:
        return JobState(self.fields["state"])

    @property
    def options_json(self) -> str:
        return self.fields["options"]

    @cached_property
    def options(self) -> JobOptions:
        return JobOptions.model_validate_json(self.fields["options"])

    @property
    def source(self) -> str | None:
        return self._text("source")

    @property
    def dir(self) -> str:
        """Where the job's files are (``ulak.jobfiles``)."""
        return self.fields["dir"]

    @property
    def upload(self) -> str | None:
        """The uploaded file's name in the job's directory (None: a URI job not fetched yet)."""
        return self._text("upload")

    @property
    def filename(self) -> str | None:
        """The name the user's file had."""
        return self._text("filename")

    @property
    def created_at(self) -> float:
        return float(self.fields.get("created_at", 0))

    def entered_at(self, state: JobState | str) -> float | None:
        """When the job last entered *state* (``created``: when it was made), unix seconds."""
        value = self.fields.get(f"{state}_at")
        return float(value) if value else None

    @property
    def history(self) -> list[tuple[str, float]]:
        """Every entry into a state, in order (the oldest dropped past 8,000 bytes)."""
        entries = (entry.partition("@") for entry in self.fields.get("history", "").split())
        return [(state, float(at)) for state, _, at in entries]

    @property
    def error(self) -> dict[str, Any] | None:
        """Why the job failed: ``{code, message[, field]}``."""
        raw = self._text("error")
        return dict(json.loads(raw)) if raw else None

    @property
    def preview(self) -> dict[str, Any] | None:
        """What ingest found (operators, refusals, encodings, samples), once prepared."""
        raw = self._text("preview")
        return dict(json.loads(raw)) if raw else None

    @property
    def prepared(self) -> bool:
        """The rows are prepared (``accepted.parquet`` written) and the counters set."""
        return self.fields.get("prepared") == YES

    @property
    def sending_began(self) -> bool:
        return self.fields.get("sending_began") == YES

    @property
    def ledgers(self) -> dict[str, str]:
        """Each operator the job's rows go to, and the ledger that keeps them (written when it is
        prepared, so a later change of configuration does not lose its figures)."""
        pairs = (item.partition(":") for item in self.fields.get("ledgers", "").split(",") if item)
        return {op: ledger or op for op, _, ledger in pairs}

    @property
    def waiting(self) -> str | None:
        return self._text("waiting")

    @property
    def paused_from(self) -> str | None:
        return self._text("paused_from")

    @property
    def decide_at(self) -> float | None:
        """When a test-then-winner job decides its winner (unix seconds)."""
        raw = self._text("decide_at")
        return float(raw) if raw else None

    @property
    def decision(self) -> str | None:
        """The A/B decision as JSON (``cluster.send.winner``)."""
        return self._text("decision")

    @property
    def winner(self) -> str | None:
        return self.fields.get("winner")

    @property
    def survey_since(self) -> str | None:
        """When a survey job first began sending, as written (the survey index repeats it)."""
        return self._text("survey_since")

    @property
    def followup_batch(self) -> str | None:
        return self._text("followup_batch")

    @property
    def followup_jobs(self) -> list[str]:
        return self.fields.get("followup_jobs", "").split()

    @property
    def outcomes_stamp(self) -> str | None:
        return self._text("outcomes_stamp")

    @property
    def outcomes_files(self) -> str | None:
        """The outcomes snapshot named (``cluster.reports.snapshot``): its token and chunks."""
        return self._text("outcomes_files")

    @property
    def engagement_stamp(self) -> str | None:
        return self._text("engagement_stamp")
