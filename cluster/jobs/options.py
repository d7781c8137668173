"""The options a job is submitted with (``JobOptions``): validated once, stored in its record as JSON."""

from __future__ import annotations

import codecs
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ingest.spec import CampaignSpec
from ulak.settings import BRAND_PATTERN
from ulak.variants import Split, seed_of

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
    """The job asks a question; the replies to it are its answers (``cluster.engagement.replies``)."""

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
    confirms_optout: bool = Field(
        default=False,
        description="internal: opt-out confirmations (sent to numbers because they opted out; never "
        "settable through the API)",
    )
    frequency_cap: Literal["defer", "refuse", "off"] | None = Field(
        default=None,
        description="what a message beyond a recipient's frequency cap (frequency_caps in the "
        "configuration) does: defer (wait until the cap allows, within validity_minutes when set), "
        "refuse (end as frequency_capped), off (neither checked nor counted); default: defer for "
        "commercial jobs, off for informational ones",
    )
    send_at: datetime | None = Field(default=None, description="do not send before (ISO 8601 with zone)")
    send_window: str | None = Field(
        default=None, description="daily hours to send in, 'HH:MM-HH:MM' in window_timezone, e.g. 09:00-20:00"
    )
    window_timezone: str = Field(
        default="Europe/Istanbul",
        description="IANA zone of send_window, or 'recipient': each recipient's own local time, from "
        "their number's country (ulak.zones)",
    )
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
    send_time_horizon_hours: int = Field(
        default=24,
        ge=1,
        le=72,
        description="send_time optimized: the hours from the job's start within which each recipient's "
        "time is chosen",
    )
    send_time_control: float = Field(
        default=0.1,
        ge=0.01,
        le=0.5,
        description="send_time optimized: the share of recipients sent at a random hour of the horizon "
        "instead, so that the summary measures what the chosen times add (the lift)",
    )
    send_time: Literal["now", "optimized"] = Field(
        default="now",
        description="now: as soon as the job may send; optimized: each recipient at the hour of the next "
        "send_time_horizon_hours (inside send_window) they are most likely to engage, learned from when "
        "they clicked, replied and converted before (ulak.sendtime), a control share at random hours",
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

    @field_validator("send_time")
    @classmethod
    def _send_time(cls, value: str, info: ValidationInfo) -> str:
        if value != "optimized":
            return value
        if info.data.get("test_share") is not None:
            raise ValueError(
                "send_time optimized cannot be combined with test_share: the test slice would be "
                "spread over the horizon and the winner picked before most of it is sent"
            )
        if any(v.send_at is not None for v in info.data.get("variants") or ()):
            raise ValueError(
                "send_time optimized cannot be combined with variants' send_at: each recipient's time "
                "is chosen for them; drop the variants' times"
            )
        return value

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
        if value == RECIPIENT:
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as Europe/Istanbul, or "
                "'recipient' for each recipient's own"
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
            optouts=not self.confirms_optout,
        )

    def capping(self) -> Literal["defer", "refuse"] | None:
        """What a capped message of this job does (None: the job is not capped)."""
        if self.confirms_optout:
            return None  # a confirmation answers the recipient's own message
        mode = self.frequency_cap or ("defer" if self.category == "commercial" else "off")
        return None if mode == "off" else mode

    def local_windows(self) -> bool:
        """Whether the send window is kept in each recipient's own zone (``window_timezone:
        recipient``: the runner holds each message until its window is open, the job does not)."""
        return self.send_window is not None and self.window_timezone == RECIPIENT

    def window_open(self, now: datetime) -> bool:
        """Whether *now* is inside the job's daily send window (always, when there is none or it
        is each recipient's own: ``local_windows``)."""
        if self.send_window is None or self.window_timezone == RECIPIENT:
            return True
        return in_window(self.send_window, ZoneInfo(self.window_timezone), now)

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


RECIPIENT = "recipient"  # window_timezone: each recipient's own zone


def window_minutes(window: str) -> tuple[int, int]:
    """A send window's (start, end) as minutes of the day (end 1440 for 24:00)."""
    m = _WINDOW.match(window)
    assert m is not None, "validated by JobOptions"
    return int(m[1]) * 60 + int(m[2]), 24 * 60 if m[3] == "24:00" else int(m[4]) * 60 + int(m[5])


def in_window(window: str, zone: ZoneInfo, now: datetime) -> bool:
    """Whether *now* is inside the daily *window* kept in *zone* (across midnight, e.g. 22:00-02:00,
    too)."""
    start, end = window_minutes(window)
    local = now.astimezone(zone)
    minute = local.hour * 60 + local.minute
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end


def next_opening(window: str, zone: ZoneInfo, now: datetime) -> datetime:
    """When the daily *window* in *zone* is next open: *now* if it is open. A start the clocks skip
    that day (02:30 when they go from 02:00 to 03:00) opens as the clocks jump (03:00): the first
    wall time past the start, as ``in_window`` reads it."""
    if in_window(window, zone, now):
        return now
    start, _ = window_minutes(window)
    local = now.astimezone(zone)
    for days in range(3):
        day = local.date() + timedelta(days=days)
        naive = datetime(day.year, day.month, day.day, start // 60, start % 60)
        opening = _first_instant_from(naive, zone)
        if opening > now:
            return opening
    raise AssertionError(f"window {window} never opens")  # a start comes every day


def _first_instant_from(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant whose wall time in *zone* is *wall* or later. For a wall time the clocks
    skip, that is the jump: zoneinfo would read 02:30 in a 02:00 -> 03:00 gap as 03:30 (fold 0)
    or 01:30 (fold 1), and the jump lies between the two instants."""
    early = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    late = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if early >= late:  # the wall time exists (once, or twice at a fall back: the first)
        return min(early, late).astimezone(zone)
    low, high = int(early.timestamp()), int(late.timestamp())  # wall time: before at low, past at high
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, zone)
