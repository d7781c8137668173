"""Request and response models of the HTTP API (they are the OpenAPI schema users read)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cluster.jobs.options import JobOptions
from cluster.jobs.states import TERMINAL, JobState
from ulak.dispatch.bindstate import DOWN


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. no_phone_column, invalid_state")
    message: str = Field(description="what is wrong and what to do")
    field: str | None = Field(default=None, description="the option, header or form field at fault")


class JobUri(JobOptions):
    """A job whose file the cluster reads itself (instead of a multipart upload)."""

    uri: str = Field(
        description="a local path under api.uri_root, or a URI pyarrow's filesystems read (s3://, gs://, …)"
    )


class Links(BaseModel):
    self: str
    events: str
    report: str
    summary: str
    rejected: str
    pause: str
    resume: str
    cancel: str


class JobCreated(BaseModel):
    id: str
    state: str
    links: Links
    webhook_secret: str | None = Field(
        default=None, description="verifies the job's webhook calls (X-Ulak-Signature); shown only here"
    )


class Counts(BaseModel):
    """Messages (rows); they add up: rows = accepted + rejected + held_out; accepted = pending +
    cancelled + opted_out + no_consent + frequency_capped + expired + submitted; submitted =
    in_flight + acked + failed + unknown."""

    rows: int
    accepted: int
    rejected: int = Field(description="refused at ingest (see /rejected)")
    held_out: int = Field(default=0, description="kept unsent by the job's holdout")
    pending: int
    cancelled: int
    opted_out: int = Field(
        default=0,
        description="stopped unsent: the recipient opted out while the job ran (in the report: when)",
    )
    no_consent: int = Field(
        default=0, description="stopped unsent: consent withdrawn (RET) while the job ran"
    )
    frequency_capped: int = Field(
        default=0,
        description="ended unsent: past the recipient's frequency cap, in a job whose frequency_cap is "
        "refuse (or that the cap would hold past its validity)",
    )
    expired: int = Field(
        default=0,
        description="ended unsent: held for the recipient's local send window (or cap) past the job's "
        "validity_minutes (not receipts.expired: those were sent and expired in the network)",
    )
    submitted: int
    in_flight: int
    acked: int
    failed: int
    unknown: int = Field(description="fate unknown: the connection was lost before the SMSC answered")


class PartCounts(BaseModel):
    total: int
    sent: int
    acked: int
    failed: int
    unknown: int
    stopped: int = Field(
        default=0,
        description="parts of the rows stopped unsent (opted_out, no_consent, frequency_capped, expired)",
    )


class Receipts(BaseModel):
    """Delivery receipts of acked messages: acked = awaiting + delivered + undelivered + expired +
    rejected + deleted + receipt_unknown."""

    awaiting: int
    delivered: int
    undelivered: int
    expired: int
    rejected: int
    deleted: int
    receipt_unknown: int
    received: int = Field(description="receipt PDUs received (a long message has one per part)")
    duplicates: int


class Clicks(BaseModel):
    """Clicks on the job's tracked links (``{link}``): by people, and bot fetches apart."""

    total: int = Field(description="clicks by people, every one")
    unique: int = Field(description="rows whose link a person clicked")
    bots: int = Field(description="previews, scanners and HEAD requests: never counted as clicks")
    click_rate: float | None = Field(description="unique clicks / delivered")


class Conversions(BaseModel):
    """Conversions reported through ``POST /v1/conversions`` for this job's recipients."""

    conversions: int = Field(description="attributed to the job (by_click + by_delivery)")
    by_click: int = Field(description="within the click window after the recipient's click")
    by_delivery: int = Field(description="without such a click, within the delivery window")
    unattributed: int = Field(description="of its recipients, but outside both windows")
    converters: int = Field(description="rows with at least one attributed conversion")
    value: str = Field(description="the attributed conversions' value, in measurement.currency")
    conversion_rate: float | None = Field(description="conversions / unique clicks")
    holdout_conversions: int = Field(default=0, description="reported for held-out recipients")
    holdout_converters: int = Field(
        default=0, description="held-out recipients who converted in the campaign's period (the lift's)"
    )
    period_converters: int = Field(
        default=0, description="sent recipients who converted in that period, attributed or not"
    )


class Rates(BaseModel):
    messages_per_second: float = Field(description="over the last 10 s")
    parts_per_second: float
    operators: dict[str, float] = Field(
        default={},
        description="this job's parts a second per operator over the last 10 s (operators sharing "
        "one SMSC account's ledger share a figure, named a+b)",
    )


