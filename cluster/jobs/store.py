"""Job records in Redis: create, read, change state atomically (a Lua check-and-set), count, sample."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import redis

from cluster.jobs.options import JobOptions
from cluster.jobs.record import JobRecord
from cluster.jobs.states import InvalidTransition, JobEvent, JobState, move
from cluster.jobs.views import JobNotFound, counters, make_view, queue_view
from ulak import keys, links
from ulak.dispatch.ledger import LedgerReader, sum_counters
from ulak.jobfiles import JobDir
from ulak.quoting import quoted
from ulak.records import Sample

_DELETES = 10_000  # keys deleted a round trip when a job is forgotten

_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return {0, ''} end
for i = 4, #ARGV do
  if cur == ARGV[i] then
    redis.call('HSET', KEYS[1], 'state', ARGV[1], ARGV[1] .. '_at', ARGV[2], 'updated_at', ARGV[2])
    -- Every entry into a state, in order ('state@unix ...'), the oldest dropped past 8,000 bytes
    local h = (redis.call('HGET', KEYS[1], 'history') or '') .. ' ' .. ARGV[1] .. '@' .. ARGV[2]
    if #h > 8000 then h = string.sub(h, string.find(h, ' ', #h - 8000, true)) end
    redis.call('HSET', KEYS[1], 'history', h)
    if ARGV[3] == '1' then  -- a pause
      redis.call('HSET', KEYS[1], 'paused_from', cur)
      redis.call('HINCRBY', KEYS[1], 'pauses', 1)  -- the runner answers with taken_back = this
    end
    return {1, cur}
  end
end
return {0, cur}
"""


def _now() -> float:
    return round(time.time(), 3)


