"""A job's hand-off from ingest to sending: its upload prepared into the rows file and the record's
prepared fields; and, should Redis lose its last second, those fields (and that sending began)
written again by the runner that wrote them (:meth:`Handoff.restore`)."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from cluster.jobs.record import YES, ledgers_field
from cluster.jobs.states import InvalidTransition, JobEvent, JobState
from cluster.send.capping import capped_now
from cluster.send.job import Job
from cluster.send.sendtimes import Planner
from ingest.prepare import LinkSpec, prepare
from ulak import keys


class Handoff:
    """Ingest, and what it wrote, for one runner.

    What this runner wrote that decides what it does next is kept to write again if Redis loses it
    (a crash with ``appendfsync everysec`` loses its last second): the prepared job's fields and
    counters, and whether sending began. Without them a runner that outlived such a crash prepared
    the job again and sent every part a second time (``restore``)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._prepared: tuple[dict[str, str], dict[Any, int], JobState] | None = None
        self.began = False  # this runner began sending (the record's sending_began)

    def _links(self) -> LinkSpec | None:
        """How this job's ``{link}`` is filled, if it has a link_url (``ulak.links``)."""
        if self.job.options.link_url is None:
            return None
        config = self.job.settings.links
        return LinkSpec(
            job_id=self.job.job_id,
            prefix=config.prefix,
            code_length=config.code_length,
            ttl=config.expire_days * 86400,
            redis_url=self.job.redis_url,
        )

    def ingest(self, state: JobState) -> None:
        if state is JobState.QUEUED:
            # Paused or cancelling while queued: prepare anyway, the send loop obeys.
            with contextlib.suppress(InvalidTransition):
                self.job.store.transition(self.job.job_id, JobEvent.INGEST)
        opts = self.job.options
        spec = opts.campaign_spec(self.job.job_id)
        record = self.job.store.record(self.job.job_id)
        started = time.perf_counter()
        # Writes accepted.parquet and rejected.parquet into the job's directory, whole or not at all.
        assert record.upload is not None, "the upload is fetched before ingest"
        with self.job.directory.local(upload_name(record.upload)) as upload:
            prepared = prepare(
                upload,
                spec,
                config=self.job.settings.ingest,
                operators=self.job.settings.operators,
                redis_url=self.job.redis_url,
                directory=self.job.directory,
                name=record.filename,
                read_here=not self.job.directory.is_local,
                links=self._links(),
                optout_instruction=self.job.settings.replies.optout_instruction,
            )
        preview = prepared.preview
        counters: dict[Any, int] = {
            "rows": preview.rows,
            "accepted": preview.accepted,
            "rows_rejected": preview.rows - preview.accepted - preview.held_out,
            "held_out": preview.held_out,
            "parts_total": preview.parts,
        }
        # How many the caps would hold now: for a dry run, the preview a marketer asks for before
        # sending (a real job would wait 14 s a million rows for a figure it then makes come true).
        capped = capped_now(self.job) if preview.accepted and opts.dry_run else None
        extra: dict[str, Any] = {"frequency_capped": capped} if capped is not None else {}
        if opts.send_time == "optimized" and preview.accepted:
            # Each recipient's time, from the job's start (cluster.send.sendtimes)
            start = max(self.job.clock.time(), opts.send_at.timestamp() if opts.send_at else 0.0)
            extra["send_plan"] = Planner(self.job, start=start).plan()
        fields = {
            "preview": json.dumps({**preview.as_dict(), **extra}),
            "ledgers": ledgers_field(
                self.job.settings.operator(op) for op in preview.operators
            ),  # its figures
            "prepared": YES,
        }
        after = JobState.DONE if opts.dry_run or preview.accepted == 0 else JobState.SCHEDULED
        self._prepared = (fields, counters, after)
        seconds = time.perf_counter() - started
        self.job.client.hset(keys.job_counters(self.job.job_id), mapping=counters)
        self.job.store.update(self.job.job_id, **fields)
        _count_ingest(self.job.client, rows=preview.rows, accepted=preview.accepted, seconds=seconds)
        self.job.log.info("job.prepared", rows=preview.rows, accepted=preview.accepted, seconds=seconds)
        self._prepared_state(after)

    def _prepared_state(self, after: JobState) -> None:
        """From ingesting to *after* (scheduled, or done for a dry run or a job with no rows)."""
        event = JobEvent.NOTHING_TO_SEND if after is JobState.DONE else JobEvent.PREPARED
        try:
            self.job.store.transition(self.job.job_id, event)
        except InvalidTransition as exc:
            if exc.state == JobState.PAUSED.value:  # paused while ingesting: resume goes to scheduled
                self.job.store.update(self.job.job_id, paused_from=JobState.SCHEDULED.value)

    def restore(self, state: JobState) -> JobState:
        """Write again what this runner wrote and Redis no longer has (see the class docstring): a Redis
        that came back from a crash without its last second may hold the job as not yet prepared,
        or not yet sending, while the rows file is written and the binds have sent parts of it."""
        if self._prepared is None:
            return state
        fields, counters, after = self._prepared
        record = self.job.store.record(self.job.job_id)
        lost = list(fields) if not record.prepared else []  # one write made them all
        if self.began and not record.sending_began:
            lost.append("sending_began")
        if not lost:
            return state
        self.job.log.warning(
            "job.record_restored",
            fields=lost,
            state=state.value,
            hint="Redis lost its last writes (a crash with appendfsync everysec); written again",
        )
        self.job.client.hset(keys.job_counters(self.job.job_id), mapping=counters)
        self.job.store.update(self.job.job_id, **fields, **({"sending_began": YES} if self.began else {}))
        if state is JobState.QUEUED:
            with contextlib.suppress(InvalidTransition):
                self.job.store.transition(self.job.job_id, JobEvent.INGEST)
        if self.job.store.state(self.job.job_id) is JobState.INGESTING:
            self._prepared_state(after)
        return self.job.store.state(self.job.job_id)

    def discard_upload(self) -> None:
        """The uploaded file holds personal data and is needed only until the rows are prepared:
        it goes when the job ends, whatever the end (``jobs.keep_uploads`` keeps it)."""
        upload = self.job.store.record(self.job.job_id).upload
        if upload:
            self.job.directory.delete(upload_name(upload))


def upload_name(upload: str) -> str:
    """The upload's file name in the job's folder (older records kept its whole local path)."""
    return upload.rpartition("/")[2]


def _count_ingest(client: Any, *, rows: int, accepted: int, seconds: float) -> None:
    """Add a job's ingest to the cluster's totals (``keys.INGEST_STATS``, read by ``/metrics``)."""
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(keys.INGEST_STATS, "jobs", 1)
    pipe.hincrby(keys.INGEST_STATS, "rows", rows)
    pipe.hincrby(keys.INGEST_STATS, "accepted", accepted)
    pipe.hincrbyfloat(keys.INGEST_STATS, "seconds", seconds)
    pipe.execute()
