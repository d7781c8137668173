"""The layouts of the values behind the keys of ``ulak.keys``: one reader (and writer, where Python
writes it) per value that one module writes and another reads. ``ulak.keys`` names the keys; this
module says what their values hold. No other module splits a stored string.

Some are written by the ledger's Lua script (``ulak/dispatch/ledger.lua``); the readers here follow
its layout, and ``tests/unit/test_records.py`` holds the two to each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

SEP = "|"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class PartState(StrEnum):
    """A part's submit state in ``keys.job_bucket`` (``<r>:<part>``), and a row's (``<r>``: its first
    part's). One letter each: a million parts are a million fields."""

    SENT = "s"  # handed to the SMSC, no answer yet
    ACKED = "a"  # submit_sm_resp ESME_ROK
    FAILED = "f"  # submit_sm_resp with an error
    UNKNOWN = "u"  # its bind died with it on the wire: it may or may not have gone
    STOPPED = "x"  # never sent: its recipient refused while it waited (ulak.refusals)

    @property
    def status(self) -> str:
        """The row status the report shows for it."""
        return _STATUS[self]

    @classmethod
    def read(cls, value: bytes | str) -> PartState:
        return cls(_text(value))


_STATUS = {
    PartState.SENT: "in_flight",
    PartState.ACKED: "acked",
    PartState.FAILED: "failed",
    PartState.UNKNOWN: "unknown",
    PartState.STOPPED: "stopped",  # the report shows the reason instead (``Stopped``)
}


@dataclass(frozen=True)
class Ack:
    """A part's ``<r>:<part>:m`` in ``keys.job_bucket``: ``id|unix_ms`` (the SMSC's message id, and
    when its submit_sm_resp came). Written by the ledger script."""

    message_id: str
    at_ms: int

    @classmethod
    def read(cls, value: bytes | str) -> Ack:
        return cls(*cls.unpack(value))

    @staticmethod
    def unpack(value: bytes | str) -> tuple[str, int]:
        """(message id, at ms) without building an ``Ack`` (a report reads millions)."""
        message_id, _, ms = _text(value).rpartition(SEP)  # an id may hold "|": the time never does
        return message_id, int(ms)

    def write(self) -> str:
        return f"{self.message_id}{SEP}{self.at_ms}"


DELIVERED = "DELIVRD"


@dataclass(frozen=True)
class Receipt:
    """A part's ``<r>:<part>:r`` in ``keys.job_bucket``: ``status|error|unix_ms`` (the receipt's
    stat and err fields, and when it came). Written by the ledger script."""

    status: str
    error: str
    at_ms: int

    @classmethod
    def read(cls, value: bytes | str) -> Receipt:
        return cls(*cls.unpack(value))

    @staticmethod
    def unpack(value: bytes | str) -> tuple[str, str, int]:
        """(status, error, at ms) without building a ``Receipt`` (a report reads millions)."""
        status, error, ms = _text(value).split(SEP)
        return status, error, int(ms)

    def write(self) -> str:
        return SEP.join((self.status, self.error, str(self.at_ms)))

    @property
    def delivered(self) -> bool:
        return self.status == DELIVERED

    @property
    def at(self) -> float:
        """Unix seconds."""
        return self.at_ms / 1000


@dataclass(frozen=True)
class MessageOwner:
    """A value of ``keys.message_ids`` (``job|row|ms...``): whose row an SMSC message id is, the job
    by its number in the ledger (``keys.message_id_jobs``). Written by the ledger script; read to
    attribute a conversion named by message id."""

    job_number: int
    row: int

    @classmethod
    def read(cls, value: bytes | str) -> MessageOwner:
        job, row = _text(value).split(SEP)[:2]
        return cls(int(job), int(row))


@dataclass(frozen=True)
class LinkOwner:
    """``keys.link``'s value: ``job|row|ledger``, whose tracked link a code is (ledger empty: not
    known). Written when codes are reserved (``ulak.links.reserve``)."""

    job_id: str
    row: int
    ledger: str

    @classmethod
    def read(cls, value: bytes | str) -> LinkOwner:
        job_id, row, ledger = _text(value).split(SEP)
        return cls(job_id, int(row), ledger)

    def write(self) -> str:
        return SEP.join((self.job_id, str(self.row), self.ledger))


@dataclass(frozen=True)
class Sample:
    """One of ``keys.job_samples``: ``t|submitted|parts_sent[|ledger=parts,...]`` (a job's progress
    at unix time t, and its parts sent per ledger: per operator unless operators share a ledger;
    samples written before the last field existed have none)."""

    at: float
    submitted: int
    parts_sent: int
    ledgers: tuple[tuple[str, int], ...] = ()

    @classmethod
    def read(cls, value: bytes | str) -> Sample:
        at, submitted, parts_sent, *rest = _text(value).split(SEP)
        items = (item.partition("=") for item in (rest[0] if rest else "").split(",") if item)
        ledgers = tuple((name, int(n)) for name, _, n in items)
        return cls(float(at), int(float(submitted)), int(float(parts_sent)), ledgers)

    def write(self) -> str:
        per = ",".join(f"{name}={n}" for name, n in self.ledgers)
        return f"{self.at:.3f}{SEP}{self.submitted}{SEP}{self.parts_sent}{SEP}{per}"


@dataclass(frozen=True)
class SurveyAsked:
    """``keys.survey_index``'s value per number: ``job|since|window seconds|kind``, the most recent
    survey that asked it (written by the job's runner, read by the replies processor)."""

    job_id: str
    since: float
    window: float
    kind: str

    @classmethod
    def read(cls, value: bytes | str) -> SurveyAsked:
        job_id, since, window, kind = _text(value).split(SEP)
        return cls(job_id, float(since), float(window), kind)

    def write(self, *, since: str) -> str:
        """*since* as the job record keeps it (the same text, so a resumed runner writes the same)."""
        return SEP.join((self.job_id, since, f"{self.window:.0f}", self.kind))

    def answers_at(self, when: float) -> bool:
        """Whether a reply at unix time *when* is within the survey's window."""
        return 0 <= when - self.since <= self.window


def bind_field(operator: str, bind: str) -> str:
    """A hash field naming one bind, ``operator/bind`` (``keys.BIND_REPLACEMENTS``)."""
    return f"{operator}/{bind}"


def read_bind_field(field: bytes | str) -> tuple[str, str]:
    operator, _, bind = _text(field).partition("/")
    return operator, bind


def read_minute_field(field: bytes | str) -> tuple[int, bool]:
    """A per-minute hash field of clicks or conversions, ``<unix minute>[:<kind>]`` (written by the
    click and conversion scripts): the minute, and whether it counts the second kind (unique
    clicks, value) rather than the first (clicks, conversions)."""
    minute, _, kind = _text(field).partition(":")
    return int(minute), bool(kind)


@dataclass(frozen=True)
class IdempotentRequest:
    """``keys.idempotency``'s value: ``job fingerprint``, the job a keyed request created and a
    digest of what it asked (options and file). A value written before fingerprints has none."""

    job_id: str
    fingerprint: str

    @classmethod
    def read(cls, value: bytes | str) -> IdempotentRequest:
        job_id, _, fingerprint = _text(value).partition(" ")
        return cls(job_id, fingerprint)

    def write(self) -> str:
        return f"{self.job_id} {self.fingerprint}"


@dataclass(frozen=True, slots=True)
class Stopped:
    """A stopped row's ``<r>:x`` in ``keys.job_bucket``: ``reason|unix_ms`` (written by ledger.lua)."""

    reason: str  # opted_out, no_consent (ulak.refusals), frequency_capped (ulak.caps), expired
    at_ms: int

    @classmethod
    def read(cls, value: bytes | str) -> Stopped:
        reason, _, at = _text(value).partition("|")
        return cls(reason, int(at or 0))
