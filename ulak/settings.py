"""Typed, frozen configuration loaded once from ``configs/*.yaml`` with environment overrides.

``load_settings(config_dir)`` reads every ``*.yaml`` in the directory (each a mapping of top-level
sections: ``redis``, ``ray``, ``operators``, …), lets ``ULAK_<SECTION>__<FIELD>`` environment variables
override scalar fields (``ULAK_REDIS__URL=redis://…``), resolves bind passwords from the environment
variables the config names, and returns a frozen :class:`Settings`. Models are passed explicitly to the
code that needs them; nothing reads the environment after this.

A wrong config fails here, at start, with a message naming the file and the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from ulak.caps import Cap, Rule, rules_for
from ulak.redisclient import cluster_url, is_cluster
from ulak.replies.keywords import fold
from ulak.smpp.receipt import MessageIdFormat
from ulak.text.alphabet import NATIONAL_LANGUAGES
from ulak.text.plan import Concat

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(Exception):
    """The configuration is invalid; the message names the file and field to fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BindConfig(_Model):
    """One SMPP bind (one TCP connection) to an operator's SMSC."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    host: str
    port: int = Field(ge=1, le=65535)
    system_id: str = Field(min_length=1, max_length=15)
    password_env: str = Field(description="environment variable that holds the bind password")
    password: SecretStr = SecretStr("")
    system_type: str = Field(default="", max_length=12)
    bind_type: Literal["transceiver", "transmitter", "receiver"] = "transceiver"
    window: int = Field(default=50, ge=1, le=10_000, description="requests awaiting a response")
    tps: float | None = Field(
        default=None,
        gt=0,
        description="this bind's own cap in PDUs per sliding second, as operators state it (4 binds "
        "x 100 TPS); the operator's tps caps all its binds together as well, and both hold",
    )
    node_resource: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="a custom Ray resource only the nodes that may hold this bind advertise (those "
        "whose IP address the operator whitelisted: `ray start --resources='{\"egress\": 1}'`); "
        "unset = any node",
    )
    enquire_link_interval: float = Field(default=30.0, gt=0)
    reconnect_delay_max: float = Field(
        default=10.0,
        ge=0.5,
        le=600.0,
        description="the longest wait between two connection attempts while the SMSC is unreachable "
        "(the wait doubles from 0.2 s to this, each between half and all of it): at most about "
        "2 × duration / this attempts in an outage",
    )
    response_timeout: float = Field(default=30.0, gt=0)
    source_addr: str = Field(default="ULAK", max_length=20)
    source_addr_ton: int = Field(default=5, ge=0, le=6)  # 5 = alphanumeric
    source_addr_npi: int = Field(default=0, ge=0, le=18)
    dest_addr_ton: int = Field(default=1, ge=0, le=6)  # 1 = international
    dest_addr_npi: int = Field(default=1, ge=0, le=18)  # 1 = E.164
    resp_id_format: MessageIdFormat = MessageIdFormat.AUTO
    receipt_id_format: MessageIdFormat = MessageIdFormat.AUTO

    @property
    def smsc(self) -> str:
        """The SMSC this bind logs in to, ``host:port/system_id``: message ids are unique only per
        SMSC, so the ledger keeps them under it (``keys.message_ids``)."""
        return f"{self.host}:{self.port}/{self.system_id}"


@cache
def _language_codes(names: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(NATIONAL_LANGUAGES[name] for name in names)


class OperatorConfig(_Model):
    """A mobile operator: where its numbers go, how fast, and through which binds."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    prefixes: tuple[str, ...] = Field(min_length=1, description="E.164 prefixes without '+'")
    tps: float = Field(
        gt=0, description="the account's cap in PDUs (SMS parts) per sliding second, across all its binds"
    )
    binds: tuple[BindConfig, ...] = Field(min_length=1)
    concatenation: Concat = Concat.UDH8
    packed_gsm: bool = False
    national_languages: tuple[str, ...] = Field(
        default=("turkish",),
        description="GSM national shift tables the SMSC takes (turkish, spanish, portuguese); "
        "[] for an SMSC that takes only the default alphabet and UCS-2",
    )
    max_parts: int = Field(default=10, ge=1, le=255)
    price_per_part: Decimal = Field(
        default=Decimal(0),
        ge=0,
        max_digits=18,
        decimal_places=6,
        description="what one SMS part the SMSC accepts costs, in measurement.currency (a summary's "
        "cost and ROI)",
    )
    delivery_semantics: Literal["at-most-once", "at-least-once"] = "at-most-once"
    mnp_file: Path | None = None
    weight: float = Field(default=1.0, gt=0)
    placement: Literal["spread", "pack"] = Field(
        default="spread",
        description="where its binds run among the nodes offering their node_resource: spread = on "
        "different nodes (losing one leaves the operator binds), pack = wherever Ray puts them",
    )
    ledger: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9_.-]*$",
        description="whose ledger (and Redis hash slot) its rows and receipts share; empty = its own, "
        "joined with every operator that binds to the same SMSC account (receipts for one may come "
        "back on the other's binds): see Settings",
    )

    @field_validator("prefixes")
    @classmethod
    def _digits(cls, prefixes: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in prefixes:
            if not re.fullmatch(r"[0-9]{1,15}", prefix):
                raise ValueError(f"prefix {prefix!r} must be digits only (E.164 without '+')")
        return prefixes

    @field_validator("national_languages")
    @classmethod
    def _known_languages(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if name not in NATIONAL_LANGUAGES:
                raise ValueError(
                    f"national language {name!r} has no GSM shift tables here; use one of "
                    + ", ".join(NATIONAL_LANGUAGES)
                    + ", or [] for none"
                )
        return tuple(dict.fromkeys(names))

    @property
    def ledger_name(self) -> str:
        """The ledger its rows and receipts are kept in (``ledger``, filled in by Settings; its own
        name for an operator configured alone)."""
        return self.ledger or self.name

    @property
    def languages(self) -> tuple[int, ...]:
        """The national language codes (TS 23.038) the encoder may use for this operator (read for
        every row the runner plans: looked up, not built, each time)."""
        return _language_codes(self.national_languages)

    @model_validator(mode="after")
    def _unique_binds(self) -> OperatorConfig:
        names = [b.name for b in self.binds]
        if len(names) != len(set(names)):
            raise ValueError(f"bind names must be unique within operator {self.name}: {names}")
        return self


class RedisConfig(_Model):
    url: str | None = Field(
        default=None,
        description="redis://… of an existing server, or redis+cluster://host:port[,host:port…] of a "
        "Redis Cluster; unset = start an embedded one",
    )
    cluster_nodes: tuple[str, ...] = Field(
        default=(),
        description="host:port of some nodes of a Redis Cluster (the client finds the rest); the same "
        "as url: redis+cluster://… (which can also carry a password)",
    )
    data_dir: Path | None = Field(default=None, description="embedded server's data dir (default: state dir)")
    appendonly: bool = True
    appendfsync: Literal["everysec", "always"] = Field(
        default="everysec",
        description="embedded server: everysec (a crash may lose ~2 s of writes; the binds write "
        "theirs again, the API's and runners' are lost) or always (none lost, slower): "
        "docs/ARCHITECTURE.md",
    )

    @model_validator(mode="before")
    @classmethod
    def _cluster_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("cluster_nodes"):
            nodes = data["cluster_nodes"]
            nodes = [n.strip() for n in nodes.split(",")] if isinstance(nodes, str) else list(nodes)
            url = data.get("url")
            if url and not is_cluster(url):
                raise ValueError(
                    "redis.url names one server and redis.cluster_nodes a cluster: set one of them"
                )
            data = {**data, "cluster_nodes": tuple(nodes), "url": url or cluster_url(nodes)}
        return data


class RayConfig(_Model):
    address: str | None = Field(
        default=None, description="existing cluster ('auto', 'ray://…'); unset = local"
    )
    num_cpus: int | None = Field(default=None, ge=1)
    namespace: str = "ulak"


class IngestConfig(_Model):
    """How uploads are read and checked."""

    default_region: str = Field(
        default="TR", min_length=2, max_length=2, description="region for numbers written without +/00"
    )
    max_file_bytes: int = Field(default=2 << 30, ge=1, description="larger uploads are refused (413)")
    max_rows: int = Field(default=10_000_000, ge=1, description="more rows are refused (413)")
    max_unzipped_bytes: int = Field(
        default=4 << 30,
        ge=1,
        description="a spreadsheet (XLSX, ODS) whose parts add up to more, once inflated, is refused "
        "(413) before it is parsed, by the sizes its ZIP directory declares",
    )
    max_zip_ratio: float = Field(
        default=200.0,
        gt=1,
        description="a spreadsheet part inflating more than this many times its stored size (and to "
        "over 64 MiB) is refused (413): a ZIP bomb, not a sheet",
    )
    csv_encoding: str = Field(default="auto", description="'auto' = UTF-8 if the file decodes, else fallback")
    fallback_encoding: str = Field(default="cp1254", description="Turkish Excel exports are Windows-1254")
    sample_messages: int = Field(default=5, ge=0, le=100, description="rendered examples in the preview")
    read_ahead_mib: int = Field(
        default=64,
        ge=4,  # above Ray Data's 2 MiB block builder, which holds back rows the driver cannot take yet
        description="how far (MiB of Arrow data) reading an upload may run ahead of preparing it",
    )


class JobsConfig(_Model):
    """How jobs run: where their files live and how long they wait for the network."""

    data_dir: str | None = Field(
        default=None,
        description="uploads and prepared rows, one folder per job (default: state dir/jobs): a local "
        "directory, or on a multi-node cluster a shared mount or a URI every node reaches "
        "(s3://bucket/prefix, gs://…, hdfs://…; see jobs.storage)",
    )
    storage: dict[str, Any] = Field(
        default_factory=dict,
        description="options of the filesystem of an s3:// or gs:// data_dir (pyarrow's S3FileSystem or "
        "GcsFileSystem: region, endpoint_override, scheme, …); credentials come from the environment",
    )
    receipt_wait: float = Field(
        default=60.0, ge=0, description="seconds a job waits for receipts after its last ack before 'done'"
    )
    drain_timeout: float = Field(
        default=600.0, gt=0, description="seconds the binds may take to answer a job's last parts"
    )
    bind_supervision: float = Field(
        default=30.0,
        gt=0,
        description="seconds between the control plane's looks for bind processes that died while no "
        "job was sending (a job's runner replaces one at once); one dead at two looks running is "
        "made again, so that it receives replies and receipts",
    )
    batch_rows: int = Field(default=2000, ge=1, description="rows handed to a bind per batch")
    max_backlog: int = Field(
        default=4000, ge=1, description="parts queued per bind before a job holds back (bounds pause latency)"
    )
    retention_days: float | None = Field(
        default=90.0,
        gt=0,
        description="a job that ended longer ago than this is deleted with its reports (`ulak jobs "
        "purge`, and hourly by the API); null = keep jobs forever",
    )
    preview_retention_hours: float | None = Field(
        default=24.0,
        gt=0,
        description="a preview (dry run) that ended longer ago than this is deleted with its files, "
        "hourly by the API and by `ulak jobs purge` (previews are kept apart from campaigns in the "
        "web manager and GET /v1/jobs?kind=); null = keep them as long as jobs",
    )
    recipient_zones: dict[str, str] = Field(
        default_factory=dict,
        description="a country's zone for a send window in the recipient's time, where the country has "
        "several and the number does not say which, by region code, e.g. {US: America/Chicago} "
        "(defaults: ulak.zones.MAIN_ZONES)",
    )
    unknown_zone: str = Field(
        default="Europe/Istanbul", description="the zone of a recipient whose number's zone is not known"
    )
    clock: Literal["system", "offset"] = Field(
        default="system",
        description="what time runners go by: the system's, or (tests and rehearsals of a schedule "
        "only, never for real recipients) the system's plus the seconds in Redis's "
        "ulak:{clock}:offset (ulak.clock)",
    )
    keep_uploads: bool = Field(
        default=False,
        description="keep a job's uploaded file after the job ends (it holds personal data: by default "
        "it is deleted once the job is done, failed or cancelled; the reports stay)",
    )

    @field_validator("data_dir", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("unknown_zone")
    @classmethod
    def _unknown_zone(cls, value: str) -> str:
        _zone_name(value)
        return value

    @field_validator("recipient_zones")
    @classmethod
    def _recipient_zones(cls, value: dict[str, str]) -> dict[str, str]:
        for region, zone in value.items():
            if not re.fullmatch(r"[A-Z]{2}", region):
                raise ValueError(f"recipient_zones: {region!r} is no region code (two capitals: US, RU)")
            _zone_name(zone)
        return value

    @model_validator(mode="after")
    def _storage(self) -> JobsConfig:
        if self.data_dir is not None:
            from ulak.objectstore import filesystem  # noqa: PLC0415 - pyarrow.fs, only when the config names one

            try:
                filesystem(self.data_dir, self.storage)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"data_dir {self.data_dir!r}: {exc}") from None
        elif self.storage:
            raise ValueError("jobs.storage is set but jobs.data_dir is not: name the s3:// or gs:// URI")
        return self


class ApiConfig(_Model):
    """The HTTP control plane."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    uri_root: Path | None = Field(
        default=None,
        description="local files a job may name by path must be under this directory; "
        "unset = local paths are refused (URIs with a scheme pyarrow reads are allowed)",
    )
    auth: bool = Field(default=True, description="require an API key (create one with `ulak keys create`)")
    view_max_age: float = Field(
        default=0.1,
        ge=0,
        le=5,
        description="seconds a job's view, once read, answers other GET /v1/jobs/{id} and event-stream "
        "asks (concurrent asks share one read; 0 = every ask reads Redis): keeps answers fast while "
        "many poll a job that sends at full speed",
    )
    object_stores: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="object stores jobs may name by URI, by scheme (s3, gs), each with the options of "
        "its pyarrow filesystem (region, endpoint_override, …); a scheme not listed is refused",
    )
    public: tuple[Literal["readyz", "metrics", "docs"], ...] = Field(
        default=("readyz", "metrics", "docs"),
        description="endpoints served without an API key (/healthz always is); 'docs' covers /docs, "
        "/redoc and /openapi.json",
    )

    @field_validator("object_stores")
    @classmethod
    def _stores(cls, stores: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if not stores:  # the default: pyarrow is not loaded in every process that reads settings
            return stores
        from ulak.objectstore import object_store  # noqa: PLC0415 - pyarrow.fs, only when stores are configured

        for scheme, options in stores.items():
            try:
                object_store(scheme, options)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{scheme}: {exc}") from None
        return stores


class LinksConfig(_Model):
    """Tracked links (``{link}`` in a template) and the redirect service that counts their clicks."""

    base_url: str | None = Field(
        default=None,
        description="the short links' prefix, e.g. https://k.example (a domain pointed at the redirect "
        "service); unset = http://<host>:<port> of the redirect service itself",
    )
    code_length: int = Field(default=8, ge=8, le=32, description="random base62 characters a code has")
    expire_days: float = Field(
        default=90.0, gt=0, description="days a link resolves after its job is prepared"
    )
    scanner_seconds: float = Field(
        default=5.0,
        ge=0,
        description="a click this soon after its message was delivered (or, before the receipt, "
        "acked) is a carrier's scanner, counted as a bot; 0 = no such rule",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535, description="where the redirect service listens")
    workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="processes of the redirect service sharing its port (each redirect is CPU in "
        "Python); 0 = one per CPU of the machine",
    )

    @field_validator("base_url")
    @classmethod
    def _base(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", url):
            raise ValueError(f"{url!r} is not an http(s) URL without query, e.g. https://k.example")
        return url.rstrip("/")

    @property
    def prefix(self) -> str:
        """What a code follows in a sent text: ``<base_url>/``."""
        return f"{self.base_url or f'http://{self.host}:{self.port}'}/"


class MeasurementConfig(_Model):
    """How conversions are counted and valued (``cluster.engagement.conversions``, the summary)."""

    currency: str = Field(
        default="TRY",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code of conversion values and part prices; a conversion in another "
        "currency is refused",
    )
    click_window_days: float = Field(
        default=7.0,
        ge=0,
        le=365,
        description="a conversion this long after its recipient's click is the job's (a job may say "
        "otherwise)",
    )
    delivery_window_days: float = Field(
        default=1.0,
        ge=0,
        le=365,
        description="without such a click, a conversion this long after its message was delivered "
        "is the job's",
    )
    event_days: float = Field(
        default=90.0,
        gt=0,
        description="days a conversion's event id is remembered: one sent again within them counts once",
    )


class WebhooksConfig(_Model):
    """Where receipt webhooks may be sent."""

    allow_private_targets: bool = Field(
        default=False,
        description="allow webhook URLs whose host is loopback, private, link-local or otherwise not "
        "public (checked when the job is submitted and again, on the resolved address, at every call)",
    )
    timeout: float = Field(default=10.0, gt=0, le=120, description="seconds a webhook call may take")


BRAND_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class KeywordRule(_Model):
    """A brand's own keyword: who sends it gets *reply* (once a day), and joins *list* if given."""

    word: str = Field(min_length=1, max_length=40, description="the reply's first word, e.g. KATIL")
    reply: str = Field(min_length=1, max_length=459, description="sent back, from the short code")
    list: str | None = Field(
        default=None,
        pattern=BRAND_PATTERN,
        description="a list the sender joins (GET /v1/replies/lists/<list>), e.g. vip",
    )


class ReplyRule(_Model):
    """What replies to one short code or number mean: the brand whose list an opt-out joins, and
    its own keywords (the defaults' when not given)."""

    to: str = Field(min_length=1, max_length=21, description="the destination_addr replies come to")
    brand: str | None = Field(
        default=None,
        pattern=BRAND_PATTERN,
        description="opt-outs sent here join this brand's list (default: the global list)",
    )
    optout_words: tuple[str, ...] | None = None
    optin_words: tuple[str, ...] | None = None
    optout_confirmation: str | None = Field(
        default=None,
        min_length=1,
        max_length=459,
        description="sent once to who opts out here (instead of the default replies.optout_confirmation)",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=60,
        description="the brand's name as a help answer says it (default: the brand, else the short code)",
    )
    help_reply: str | None = Field(
        default=None,
        min_length=1,
        max_length=459,
        description="the answer to a help word here (instead of replies.help_reply)",
    )
    keywords: tuple[KeywordRule, ...] = Field(
        default=(), description="this short code's own keywords, each with its answer and list"
    )


class RepliesConfig(_Model):
    """Replies (MO): how they are put together and which words opt a number out or back in."""

    optout_words: tuple[str, ...] = Field(
        default=("RET", "IPTAL", "STOP", "DUR", "UNSUBSCRIBE"),
        description="a reply whose first word is one of these opts its sender out (case, Turkish "
        "i/ı, accents, punctuation and emoji do not matter)",
    )
    optin_words: tuple[str, ...] = Field(
        default=("BASLA", "START", "ONAY"),
        description="a reply whose first word is one of these takes its sender off the list again",
    )
    rules: tuple[ReplyRule, ...] = Field(
        default=(), description="per short code: its brand and keywords; other replies use the defaults"
    )
    optout_confirmation: str | None = Field(
        default=None,
        min_length=1,
        max_length=459,
        description="a message sent once to a number that opts out by reply (from the short code it "
        "wrote to, e.g. 'Listemizden çıkarıldınız. Tekrar katılmak için BASLA yazın.'); none by default",
    )
    help_words: tuple[str, ...] = Field(
        default=("YARDIM", "BILGI", "HELP", "INFO"),
        description="a reply whose first word is one of these is answered with help_reply (once a day "
        "per number and word)",
    )
    help_reply: str | None = Field(
        default="{name}: Bu numaradan bilgilendirme ve kampanya mesajları alıyorsunuz. Almak "
        "istemiyorsanız RET yazıp {to} numarasına gönderin.",
        max_length=459,
        description="the answer to a help word: {name} is the brand's name (the rule's name, brand, or "
        "the short code), {to} the short code; null sends none",
    )
    concat_timeout: float = Field(
        default=300.0,
        gt=0,
        description="seconds to wait for the missing parts of a concatenated reply; then what came "
        "is kept, marked incomplete",
    )
    duplicate_seconds: float = Field(
        default=120.0,
        ge=0,
        description="the same part from the same number within this long is the SMSC sending again "
        "a part whose answer it missed, counted once",
    )
    keep: int = Field(default=1_000_000, ge=1000, description="replies kept in the replies stream")
    webhook_url: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^https?://[^\s]+$",
        description="POST every reply here (type mo: number, text, what it meant), signed like the "
        "receipt webhooks with the secret in $ULAK_REPLIES_WEBHOOK_SECRET",
    )
    followup_seconds: float = Field(
        default=10.0, gt=0, description="seconds between looks for survey follow-ups to send as a job"
    )
    optout_instruction: str = Field(
        default=r"(^|[\s.,:;!?'\"(])(RET|[İIıi]PTAL|STOP|DUR)\b",
        description="a commercial job's text must match this (case-insensitive regular expression, in "
        "what Python's re and RE2 share): it tells the recipient how to opt out, e.g. 'RET yazıp "
        "4545'e gönderin'",
    )

    @field_validator("optout_instruction")
    @classmethod
    def _instruction(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"optout_instruction is no regular expression: {exc}") from None
        return value

    def rule(self, to: str) -> ReplyRule | None:
        return next((r for r in self.rules if r.to == to), None)

    @model_validator(mode="after")
    def _keywords_apart(self) -> RepliesConfig:
        """A keyword that is also an opt-out or opt-in word would never be answered (the opt-out
        wins), and one twice for a short code would answer twice: both are refused here."""
        for rule in (None, *self.rules):
            optout = rule.optout_words if rule and rule.optout_words is not None else self.optout_words
            optin = rule.optin_words if rule and rule.optin_words is not None else self.optin_words
            taken = {fold(w) for w in (*optout, *optin)}
            own = [k.word for k in rule.keywords] if rule else []
            for word in (*self.help_words, *own):
                if fold(word) in taken:
                    where = f"rule {rule.to}" if rule else "replies"
                    raise ValueError(f"{where}: keyword {word!r} is also an opt-out or opt-in word")
            if len({fold(w) for w in own}) != len(own):
                raise ValueError(f"rule {rule.to if rule else ''}: a keyword is given twice")
        return self


def _zone_name(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Istanbul") from None


def _cap(text: str) -> str:
    Cap.parse(text)  # raises what is wrong with it
    return text.strip()


class FrequencyCapsConfig(_Model):
    """How many messages one recipient may get in a window (``ulak.caps``): per brand, and from all
    commercial jobs together. Each cap is ``<messages>/<window>``: ``1/24h``, ``4/7d``, ``2/w``.
    Commercial jobs are held to them unless they say otherwise (``frequency_cap``); informational
    ones only when they ask to be."""

    commercial: tuple[str, ...] = Field(
        default=(),
        description="caps on commercial messages of every brand together, e.g. ['4/7d']; none by default",
    )
    brands: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="each brand's own caps, e.g. {acme: ['1/24h']}, on the messages of the jobs with "
        "that brand",
    )

    @field_validator("commercial")
    @classmethod
    def _caps(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_cap(text) for text in value)

    @field_validator("brands")
    @classmethod
    def _brand_caps(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for brand in value:
            if not re.match(BRAND_PATTERN, brand):
                raise ValueError(f"brand {brand!r}: lowercase letters, digits, _ and -, up to 40")
        return {brand: tuple(_cap(text) for text in caps) for brand, caps in value.items()}

    def longest(self) -> int:
        """The longest window of any cap, in seconds (0: no caps): how long histories are kept."""
        texts = [*self.commercial, *(t for caps in self.brands.values() for t in caps)]
        return max((Cap.parse(t).seconds for t in texts), default=0)

    def rules(self, *, brand: str | None, commercial: bool) -> tuple[Rule, ...]:
        """The caps a job of *brand* is held to."""
        return rules_for(
            commercial_caps=[Cap.parse(t) for t in self.commercial],
            brand_caps={b: [Cap.parse(t) for t in caps] for b, caps in self.brands.items()},
            brand=brand,
            commercial=commercial,
        )


class SendTimesConfig(_Model):
    """The send-time model (``ulak.sendtime``): how much a recipient's own little history is trusted
    against what numbers like theirs do."""

    prior_weight: float = Field(
        default=4.0,
        gt=0,
        le=1000,
        description="how many engagements the prior (the number's prefix, then everyone) counts as against "
        "a recipient's own: with 4, a recipient seen engaging 4 times goes half by their own hours",
    )
    prefix_digits: int = Field(
        default=5,
        ge=1,
        le=10,
        description="how many leading digits (country code included) make numbers 'like' each other "
        "(their area or operator), whose engagement is a recipient's prior",
    )


_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("ulak_settings_environ", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading the mapping given to ``load_settings``."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        if environ is None:
            environ = os.environ
        if self.case_sensitive:
            return dict(environ)
        return {key.lower(): value for key, value in environ.items()}


def _with_ledgers(operators: tuple[OperatorConfig, ...]) -> tuple[OperatorConfig, ...]:
    """Each operator with its ``ledger`` filled in. An SMSC sends a receipt on any bind of the account
    that submitted the message, so operators whose binds share an account (host, port, system_id)
    must share the message-id map, and with it the ledger and its Redis hash slot (``ulak.keys``);
    operators that name the same ledger share it too. A group's ledger is the first of its names in
    sort order, so every process derives the same one from the same configuration."""
    parent = {op.name: op.name for op in operators}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    def join(a: str, b: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_account: dict[tuple[str, int, str], str] = {}
    by_ledger: dict[str, str] = {}
    for op in operators:
        for bind in op.binds:
            account = (bind.host.lower(), bind.port, bind.system_id)
            join(by_account.setdefault(account, op.name), op.name)
        if op.ledger:
            join(by_ledger.setdefault(op.ledger, op.name), op.name)
    names: dict[str, set[str]] = {}
    for op in operators:
        names.setdefault(root(op.name), set()).add(op.ledger or op.name)
    return tuple(
        op
        if op.ledger == min(names[root(op.name)])
        else op.model_copy(update={"ledger": min(names[root(op.name)])})
        for op in operators
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ULAK_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    redis: RedisConfig = RedisConfig()
    ray: RayConfig = RayConfig()
    ingest: IngestConfig = IngestConfig()
    jobs: JobsConfig = JobsConfig()
    api: ApiConfig = ApiConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    links: LinksConfig = LinksConfig()
    replies: RepliesConfig = RepliesConfig()
    measurement: MeasurementConfig = MeasurementConfig()
    frequency_caps: FrequencyCapsConfig = FrequencyCapsConfig()
    send_times: SendTimesConfig = SendTimesConfig()
    operators: tuple[OperatorConfig, ...] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment overrides the YAML files (passed as init kwargs), not the other way round.
        return (_MappingEnvSource(settings_cls), init_settings)

    @model_validator(mode="after")
    def _unique_operators(self) -> Settings:
        names = [o.name for o in self.operators]
        if len(names) != len(set(names)):
            raise ValueError(f"operator names must be unique: {names}")
        object.__setattr__(self, "operators", _with_ledgers(self.operators))
        return self

    def ledgers(self) -> list[str]:
        """Every configured operator's ledger, each once, sorted (``OperatorConfig.ledger``)."""
        return sorted({op.ledger_name for op in self.operators})

    def operator(self, name: str) -> OperatorConfig:
        for op in self.operators:
            if op.name == name:
                return op
        raise KeyError(f"no operator named {name!r}; configured: {[o.name for o in self.operators]}")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, not {type(data).__name__}")
    return data


def _resolve_passwords(
    data: dict[str, Any], environ: Mapping[str, str], source: dict[str, Path], *, required: bool
) -> None:
    for i, op in enumerate(data.get("operators") or []):
        if not isinstance(op, dict):
            continue
        for j, bind in enumerate(op.get("binds") or []):
            if not isinstance(bind, dict) or "password" in bind or "password_env" not in bind:
                continue  # validation reports the missing field
            var = bind["password_env"]
            if var not in environ and not required:
                continue  # the bind's password stays empty: fine for what opens no bind
            if var not in environ:
                raise ConfigError(
                    f"{source.get('operators', 'config')}: operators[{i}].binds[{j}].password_env: "
                    f"environment variable {var} is not set (export it with the bind's password)"
                )
            bind["password"] = environ[var]


def load_settings(
    config_dir: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    passwords: bool = True,
) -> Settings:
    """Load and validate every ``*.yaml`` in *config_dir* (default: the repository's ``configs/``).
    With *passwords* false, a bind whose password variable is unset is loaded with an empty password
    (for commands that open no bind, such as the dry run ``ulak ingest``)."""
    directory = Path(config_dir) if config_dir is not None else DEFAULT_CONFIG_DIR
    env = os.environ if environ is None else environ
    if not directory.is_dir():
        raise ConfigError(f"{directory}: config directory does not exist")
    merged: dict[str, Any] = {}
    source: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        for key, value in _read_yaml(path).items():
            if key in merged:
                raise ConfigError(f"{path}: section {key!r} is already defined in {source[key]}")
            merged[key] = value
            source[key] = path
    _resolve_passwords(merged, env, source, required=passwords)
    token = _ENVIRON.set(env)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, env)) from None
    finally:
        _ENVIRON.reset(token)


def _describe(exc: ValidationError, source: dict[str, Path], environ: Mapping[str, str]) -> str:
    upper = {key.upper() for key in environ}
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        var = "ULAK_" + "__".join(str(p).upper() for p in loc)
        if var in upper:
            where = f"environment variable {var}"
        else:
            where = str(source.get(str(loc[0]), "environment")) if loc else "config"
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        lines.append(f"{where}: {path}: {err['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