class JobStore:
    """Job records in Redis (synchronous client: used by the job actor and by the API's threads)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._transition = client.register_script(_TRANSITION)

    # ---------------------------------------------------------------------------------- records

    def create(
        self,
        job_id: str,
        *,
        options: JobOptions,
        source: str,
        directory: JobDir | Path,
        automatic: bool = False,
    ) -> None:
        """Record a new job; *automatic*: made by Ulak itself (survey follow-ups, opt-out
        confirmations, keyword answers), not a campaign of a user's (``ids(kind="campaigns")``)."""
        now = _now()
        pipe = self.client.pipeline(transaction=False)  # two slots on a cluster: record, then index
        pipe.hset(
            keys.job(job_id),
            mapping={
                "id": job_id,
                "state": JobState.QUEUED.value,
                "options": options.model_dump_json(exclude_none=True),
                "source": source,
                "dir": directory.uri if isinstance(directory, JobDir) else str(directory),
                "created_at": now,
                "queued_at": now,
                "updated_at": now,
                "history": f"{JobState.QUEUED.value}@{now}",
                **({"automatic": "1"} if automatic else {}),
            },
        )
        pipe.zadd(keys.JOBS, {job_id: now})
        pipe.execute()

    def record(self, job_id: str) -> JobRecord:
        raw: dict[bytes, bytes] = self.client.hgetall(keys.job(job_id))  # type: ignore[assignment]
        if not raw:
            raise JobNotFound(f"no job {quoted(job_id, 40)}")
        return JobRecord.from_redis(raw)

    def state(self, job_id: str) -> JobState:
        value = self.client.hget(keys.job(job_id), "state")
        if value is None:
            raise JobNotFound(f"no job {quoted(job_id, 40)}")
        return JobState(value.decode())  # type: ignore[union-attr]

    def states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """The states of *job_ids* in one round trip (a job deleted meanwhile is left out)."""
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "state")
        return {
            job_id: JobState(value.decode())
            for job_id, value in zip(job_ids, pipe.execute(), strict=True)
            if value is not None
        }

    def pause_number(self, job_id: str) -> int:
        """How many times the job was paused (``pauses``, counted by the transition script)."""
        value = self.client.hget(keys.job(job_id), "pauses")
        return int(value or 0)

    def taken_back(self, job_id: str) -> int:
        """The last pause after which the runner took every queued part of the job back."""
        value = self.client.hget(keys.job(job_id), "taken_back")
        return int(value or 0)

    def options(self, job_id: str) -> JobOptions:
        return self.record(job_id).options

    def update(self, job_id: str, **fields: str | int | float) -> None:
        mapping: dict[str, str | int | float] = {**fields, "updated_at": _now()}
        self.client.hset(keys.job(job_id), mapping=mapping)  # type: ignore[arg-type]

    def ids(
        self,
        *,
        state: JobState | None = None,
        limit: int = 50,
        before: float | None = None,
        kind: Literal["all", "campaigns", "previews"] = "all",
    ) -> list[str]:
        """Job ids, newest first; *before* is the paging cursor (a creation time); *kind*: campaigns
        (users' jobs that send: not previews, not the messages Ulak sends by itself) or previews
        (dry runs) only."""
        high: float | str = f"({before}" if before is not None else "+inf"
        found: list[str] = []
        cursor_high = high
        while len(found) < limit:
            batch: list[tuple[bytes, float]] = self.client.zrevrangebyscore(  # type: ignore[assignment]
                keys.JOBS, cursor_high, "-inf", start=0, num=200, withscores=True
            )
            if not batch:
                break
            fields: list[Any] = [(None, None, None)] * len(batch)
            if state is not None or kind != "all":  # only a filter needs the records
                pipe = self.client.pipeline(transaction=False)
                for raw_id, _score in batch:
                    pipe.hmget(keys.job(raw_id.decode()), ["state", "options", "automatic"])
                fields = pipe.execute()
            for (raw_id, _score), (raw_state, raw_options, auto) in zip(batch, fields, strict=True):
                if state is not None and raw_state != state.value.encode():
                    continue
                if kind != "all" and (kind == "previews") != is_preview(raw_options):
                    continue
                if kind == "campaigns" and auto:
                    continue
                found.append(raw_id.decode())
                if len(found) == limit:
                    break
            cursor_high = f"({batch[-1][1]}"
        return found

    def ended_before(self, cutoff: float, *, scan: int = 500, previews: bool = False) -> list[str]:
        """Terminal jobs that entered their final state before *cutoff* (unix seconds), oldest first;
        *previews*: dry runs only. Jobs are scanned in creation order, and a job ends after it is
        created, so the scan stops at the first job created after *cutoff*."""
        found: list[str] = []
        low: float | str = "-inf"
        while True:
            batch: list[tuple[bytes, float]] = self.client.zrangebyscore(  # type: ignore[assignment]
                keys.JOBS, low, cutoff, start=0, num=scan, withscores=True
            )
            if not batch:
                return found
            wanted = ["state", "done_at", "failed_at", "cancelled_at", *(["options"] if previews else [])]
            pipe = self.client.pipeline(transaction=False)
            for raw_id, _ in batch:
                pipe.hmget(keys.job(raw_id.decode()), wanted)
            for (raw_id, _), (state, *ended) in zip(batch, pipe.execute(), strict=True):
                at = {"done": ended[0], "failed": ended[1], "cancelled": ended[2]}.get(
                    state.decode() if state else ""
                )
                if previews and not is_preview(ended[3]):
                    continue
                if at is not None and float(at) < cutoff:
                    found.append(raw_id.decode())
            low = f"({batch[-1][1]}"

    def delete(self, job_id: str, *, ledgers: Sequence[str] = ()) -> None:
        """Forget a job: its record, counters, row and part outcomes (in its ledgers; counters in
        *ledgers* too, the configured ones: a webhook job is listed in each), samples and index
        entries (the message-id keys expire by themselves). Its directory is the caller's to delete."""
        raw: dict[bytes, bytes] = self.client.hgetall(keys.job(job_id))  # type: ignore[assignment]
        mine = JobRecord.from_redis(raw).ledgers
        rows = int(self.client.hget(keys.job_counters(job_id), "rows") or 0)
        ledger_keys = LedgerReader(self.client, job_id, mine).ledger_keys(rows, ledgers)
        for start in range(0, len(ledger_keys), _DELETES):  # a 10M-row job has 2M buckets a ledger
            pipe = self.client.pipeline(transaction=False)
            for key in ledger_keys[start : start + _DELETES]:
                pipe.delete(key)  # one key a DELETE: a cluster pipeline takes no more
            pipe.execute()
        pipe = self.client.pipeline(transaction=False)  # many slots on a cluster; the record goes last
        for name in sorted({*ledgers, *mine.values()}):
            pipe.srem(keys.webhook_jobs(name), job_id)
        pipe.delete(keys.job_counters(job_id))
        pipe.delete(keys.job_samples(job_id))
        pipe.delete(keys.job_events_lock(job_id))
        pipe.delete(keys.job_summary_lock(job_id))
        pipe.delete(keys.job_results(job_id))
        for key in (
            *links.click_keys(job_id),
            *keys.job_conversion_keys(job_id),
            *keys.job_survey_keys(job_id),
        ):
            pipe.delete(key)
        pipe.zrem(keys.JOBS, job_id)
        pipe.delete(keys.job(job_id))
        pipe.execute()

    def created_at(self, job_id: str) -> float:
        score = self.client.zscore(keys.JOBS, job_id)
        return float(score) if score is not None else 0.0

    # ----------------------------------------------------------------------------- transitions

    def transition(self, job_id: str, event: JobEvent, *, to: JobState | None = None) -> JobState:
        """Apply *event* (``cluster.jobs.states.MOVES``) if the job is in a state it may happen in,
        leading to *to* where it may lead to several; return the state the job was in.

        Raises :class:`InvalidTransition` (with the current state) otherwise."""
        allowed, to = move(event, to=to)
        pause = "1" if event is JobEvent.PAUSE else "0"
        ok, cur = self._transition(
            keys=[keys.job(job_id)], args=[to.value, _now(), pause, *[s.value for s in allowed]]
        )
        current = cur.decode() if isinstance(cur, bytes) else str(cur)
        if not current:
            raise JobNotFound(f"no job {quoted(job_id, 40)}")
        if not ok:
            raise InvalidTransition(f"job {job_id} is {current}: it cannot become {to.value}", current)
        return JobState(current)

    def announce(self, job_id: str, state: JobState) -> None:
        """Queue the job's final state for its webhook, if it has one."""
        if self.client.hexists(keys.job(job_id), "webhook_url"):
            self.client.xadd(keys.WEBHOOK_STATES, {"job": job_id, "state": state.value}, maxlen=1_000_000)

    def fail(self, job_id: str, *, code: str, message: str, field: str | None = None) -> None:
        error = {"code": code, "message": message, **({"field": field} if field else {})}
        self.update(job_id, error=json.dumps(error))
        with contextlib.suppress(InvalidTransition):  # already terminal (cancelled meanwhile): keep that
            self.transition(job_id, JobEvent.FAIL)

    # -------------------------------------------------------------------------------- figures

    def counters(self, job_id: str) -> dict[str, int]:
        """The job's figures: its own counters and its ledgers' counters, summed."""
        return self.progress(job_id)[0]

    def progress(self, job_id: str) -> tuple[dict[str, int], dict[str, int]]:
        """:meth:`counters`, and the parts sent in each of the job's ledgers (its rate per operator)."""
        raw: dict[bytes, bytes] = self.client.hgetall(keys.job_counters(job_id))  # type: ignore[assignment]
        per = self.reader(job_id).per_ledger()
        sent = {name: int(c.get(b"parts_sent", 0)) for name, c in per.items()}
        return counters([raw, sum_counters(list(per.values()))]), sent

    def reader(self, job_id: str) -> LedgerReader:
        """The job's rows, parts and ledger counters, read from the ledgers its record names."""
        return LedgerReader(self.client, job_id, self.record(job_id).ledgers)

    def sample(
        self, job_id: str, counters: dict[str, int], *, ledgers: dict[str, int] | None = None, keep: int = 30
    ) -> None:
        """Record a progress sample (the job's runner does, about once a second) for rates and ETA;
        *ledgers*: parts sent per ledger, for the rate per operator."""
        per = tuple(sorted((ledgers or {}).items()))
        value = Sample(time.time(), counters["submitted"], counters["parts_sent"], per).write()
        pipe = self.client.pipeline()
        pipe.lpush(keys.job_samples(job_id), value)
        pipe.ltrim(keys.job_samples(job_id), 0, keep - 1)
        pipe.execute()

    def view(self, job_id: str) -> dict[str, Any]:
        """The job as the API shows it: state, options, the figures (adding up), rates, ETA, times."""
        return self.view_and_record(job_id)[0]

    def view_and_record(self, job_id: str) -> tuple[dict[str, Any], JobRecord]:
        """:meth:`view`, and the record it was made from (read once, in the same MULTI)."""
        # One MULTI for the job's own keys (one slot), then one pipeline for its ledgers' counters,
        # each an atomic snapshot that adds up (ulak.dispatch.ledger.LedgerReader).
        pipe = self.client.pipeline(transaction=True)
        queue_view(pipe, job_id)
        rec, own, samples, clicks, conversions = pipe.execute()
        record = JobRecord.from_redis(rec)
        ledger = LedgerReader(self.client, job_id, record.ledgers).counters()
        view = make_view(job_id, rec, [own, ledger], samples, clicks=clicks, conversions=conversions)
        return view, record


def is_preview(options: bytes | None) -> bool:
    """Whether a job record's ``options`` field is a dry run's (a preview: it sends nothing)."""
    return bool(options and json.loads(options).get("dry_run"))


async def view_async(client: Any, job_id: str) -> dict[str, Any]:
    """:meth:`JobStore.view` over a ``redis.asyncio`` client (the API's hot path, no thread hop)."""
    pipe = client.pipeline(transaction=True)
    queue_view(pipe, job_id)
    rec, own, samples, clicks, conversions = await pipe.execute()
    found = LedgerReader(client, job_id, JobRecord.from_redis(rec).ledgers).counter_keys()
    ledger: dict[str, int] = {}
    if found:  # LedgerReader.counters, over the asyncio client
        pipe = client.pipeline(transaction=False)
        for key in found:
            pipe.hgetall(key)
        ledger = sum_counters(await pipe.execute())
    return make_view(job_id, rec, [own, ledger], samples, clicks=clicks, conversions=conversions)