class JobView(BaseModel):
    id: str
    state: str = Field(description=f"one of {', '.join(JobState)}")
    actions: list[str] = Field(
        description="what may be asked of the job in its state: pause, resume and/or cancel "
        "(its POST /v1/jobs/{id}/<action>)"
    )
    ended: bool = Field(description=f"whether the state is final ({', '.join(sorted(TERMINAL))})")
    options: dict[str, Any]
    source: str | None
    error: ErrorBody | None
    waiting: str | None = Field(
        default=None,
        description="while a sending job makes no progress: the operators that cannot send and why "
        "(their binds' states); cleared when it moves again",
    )
    counts: Counts
    parts: PartCounts
    receipts: Receipts
    delivery_rate: float | None = Field(description="delivered / acked")
    clicks: Clicks
    conversions: Conversions
    rates: Rates
    eta_seconds: float | None
    operators: dict[str, dict[str, int]] = Field(description="planned messages and parts per operator")
    variants: dict[str, dict[str, dict[str, int]]] = Field(
        default={},
        description="an A/B test's planned messages and parts per variant and operator "
        "({variant: {operator: {messages, parts}}}; test then winner: the test slice's, and 'rest')",
    )
    rejected_reasons: dict[str, int]
    encodings: dict[str, int] = Field(default={}, description="accepted messages per encoding")
    capped_at_start: int | None = Field(
        default=None,
        description="a dry run's accepted rows whose recipient's frequency cap was full when it was "
        "prepared (they would wait or be refused as its frequency_cap says; null: not a dry run, or "
        "the job is not capped)",
    )
    send_plan: dict[str, Any] | None = Field(
        default=None,
        description="send_time optimized: when its recipients go, planned as it was prepared: start, "
        "horizon_hours, control_share, with_history (recipients the model knew), and hours: [{hour "
        "(UTC), optimized, control}]",
    )
    samples: list[dict[str, Any]] = Field(
        default=[],
        description="the first prepared messages as they will go out: row, msisdn, operator, text, "
        "parts, encoding (and link_code, variant, phase)",
    )
    times: dict[str, str] = Field(description="when the job last entered each state (ISO 8601, UTC)")
    history: list[dict[str, str]] = Field(
        default=[], description="every entry into a state, in order: {state, at}"
    )
    sending_seconds: float | None = Field(
        default=None, description="how long the job has been in 'sending' in all, pauses left out"
    )


class CampaignFigures(BaseModel):
    sent: int | None
    delivered: int | None
    delivery_rate: float | None = Field(description="delivered / sent")
    clicks: int | None = Field(description="unique clicks (people, not bots)")
    click_rate: float | None = Field(description="unique clicks / delivered")
    conversions: int | None
    conversion_rate: float | None = Field(description="conversions / unique clicks")
    value: str | None = Field(description="conversions' value, in the currency")
    cost: str | None = Field(description="parts the SMSCs accepted × each operator's price_per_part")
    roi: float | None = Field(description="(value − cost) / cost")


class Campaign(CampaignFigures):
    id: str
    name: str | None
    state: str
    ended: bool
    created: str | None
    accepted: int
    currency: str
    operators: dict[str, CampaignFigures]
    variants: dict[str, CampaignFigures]
    nps: float | None = Field(description="a NPS survey's score, −100..100")
    responses: int | None = Field(description="a survey's answers")
    final: bool = Field(
        description="the summary's figures (the job has ended); false: the running job's counters only, "
        "without cost, ROI, operators and variants (they need every row)"
    )


class CampaignList(BaseModel):
    campaigns: list[Campaign] = Field(description="newest first; previews (dry runs) are not campaigns")


class JobList(BaseModel):
    jobs: list[JobView]
    next: str | None = Field(description="pass as ?before= for the next page; null on the last")


# Bind states in which a bind cannot send (and its operator's rows wait): /metrics, `ulak status`.
BIND_DOWN = tuple(sorted(DOWN))


