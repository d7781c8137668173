"""Jobs as Redis records: the state machine, the options a job was submitted with, and its progress view.

The job record lives in Redis, not in any process, so that the control plane and the job actor can
both restart without losing a job. Every state change is one atomic check-and-set (a Lua script):
the API moves a job to ``paused`` or ``cancelling``, the job's actor sees that within its poll interval
and acts; the actor moves it along the rest of the way::

    queued → ingesting → scheduled → sending → draining → done
                 │            │   ↕        │
                 │            └─ paused ───┤
                 └──────→ failed           └──→ cancelling → cancelled

The figures in :meth:`JobStore.view` add up by construction from the ledger's counters:
``rows = accepted + rejected + held_out``, ``accepted = submitted + pending + cancelled``, and
``submitted = acked + failed + unknown + in_flight``.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ingest.prepare import CampaignSpec
from ulak import keys, links
from ulak.dispatch.ledger import COUNTERS, LedgerReader, sum_counters
from ulak.jobfiles import JobDir
from ulak.money import from_micros
from ulak.quoting import quoted
from ulak.settings import BRAND_PATTERN, OperatorConfig
from ulak.variants import Split, seed_of


class JobState(StrEnum):
    QUEUED = "queued"
    INGESTING = "ingesting"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    DRAINING = "draining"
    CANCELLING = "cancelling"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


ACTIVE = tuple(s for s in JobState if not s.terminal)
# From where pause and cancel are allowed (the API's 409 names the job's state otherwise).
PAUSABLE = (JobState.QUEUED, JobState.INGESTING, JobState.SCHEDULED, JobState.SENDING)
CANCELLABLE = (*PAUSABLE, JobState.PAUSED)

# cluster.conversions counts these in keys.job_conversions; value in millionths (ulak.money)
CONVERSION_COUNTERS = (
    "conversions",
    "by_click",
    "by_delivery",
    "unattributed",
    "converters",
    "value",
    "holdout_conversions",  # reported for held-out recipients (they got no message)
    "holdout_converters",  # held-out recipients who converted in the campaign's period
    "period_converters",  # sent recipients who converted in that period, attributed or not
)
RECEIPT_OUTCOMES = ("delivered", "undelivered", "expired", "rejected", "deleted", "receipt_unknown")
# Set by the job runner in the same hash as the ledger's (which has its own "rejected": a receipt outcome).
INGEST_COUNTERS = ("rows", "accepted", "rows_rejected", "held_out", "parts_total", "cancelled")

_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-(([01]\d|2[0-3]):([0-5]\d)|24:00)$")


_SENDER = r"^[A-Za-z0-9 ._-]+$"


class JobRefused(Exception):
    """Options the job cannot start with, found with the configuration at hand (the API's 422)."""

    def __init__(self, message: str, *, code: str, field: str) -> None:
        super().__init__(message)
        self.message, self.code, self.field = message, code, field


def says_how_to_opt_out(text: str, pattern: str) -> bool:
    """Whether *text* matches *pattern* (``replies.optout_instruction``), case-insensitively."""
    return re.search(pattern, text, re.IGNORECASE) is not None


class Variant(BaseModel):
    """One arm of an A/B test: its own text, sender and/or send time, and its share of the recipients."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,20}$", description="e.g. A, B, short-text")
    template: str | None = Field(default=None, description="its message template (default: the job's)")
    sender: str | None = Field(
        default=None, min_length=1, max_length=11, pattern=_SENDER, description="its sender id"
    )
    weight: float = Field(default=1.0, gt=0, le=1000, allow_inf_nan=False, description="its share")
    send_at: datetime | None = Field(
        default=None,
        description="its rows are not sent before this time (ISO 8601 with zone): a send-time test",
    )

    @field_validator("send_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("a variant's send_at needs a time zone, e.g. 2026-11-24T09:00:00+03:00")
        return value


class Survey(BaseModel):
    """The job asks a question; the replies to it are its answers (``cluster.replies``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["yes_no", "nps"] = Field(description="yes_no: EVET/HAYIR; nps: a score 0-10")
    reply_to: str | None = Field(
        default=None,
        min_length=1,
        max_length=21,
        description="the short code or number the answers come to (default: the job's sender)",
    )
    window_hours: float = Field(
        default=72.0, gt=0, le=24 * 90, description="answers count this long after the job began sending"
    )
    followups: dict[str, str] | None = Field(
        default=None,
        description="a message sent once to each who answers, by answer: yes/no (yes_no), or "
        'promoter/passive/detractor (nps), e.g. {"detractor": "Neyi daha iyi yapabiliriz?"}',
    )

    @model_validator(mode="after")
    def _followups(self) -> Survey:
        known = {"yes", "no"} if self.kind == "yes_no" else {"promoter", "passive", "detractor"}
        for answer, text in (self.followups or {}).items():
            if answer not in known:
                raise ValueError(
                    f"followups: {answer!r} is no answer of a {self.kind} survey; "
                    f"use {', '.join(sorted(known))}"
                )
            if not text.strip() or len(text) > 1000:
                raise ValueError(f"followups.{answer}: give a text of 1 to 1000 characters")
        return self

    def followup(self, answer: str | int) -> str | None:
        """The follow-up for *answer* (yes/no, or a score), if there is one."""
        if not self.followups:
            return None
        if isinstance(answer, int):
            return self.followups.get(
                "promoter" if answer >= 9 else "passive" if answer >= 7 else "detractor"
            )
        return self.followups.get(answer)


class JobOptions(BaseModel):
    """What a job was asked to do (the POST's options, kept in the job record)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, max_length=200, description="a label for lists and reports")
    template: str | None = Field(default=None, description="message template, e.g. 'Merhaba {ad}'")
    text_column: str | None = Field(
        default=None, validate_default=True, description="column holding each row's own text"
    )
    phone_column: str | None = Field(default=None, description="column of numbers (default: detected)")
    sheet: str | None = Field(default=None, description="spreadsheet sheet (default: the first)")
    encoding: str | None = Field(
        default=None, max_length=40, description="CSV encoding (default: UTF-8, else cp1254)"
    )
    operators: tuple[str, ...] | None = Field(default=None, description="allowed operators (default: all)")
    sender: str | None = Field(
        default=None,
        min_length=1,
        max_length=11,
        pattern=_SENDER,
        description="sender id (alphanumeric, up to 11 characters; default: the bind's)",
    )
    brand: str | None = Field(
        default=None,
        pattern=BRAND_PATTERN,
        description="whose campaign this is: rows whose number is on this brand's opt-out list are "
        "refused (opted_out), as are those on the global list (always)",
    )
    category: Literal["informational", "commercial"] = Field(
        default="informational",
        description="commercial: sent only to numbers with consent on record (ONAY; the rest are "
        "refused as no_consent), and its text must say how to opt out (replies.optout_instruction)",
    )
    send_at: datetime | None = Field(default=None, description="do not send before (ISO 8601 with zone)")
    send_window: str | None = Field(
        default=None, description="daily hours to send in, 'HH:MM-HH:MM' in window_timezone, e.g. 09:00-20:00"
    )
    window_timezone: str = Field(default="Europe/Istanbul", description="IANA zone of send_window")
    validity_minutes: int | None = Field(
        default=None, ge=1, le=7 * 24 * 60, description="the network drops an undelivered message after this"
    )
    dry_run: bool = Field(default=False, description="prepare and report, send nothing")
    weight: float = Field(
        default=1.0,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="share of the binds against other jobs sending at once (2 = twice a weight-1 job's)",
    )
    survey: Survey | None = Field(
        default=None,
        description="a survey: {kind: yes_no|nps, reply_to, window_hours}; a reply from a recipient to "
        "reply_to within the window is an answer, tied to the most recent survey that asked them",
    )
    webhook_url: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^https?://[^\s]+$",
        description="POST each final receipt (in signed batches) and the job's end here",
    )
    link_url: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^https?://[^\s]+$",
        description="the page {link} in the template leads to: each row gets its own short link to it, "
        "and the job counts its clicks",
    )
    utm: dict[str, str] | None = Field(
        default=None,
        max_length=10,
        description="query parameters added to link_url when a link is followed, e.g. "
        "{'utm_source': 'sms', 'utm_campaign': 'kasim'} (in a form: utm_source=sms&utm_campaign=kasim)",
    )

    click_window_days: float | None = Field(
        default=None,
        ge=0,
        le=365,
        description="a conversion this long after the recipient clicked is this job's "
        "(default: measurement.click_window_days, 7)",
    )
    delivery_window_days: float | None = Field(
        default=None,
        ge=0,
        le=365,
        description="without such a click, a conversion this long after delivery is this job's "
        "(default: measurement.delivery_window_days, 1)",
    )
    goal_conversions: int | None = Field(
        default=None, ge=1, description="the conversions the campaign aims at (the summary's progress)"
    )
    goal_value: Decimal | None = Field(
        default=None,
        gt=0,
        max_digits=18,
        decimal_places=6,
        description="the conversion value the campaign aims at, in measurement.currency",
    )

    variants: tuple[Variant, ...] | None = Field(
        default=None,
        min_length=2,
        max_length=10,
        description="an A/B test: two or more variants (name, template and/or sender, weight); each "
        "recipient gets one by a seeded hash of its number (in a form: JSON)",
    )
    split_seed: str | None = Field(
        default=None,
        max_length=100,
        description="what the split hashes numbers with (default: the job id); the same seed splits "
        "the same numbers the same way",
    )
    test_share: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="test then send the winner: this share of the recipients (not held out) is split "
        "across the variants first; after decide_after_minutes the rest get the winning variant",
    )
    decide_after_minutes: float = Field(
        default=60.0,
        ge=0,
        le=7 * 24 * 60,
        description="how long the test slice runs before the winner is picked",
    )
    winner_by: Literal["clicks", "conversions"] = Field(
        default="clicks",
        description="what picks the winner: unique clicks or converters per delivered recipient",
    )
    holdout: float = Field(
        default=0.0,
        ge=0,
        le=0.5,
        description="share of recipients kept unsent, to measure the campaign's lift from their "
        "conversions (reported by job_id and msisdn)",
    )

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: tuple[Variant, ...] | None, info: ValidationInfo) -> tuple[Variant, ...] | None:
        names = [v.name for v in value or ()]
        if info.data.get("text_column") is not None and any(v.template for v in value or ()):
            raise ValueError("a variant's own template needs the job's template, not text_column")
        if len(names) != len(set(names)):
            raise ValueError(f"variant names must differ: {names}")
        if "holdout" in names or "rest" in names:
            raise ValueError(
                "'holdout' and 'rest' name recipients of the split: give the variant another name"
            )
        return value

    @field_validator("survey")
    @classmethod
    def _survey(cls, value: Survey | None, info: ValidationInfo) -> Survey | None:
        if value is not None and value.reply_to is None and info.data.get("sender") is None:
            raise ValueError(
                "a survey needs the short code or number its answers come to: give survey.reply_to, "
                "or a sender (answers come to it)"
            )
        return value

    def survey_reply_to(self) -> str | None:
        """Where the survey's answers come to (None: not a survey)."""
        if self.survey is None:
            return None
        return self.survey.reply_to or self.sender

    @field_validator("test_share")
    @classmethod
    def _test(cls, value: float | None, info: ValidationInfo) -> float | None:
        variants = info.data.get("variants") or ()
        if value is not None and len(variants) < 2:
            raise ValueError("test_share picks a winner among variants: give two or more")
        if value is not None and any(v.send_at is not None for v in variants):
            raise ValueError(
                "test_share cannot be combined with variants' send_at: a send-time test sends every "
                "variant at its own time; read the winner from the summary and send the rest as a "
                "new job at that time"
            )
        return value

    @field_validator("utm")
    @classmethod
    def _utm(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, text in (value or {}).items():
            if not name.strip() or len(name) > 100 or len(text) > 500:
                raise ValueError(
                    "each utm parameter needs a name (up to 100 characters) and a value up to 500"
                )
        return value

    @field_validator("send_window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is None:
            return value
        m = _WINDOW.match(value)
        if m is None:
            raise ValueError("send_window must look like 09:00-20:00 (24-hour clock, 24:00 for midnight)")
        start, end = value.split("-")
        if start == end:
            raise ValueError(
                f"send_window {value} is empty (it would wait forever): to send at any hour, leave it out"
            )
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        if value is not None and value != "auto":
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError("unknown text encoding; use e.g. utf-8, cp1254, utf-16 or auto") from None
        return value

    @field_validator("window_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as Europe/Istanbul"
            ) from None
        return value

    @field_validator("send_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("send_at needs a time zone, e.g. 2026-11-24T09:00:00+03:00")
        return value

    @field_validator("text_column", mode="after")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A field validator (on the last of the two, validated even when absent) so that the error
        # names a field; a model validator's has none.
        if (info.data.get("template") is None) == (value is None):
            raise ValueError("give either template or text_column, not both or neither")
        return value

    def split(self, job_id: str) -> Split | None:
        """How the job's recipients are split into variants and a holdout (None: they are not)."""
        if not self.variants and not self.holdout:
            return None
        variants = self.variants or (Variant(name="campaign"),)  # a holdout alone: the rest is sent
        return Split(
            names=tuple(v.name for v in variants),
            weights=tuple(v.weight for v in variants),
            seed=seed_of(self.split_seed if self.split_seed is not None else job_id),
            holdout=self.holdout,
            test_share=self.test_share if self.test_share is not None else 1.0,
        )

    def campaign_spec(self, job_id: str = "") -> CampaignSpec:
        """What ingest needs of these options (*job_id*: the split's seed when none is given)."""
        split = self.split(job_id)
        return CampaignSpec(
            split=split,
            variant_templates=tuple(v.template for v in self.variants or ()) if split else (),
            template=self.template,
            text_column=self.text_column,
            phone_column=self.phone_column,
            sheet=self.sheet,
            encoding=self.encoding,
            operators=self.operators,
            link=self.link_url is not None,
            brand=self.brand,
            commercial=self.category == "commercial",
        )

    def window_open(self, now: datetime) -> bool:
        """Whether *now* is inside the daily send window (always, when there is none)."""
        if self.send_window is None:
            return True
        m = _WINDOW.match(self.send_window)
        assert m is not None
        start = int(m[1]) * 60 + int(m[2])
        end = 24 * 60 if m[3] == "24:00" else int(m[4]) * 60 + int(m[5])
        local = now.astimezone(ZoneInfo(self.window_timezone))
        minute = local.hour * 60 + local.minute
        if start <= end:
            return start <= minute < end
        return minute >= start or minute < end  # a window across midnight, e.g. 22:00-02:00

    def send_times(self) -> list[tuple[float, list[str]]]:
        """A send-time test: the variants grouped by when they may be sent (unix seconds, 0 for
        those without a send_at), earliest first; empty when no variant has a time of its own."""
        if not any(v.send_at is not None for v in self.variants or ()):
            return []
        groups: dict[float, list[str]] = {}
        for v in self.variants or ():
            groups.setdefault(v.send_at.timestamp() if v.send_at else 0.0, []).append(v.name)
        return sorted(groups.items())

    def may_send(self, now: datetime) -> bool:
        return (self.send_at is None or now >= self.send_at) and self.window_open(now)


_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return {0, ''} end
for i = 3, #ARGV do
  if cur == ARGV[i] then
    redis.call('HSET', KEYS[1], 'state', ARGV[1], ARGV[1] .. '_at', ARGV[2], 'updated_at', ARGV[2])
    -- Every entry into a state, in order ('state@unix ...'), the oldest dropped past 8,000 bytes
    local h = (redis.call('HGET', KEYS[1], 'history') or '') .. ' ' .. ARGV[1] .. '@' .. ARGV[2]
    if #h > 8000 then h = string.sub(h, string.find(h, ' ', #h - 8000, true)) end
    redis.call('HSET', KEYS[1], 'history', h)
    if ARGV[1] == 'paused' then
      redis.call('HSET', KEYS[1], 'paused_from', cur)
      redis.call('HINCRBY', KEYS[1], 'pauses', 1)  -- the runner answers with taken_back = this
    end
    return {1, cur}
  end
end
return {0, cur}
"""


class JobNotFound(LookupError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidTransition(RuntimeError):
    """The job is not in a state the change is allowed from (the API answers 409)."""

    def __init__(self, message: str, state: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.state = state


def _now() -> float:
    return round(time.time(), 3)


def _iso(ts: str | None) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(float(ts), UTC).isoformat().replace("+00:00", "Z")


class JobStore:
    """Job records in Redis (synchronous client: used by the job actor and by the API's threads)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._transition = client.register_script(_TRANSITION)

    # ---------------------------------------------------------------------------------- records

    def create(self, job_id: str, *, options: JobOptions, source: str, directory: JobDir | Path) -> None:
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
                "history": f"queued@{now}",
            },
        )
        pipe.zadd(keys.JOBS, {job_id: now})
        pipe.execute()

    def record(self, job_id: str) -> dict[str, str]:
        raw: dict[bytes, bytes] = self.client.hgetall(keys.job(job_id))  # type: ignore[assignment]
        if not raw:
            raise JobNotFound(f"no job {quoted(job_id, 40)}")
        return _decoded(raw)

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
        return JobOptions.model_validate_json(self.record(job_id)["options"])

    def update(self, job_id: str, **fields: str | int | float) -> None:
        mapping: dict[str, str | int | float] = {**fields, "updated_at": _now()}
        self.client.hset(keys.job(job_id), mapping=mapping)  # type: ignore[arg-type]

    def ids(
        self, *, state: JobState | None = None, limit: int = 50, before: float | None = None
    ) -> list[str]:
        """Job ids, newest first; *before* is the paging cursor (a creation time)."""
        high: float | str = f"({before}" if before is not None else "+inf"
        found: list[str] = []
        cursor_high = high
        while len(found) < limit:
            batch: list[tuple[bytes, float]] = self.client.zrevrangebyscore(  # type: ignore[assignment]
                keys.JOBS, cursor_high, "-inf", start=0, num=200, withscores=True
            )
            if not batch:
                break
            for raw_id, _score in batch:
                job_id = raw_id.decode()
                if state is None or self.client.hget(keys.job(job_id), "state") == state.value.encode():
                    found.append(job_id)
                    if len(found) == limit:
                        break
            cursor_high = f"({batch[-1][1]}"
        return found

    def ended_before(self, cutoff: float, *, scan: int = 500) -> list[str]:
        """Terminal jobs that entered their final state before *cutoff* (unix seconds), oldest first.
        Jobs are scanned in creation order, and a job ends after it is created, so the scan stops at
        the first job created after *cutoff*."""
        found: list[str] = []
        low: float | str = "-inf"
        while True:
            batch: list[tuple[bytes, float]] = self.client.zrangebyscore(  # type: ignore[assignment]
                keys.JOBS, low, cutoff, start=0, num=scan, withscores=True
            )
            if not batch:
                return found
            pipe = self.client.pipeline(transaction=False)
            for raw_id, _ in batch:
                pipe.hmget(keys.job(raw_id.decode()), ["state", "done_at", "failed_at", "cancelled_at"])
            for (raw_id, _), (state, *ended) in zip(batch, pipe.execute(), strict=True):
                at = {"done": ended[0], "failed": ended[1], "cancelled": ended[2]}.get(
                    state.decode() if state else ""
                )
                if at is not None and float(at) < cutoff:
                    found.append(raw_id.decode())
            low = f"({batch[-1][1]}"

    def delete(self, job_id: str, *, ledgers: Sequence[str] = ()) -> None:
        """Forget a job: its record, counters, row and part outcomes (in its ledgers and *ledgers*,
        the configured ones: a webhook job is listed in each), samples and index entries (the
        message-id keys expire by themselves). Its directory is the caller's to delete."""
        raw: dict[bytes, bytes] = self.client.hgetall(keys.job(job_id))  # type: ignore[assignment]
        mine = job_ledgers(_decoded(raw))
        pipe = self.client.pipeline(transaction=False)  # many slots on a cluster; the record goes last
        for key in LedgerReader(self.client, job_id, mine).ledger_keys(ledgers):
            pipe.delete(key)
        for name in sorted({*ledgers, *mine.values()}):
            pipe.srem(keys.webhook_jobs(name), job_id)
        pipe.delete(keys.job_counters(job_id))  # one key a DELETE: a cluster pipeline takes no more
        pipe.delete(keys.job_samples(job_id))
        pipe.delete(keys.job_events_lock(job_id))
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

    def transition(self, job_id: str, to: JobState, *, allowed: tuple[JobState, ...]) -> JobState:
        """Move the job to *to* if it is in one of *allowed*; return the state it was in.

        Raises :class:`InvalidTransition` (with the current state) otherwise."""
        ok, cur = self._transition(
            keys=[keys.job(job_id)], args=[to.value, _now(), *[s.value for s in allowed]]
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
            self.transition(job_id, JobState.FAILED, allowed=ACTIVE)

    # -------------------------------------------------------------------------------- figures

    def counters(self, job_id: str) -> dict[str, int]:
        """The job's figures: its own counters and its ledgers' counters, summed."""
        raw: dict[bytes, bytes] = self.client.hgetall(keys.job_counters(job_id))  # type: ignore[assignment]
        return _counters([raw, self.reader(job_id).counters()])

    def reader(self, job_id: str) -> LedgerReader:
        """The job's rows, parts and ledger counters, read from the ledgers its record names."""
        return LedgerReader(self.client, job_id, job_ledgers(self.record(job_id)))

    def sample(self, job_id: str, counters: dict[str, int], *, keep: int = 30) -> None:
        """Record a progress sample (the job's runner does, about once a second) for rates and ETA."""
        value = f"{time.time():.3f}|{counters['submitted']}|{counters['parts_sent']}"
        pipe = self.client.pipeline()
        pipe.lpush(keys.job_samples(job_id), value)
        pipe.ltrim(keys.job_samples(job_id), 0, keep - 1)
        pipe.execute()

    def view(self, job_id: str) -> dict[str, Any]:
        """The job as the API shows it: state, options, the figures (adding up), rates, ETA, times."""
        return self.view_and_record(job_id)[0]

    def view_and_record(self, job_id: str) -> tuple[dict[str, Any], dict[str, str]]:
        """:meth:`view`, and the record it was made from (read once, in the same MULTI)."""
        # One MULTI for the job's own keys (one slot), then one pipeline for its ledgers' counters,
        # each an atomic snapshot that adds up (ulak.dispatch.ledger.LedgerReader).
        pipe = self.client.pipeline(transaction=True)
        _queue_view(pipe, job_id)
        rec, own, samples, clicks, conversions = pipe.execute()
        record = _decoded(rec)
        ledger = LedgerReader(self.client, job_id, job_ledgers(record)).counters()
        view = make_view(job_id, rec, [own, ledger], samples, clicks=clicks, conversions=conversions)
        return view, record


async def view_async(client: Any, job_id: str) -> dict[str, Any]:
    """:meth:`JobStore.view` over a ``redis.asyncio`` client (the API's hot path, no thread hop)."""
    pipe = client.pipeline(transaction=True)
    _queue_view(pipe, job_id)
    rec, own, samples, clicks, conversions = await pipe.execute()
    found = LedgerReader(client, job_id, job_ledgers(_decoded(rec))).counter_keys()
    ledger: dict[str, int] = {}
    if found:  # LedgerReader.counters, over the asyncio client
        pipe = client.pipeline(transaction=False)
        for key in found:
            pipe.hgetall(key)
        ledger = sum_counters(await pipe.execute())
    return make_view(job_id, rec, [own, ledger], samples, clicks=clicks, conversions=conversions)


def job_ledgers(record: dict[str, str]) -> dict[str, str]:
    """Each operator a job's rows go to, and the ledger that keeps them (its record's ``ledgers``,
    written when it is prepared, so a later change of configuration does not lose its figures)."""
    pairs = (item.partition(":") for item in record.get("ledgers", "").split(",") if item)
    return {op: ledger or op for op, _, ledger in pairs}


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def ledgers_field(operators: Iterable[OperatorConfig]) -> str:
    """The record's ``ledgers`` for a job whose rows go to *operators*."""
    return ",".join(f"{op.name}:{op.ledger_name}" for op in sorted(operators, key=lambda o: o.name))


def _queue_view(pipe: Any, job_id: str) -> None:
    pipe.hgetall(keys.job(job_id))
    pipe.hgetall(keys.job_counters(job_id))
    pipe.lrange(keys.job_samples(job_id), 0, -1)
    pipe.hgetall(keys.job_clicks(job_id))
    pipe.hgetall(keys.job_conversions(job_id))


def make_view(
    job_id: str,
    raw_rec: dict[bytes, bytes],
    raw_counters: Sequence[dict[bytes, bytes] | dict[str, int]],
    raw_samples: list[bytes],
    *,
    clicks: dict[bytes, bytes],
    conversions: dict[bytes, bytes],
) -> dict[str, Any]:
    """The job's view from its record, counters (its own, then its ledger's), samples, clicks and
    conversions."""
    if not raw_rec:
        raise JobNotFound(f"no job {quoted(job_id, 40)}")
    rec = _decoded(raw_rec)
    c = _counters(raw_counters)
    state = JobState(rec["state"])
    in_flight = c["submitted"] - c["acked"] - c["failed"] - c["unknown"]
    pending = c["accepted"] - c["submitted"] - c["cancelled"]
    outcomes = {o: c[o] for o in RECEIPT_OUTCOMES}
    msgs_rate, parts_rate = _rates(raw_samples)
    parts_left = max(0, c["parts_total"] - c["parts_sent"]) if pending > 0 else 0
    eta = parts_left / parts_rate if parts_rate > 0 and state is JobState.SENDING else None
    preview = json.loads(rec["preview"]) if "preview" in rec else None
    clicked = links.clicks_view(clicks)
    converted = {n: int(conversions.get(n.encode(), 0)) for n in CONVERSION_COUNTERS}
    return {
        "id": job_id,
        "state": state.value,
        "options": json.loads(rec["options"]),
        "source": rec.get("source"),
        "error": json.loads(rec["error"]) if "error" in rec else None,
        "waiting": rec.get("waiting") or None,
        "counts": {
            "rows": c["rows"],
            "accepted": c["accepted"],
            "rejected": c["rows_rejected"],
            "held_out": c["held_out"],
            "pending": pending,
            "cancelled": c["cancelled"],
            "submitted": c["submitted"],
            "in_flight": in_flight,
            "acked": c["acked"],
            "failed": c["failed"],
            "unknown": c["unknown"],
        },
        "parts": {
            "total": c["parts_total"],
            "sent": c["parts_sent"],
            "acked": c["parts_acked"],
            "failed": c["parts_failed"],
            "unknown": c["parts_unknown"],
        },
        "receipts": {
            "awaiting": c["acked"] - sum(outcomes.values()),
            **outcomes,
            "received": c["receipts"],
            "duplicates": c["receipts_duplicate"],
        },
        "delivery_rate": round(c["delivered"] / c["acked"], 4) if c["acked"] else None,
        "clicks": {
            **clicked,
            "click_rate": round(clicked["unique"] / c["delivered"], 4) if c["delivered"] else None,
        },
        "conversions": {
            **{n: converted[n] for n in CONVERSION_COUNTERS if n != "value"},
            "value": str(from_micros(converted["value"])),
            "conversion_rate": (
                round(converted["conversions"] / clicked["unique"], 4) if clicked["unique"] else None
            ),
        },
        "rates": {"messages_per_second": round(msgs_rate, 1), "parts_per_second": round(parts_rate, 1)},
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "operators": preview["operators"] if preview else {},
        "rejected_reasons": preview["rejected"] if preview else {},
        "encodings": preview.get("encodings", {}) if preview else {},
        "samples": preview.get("samples", []) if preview else [],
        "times": {
            s: _iso(rec.get(f"{s}_at"))
            for s in ("created", *(x.value for x in JobState))
            if rec.get(f"{s}_at")
        },
        **_history(rec.get("history", "")),
    }


def _history(raw: str) -> dict[str, Any]:
    """Every entry into a state in order, and how long the job has been sending in all (``times``
    keeps only the last entry into each: after a pause nobody could tell how long it sent)."""
    entries = [(state, float(at)) for state, _, at in (e.partition("@") for e in raw.split())]
    sending = 0.0
    for (state, at), (_, until) in zip(entries, [*entries[1:], ("", time.time())], strict=True):
        if state == JobState.SENDING.value:
            sending += until - at
    return {
        "history": [{"state": state, "at": _iso(str(at))} for state, at in entries],
        "sending_seconds": round(sending, 3) if entries else None,
    }


def _counters(hashes: Sequence[dict[bytes, bytes] | dict[str, int]]) -> dict[str, int]:
    """Counter hashes (as Redis returned them, or already decoded), summed, every counter present."""
    found: dict[str, int] = {}
    for raw in hashes:
        for k, v in raw.items():
            name = k.decode() if isinstance(k, bytes) else k
            found[name] = found.get(name, 0) + int(v)
    return {name: found.get(name, 0) for name in (*INGEST_COUNTERS, *COUNTERS)}


def _rates(raw: list[bytes], span: float = 10.0) -> tuple[float, float]:
    samples = [tuple(float(x) for x in s.decode().split("|")) for s in raw]
    if len(samples) < 2 or time.time() - samples[0][0] > 3.0:  # no fresh samples: not moving
        return 0.0, 0.0
    newest = samples[0]
    oldest = next((s for s in samples if newest[0] - s[0] >= span), samples[-1])
    dt = newest[0] - oldest[0]
    if dt <= 0:
        return 0.0, 0.0
    return (newest[1] - oldest[1]) / dt, (newest[2] - oldest[2]) / dt
