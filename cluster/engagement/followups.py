"""Survey follow-ups: the message each respondent is sent once after their first answer.

The replies processor queues a follow-up on the survey job's stream (``keys.job_survey_followups``)
in the same script that records the first answer, so there is one per answer. This sender, in
the replies actor, turns what is queued into follow-up jobs (an ordinary job with a text column,
from the survey's reply_to, in its brand: opt-outs filter it like any other), a batch at a time:

1. the batch's bounds (first and last stream id) are written to the survey's record first;
2. the job is submitted with an idempotency key made of those bounds, so a sender that dies and
   tries again gets the same job back instead of a second one;
3. the batch's entries are deleted and the bounds cleared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import structlog

from cluster.engagement.jobmaker import JobMaker, sender_ok
from cluster.jobs.options import JobOptions
from cluster.jobs.record import JobRecord
from ulak import keys

log = structlog.get_logger("ulak.followups")

BATCH = 5000


class FollowupSender:
    def __init__(self, client: Any, plane: Callable[[], Any]) -> None:
        self.client = client
        self.maker = JobMaker(plane)

    def run_once(self) -> int:
        """Send what is queued for every survey that has any; returns the follow-ups sent."""
        sent = 0
        for raw in sorted(self.client.smembers(keys.FOLLOWUP_JOBS)):
            sent += self._survey(raw.decode())
        return sent

    def _survey(self, job_id: str) -> int:
        stream = keys.job_survey_followups(job_id)
        record = JobRecord.from_redis(self.client.hgetall(keys.job(job_id)))
        if "options" not in record.fields:  # purged
            self.client.srem(keys.FOLLOWUP_JOBS, job_id)
            return 0
        bounds = record.followup_batch
        if bounds:
            first, last = bounds.split(" ")
            entries = self.client.xrange(stream, first, last)
        else:
            entries = self.client.xrange(stream, "-", "+", count=BATCH)
            if not entries:
                self.client.srem(keys.FOLLOWUP_JOBS, job_id)
                if self.client.xlen(stream):  # one queued meanwhile: keep looking
                    self.client.sadd(keys.FOLLOWUP_JOBS, job_id)
                return 0
            first, last = entries[0][0].decode(), entries[-1][0].decode()
            self.client.hset(keys.job(job_id), "followup_batch", f"{first} {last}")
        if entries:
            options = record.options
            made = self._submit(job_id, options, entries, f"{first}-{last}")
            known = record.followup_jobs
            if made not in known:
                self.client.hset(keys.job(job_id), "followup_jobs", " ".join([*known, made]))
        pipe = self.client.pipeline(transaction=True)  # one slot: the survey job's
        if entries:
            pipe.xdel(stream, *[e[0] for e in entries])
            pipe.hincrby(keys.job_survey_counts(job_id), "followups", len(entries))
        pipe.hdel(keys.job(job_id), "followup_batch")
        pipe.execute()
        return len(entries)

    def _submit(self, survey_id: str, options: JobOptions, entries: list[Any], span: str) -> str:
        rows = [(fields[b"number"].decode(), fields[b"text"].decode()) for _, fields in entries]
        followup = JobOptions(
            text_column="metin",
            sender=options.survey_reply_to() if sender_ok(options.survey_reply_to()) else options.sender,
            brand=options.brand,
            name=f"follow-ups of {survey_id}",
        )
        digest = hashlib.sha256(f"followup:{survey_id}:{span}".encode()).hexdigest()
        made, created = self.maker.submit(
            rows, followup, name="followups.csv", source=f"survey {survey_id}", digest=digest
        )
        if created:
            log.info("survey.followups", survey=survey_id, job_id=made, rows=len(entries))
        return made