class BindView(BaseModel):
    bind: str
    state: str = Field(
        description="connecting, bound, throttled, reconnecting, closed; refused (the SMSC refused the "
        "credentials: last_error says what to fix), failed (an unexpected error, logged with its "
        "traceback; the bind binds again by itself), missing (its process is gone), unplaced (no node in "
        "the cluster offers its node_resource: it waits for one, and is fed nothing meanwhile), "
        "unreachable (it did not answer within 0.75 s: its node may be lost or cut off; once Ray "
        "declares it dead it is made again on another node)"
    )
    window: int
    tps: float | None = Field(default=None, description="the bind's own cap in parts per second, if any")
    learned_tps: float | None = Field(
        default=None,
        description="the rate the bind sends at, learned from the SMSC's 'slow down' answers (0x58, "
        "0x14): never above its cap (or the operator's); below it when the SMSC allows less than was "
        "declared. null while the bind has not reported",
    )
    slowed: int = Field(default=0, description="how often the SMSC made the bind lower its learned rate")
    in_flight: int = 0
    queued: int = 0
    submitted: int = 0
    throttled: int = 0
    connects: int = 0
    disconnects: int = 0
    receipts: int = 0
    binds_refused: int = 0
    failures: int = 0
    limiter_errors: int = 0
    attempts: int = Field(default=0, description="connection attempts since it was last bound (0: bound)")
    down_for: float = Field(default=0.0, description="seconds since it was last bound (0: bound)")
    last_error: str = ""
    node: str | None = Field(default=None, description="the Ray node the bind's connection leaves from")
    node_ip: str = Field(default="", description="that node's address in the Ray cluster")


class OperatorView(BaseModel):
    name: str
    tps: float = Field(description="the account's cap in parts per second, across its binds")
    price_per_part: str = Field(default="0", description="what one part costs (operators.yaml), a decimal")
    state: str = Field(
        description="up (every bind sending), degraded (some are not), down (none is: its rows wait)"
    )
    reason: str = Field(default="", description="the binds that cannot send, and why")
    binds: list[BindView]


class Health(BaseModel):
    status: str
    checks: dict[str, Any] = {}


class PurgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    older_than_days: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="default: jobs.retention_days"
    )
    dry_run: bool = Field(default=False, description="list what would be deleted, delete nothing")


class Purged(BaseModel):
    purged: list[str] = Field(description="ids of the jobs deleted (or, in a dry run, to be deleted)")
    dry_run: bool


class ConversionIn(BaseModel):
    """A conversion your systems saw (a purchase, a sign-up…), naming its recipient one of three
    ways: ``link_code`` (or the whole short link), ``job_id`` with ``msisdn``, or ``message_id``."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(
        min_length=1, max_length=200, description="your id of the event: sent again, it counts once"
    )
    link_code: str | None = Field(default=None, max_length=300, description="the code, or the short link")
    job_id: str | None = Field(default=None, max_length=100)
    msisdn: str | None = Field(
        default=None, max_length=40, description="the recipient's number (with job_id)"
    )
    message_id: str | None = Field(
        default=None, max_length=100, description="the SMSC's message id of one of the recipient's parts"
    )
    operator: str | None = Field(default=None, max_length=100, description="whose SMSC gave message_id")
    value: Decimal | None = Field(
        default=None, ge=0, max_digits=18, decimal_places=6, description="what it was worth"
    )
    currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="ISO 4217; must be measurement.currency"
    )
    occurred_at: datetime | None = Field(default=None, description="when (ISO 8601 with zone); default now")

    @model_validator(mode="after")
    def _one_recipient(self) -> ConversionIn:
        ways = [self.link_code is not None, self.msisdn is not None, self.message_id is not None]
        if sum(ways) != 1:
            raise ValueError("name the recipient one way: link_code, or job_id with msisdn, or message_id")
        if self.msisdn is not None and self.job_id is None:
            raise ValueError("msisdn needs job_id: a number is a recipient of a job")
        if self.occurred_at is not None and self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at needs a time zone, e.g. 2026-12-03T14:00:00+03:00")
        return self


class ConversionOut(BaseModel):
    event_id: str
    job_id: str
    row: int = Field(description="the recipient's row in the job's file")
    attributed: bool = Field(description="counted for the job: within a window after a click or delivery")
    by: Literal["click", "delivery"] | None
    touched_at: str | None = Field(description="the click or delivery it is attributed to")
    occurred_at: str
    value: str
    currency: str
    held_out: bool = Field(default=False, description="its recipient was kept unsent (the holdout)")
    duplicate: bool = Field(description="this event id was counted before; this is the answer it got")


class SendTimeModel(BaseModel):
    events: int = Field(description="engagements folded into the model so far (clicks, replies, conversions)")
    refreshed_at: float | None = Field(description="when it was last refreshed (unix s); null: never")
    prefixes: int = Field(description="number prefixes with engagement (send_times.prefix_digits long)")
    audience_hours: list[int] = Field(description="engagements at each local hour 0-23, all numbers together")


class SendTimeRefreshed(BaseModel):
    folded: dict[str, int] | None = Field(
        description="clicks, conversions and replies folded now; null: another process is folding"
    )


class KeyView(BaseModel):
    id: str
    name: str
    scope: str = Field(description="write: may change things; read: may only read")
