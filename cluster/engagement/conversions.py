"""Conversions: what recipients did after a campaign, as the user's own systems report it, counted
for the job that earned them.

``POST /v1/conversions`` names the recipient one of three ways: the row's tracked-link code (or the
whole short link), the job and the number, or an SMSC message id of one of the row's parts. It may
carry a value (in ``measurement.currency``) and when it happened (default: now).

**Attribution is last touch.** A conversion is the job's *by click* when it happened within the
job's click window (``click_window_days``, default 7) after its recipient last clicked the job's
link; otherwise *by delivery* within the delivery window (``delivery_window_days``, default 1) after
the message was delivered (the first part's receipt); otherwise it is recorded as unattributed and
counts in no rate. Only the first and the last click of a row are kept: a conversion reported for a
time before the row's last click is measured from its first (never credited to a click after it).

**Idempotent by event id.** The job's ``keys.job_conversion_ids`` keeps each event's answer, set in
the same Lua call that counts it, so an event sent again (a retry, a replayed batch) counts once and
gets the answer the first got. A short pointer (``keys.conversion_event``) names the job an event id
was counted for, so the same id naming the recipient another way is found too.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import redis

from cluster.jobs.record import JobRecord
from cluster.jobs.states import TERMINAL, JobState
from ingest.collect import ACCEPTED_FILE, HOLDOUT_FILE
from ingest.numbers import NumberNormalizer, as_uint64
from ulak import keys, links
from ulak.dispatch.ledger import MESSAGE_TTL
from ulak.jobfiles import JobDir
from ulak.money import from_micros, micros
from ulak.quoting import quoted
from ulak.records import LinkOwner, MessageOwner, Receipt
from ulak.settings import Settings
from ulak.smpp.receipt import normalize_message_id

DAY = 86400.0
FUTURE_SLACK = 300.0  # seconds a reported time may run ahead of ours (clocks differ)
EVENT_STREAM_MAX = 2_000_000


class ConversionRefused(Exception):
    """A conversion that cannot be counted, with the HTTP status and code the API answers with."""

    def __init__(
        self, message: str, status: int = 422, code: str = "invalid_conversion", field: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field or None


@dataclass(frozen=True)
class Touches:
    """When a recipient last met the job: first and last click on its link, and delivery (unix s)."""

    first_click: float | None = None
    last_click: float | None = None
    delivered: float | None = None


def attribute(
    at: float, touches: Touches, *, click_window: float, delivery_window: float
) -> tuple[str, float] | None:
    """``("click" | "delivery", touch time)`` that earns the job a conversion at *at*, or None.

    Last touch: a click within *click_window* seconds before *at* wins; without one, a delivery
    within *delivery_window*. A touch after *at* never counts."""
    click = None
    if touches.last_click is not None and touches.last_click <= at:
        click = touches.last_click
    elif touches.first_click is not None and touches.first_click <= at:
        click = touches.first_click  # some click in between came before it: the first bounds it
    if click is not None and at - click <= click_window:
        return "click", click
    delivered = touches.delivered
    if delivered is not None and delivered <= at and at - delivered <= delivery_window:
        return "delivery", delivered
    return None


RECORD_SCRIPT = """
local had = redis.call('HGET', KEYS[3], ARGV[1])
if had then return had end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
redis.call('HINCRBY', KEYS[1], 'events', 1)
-- the lift's figures: recipients who converted in the campaign's period, sent and held out alike
if ARGV[9] == '1' and redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':p', 1) == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[10] == '1' and 'holdout_converters' or 'period_converters', 1)
end
if ARGV[10] == '1' then
  redis.call('HINCRBY', KEYS[1], 'holdout_conversions', 1)
elseif ARGV[3] == '' then
  redis.call('HINCRBY', KEYS[1], 'unattributed', 1)
else
  redis.call('HINCRBY', KEYS[1], 'conversions', 1)
  redis.call('HINCRBY', KEYS[1], 'by_' .. ARGV[3], 1)
  redis.call('HINCRBY', KEYS[1], 'value', ARGV[4])
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
    redis.call('HINCRBY', KEYS[1], 'converters', 1)
  end
  redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':v', ARGV[4])
  redis.call('HINCRBY', KEYS[5], ARGV[7], 1)
  redis.call('HINCRBY', KEYS[5], ARGV[7] .. ':v', ARGV[4])
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'event', ARGV[1], 'row', ARGV[2],
  'at', ARGV[6], 'by', ARGV[3], 'value', ARGV[4])
return false
"""


@dataclass(frozen=True)
class Recipient:
    job_id: str
    row: int
    ledger: str  # empty: the row went to no operator
    held_out: bool = False  # kept unsent by the job's holdout


class _Numbers:
    """A prepared job's numbers, sorted, to find a row by its number without reading the file again."""

    def __init__(self, sent: pa.Table, held: pa.Table | None = None) -> None:
        table = pa.concat_tables([sent, held]) if held is not None else sent
        numbers = as_uint64(table.column("msisdn").combine_chunks())
        order = np.argsort(numbers, kind="stable")
        self.numbers = numbers[order]
        self.rows = np.asarray(table.column("row").to_numpy(), dtype=np.int64)[order]
        encoded = pc.dictionary_encode(table.column("operator").combine_chunks())
        self.operator_codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(), dtype=np.int64)[order]
        self.operators: list[str] = encoded.dictionary.to_pylist()
        self.held = (np.arange(table.num_rows) >= sent.num_rows)[order]

    def find(self, number: int) -> tuple[int, str | None, bool] | None:
        """The row of *number*, its operator, and whether it is held out; None: not a recipient."""
        at = int(np.searchsorted(self.numbers, number))
        if at >= len(self.numbers) or int(self.numbers[at]) != number:
            return None
        code = int(self.operator_codes[at])
        return int(self.rows[at]), (self.operators[code] if code >= 0 else None), bool(self.held[at])


class Conversions:
    """Counts reported conversions for the jobs that earned them (the API's ``/v1/conversions``)."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        *,
        job_dir: Callable[[JobRecord], JobDir],
        now: Callable[[], float] = time.time,
        cached_jobs: int = 4,
    ) -> None:
        self.client = client
        self.settings = settings
        self._job_dir = job_dir
        self._now = now
        self._record = client.register_script(RECORD_SCRIPT)
        self._numbers: OrderedDict[str, _Numbers] = OrderedDict()
        self._cached_jobs = cached_jobs
        self._lock = threading.Lock()
        self._normalizer = NumberNormalizer(settings.ingest.default_region)

    # ------------------------------------------------------------------------------ recording

    def record(
        self,
        *,
        event_id: str,
        link_code: str | None = None,
        job_id: str | None = None,
        msisdn: str | None = None,
        message_id: str | None = None,
        operator: str | None = None,
        value: Decimal | None = None,
        currency: str | None = None,
        occurred_at: float | None = None,
    ) -> dict[str, Any]:
        """Count one conversion; the answer says whether and how it was attributed (``duplicate``:
        this event id was counted before, and this is the answer it got then)."""
        measurement = self.settings.measurement
        at = self._checked(currency=currency, occurred_at=occurred_at)
        digest = hashlib.sha256(event_id.encode()).hexdigest()
        earlier = self._earlier(digest, event_id)
        if earlier is not None:
            return earlier
        who = self._recipient(
            link_code=link_code, job_id=job_id, msisdn=msisdn, message_id=message_id, operator=operator
        )
        record = self._job_record(who.job_id)
        click_days, delivery_days = self._windows(record)
        touch = None
        if not who.held_out:  # it got no message: nothing to attribute, it counts for the lift
            touch = attribute(
                at,
                self._touches(who),
                click_window=click_days * DAY,
                delivery_window=delivery_days * DAY,
            )
        start, end = campaign_period(record, click_window=click_days * DAY)
        amount = micros(value) if value is not None else 0
        answer = {
            "event_id": event_id,
            "job_id": who.job_id,
            "row": who.row,
            **_attribution(touch),
            "occurred_at": _iso(at),
            "value": str(from_micros(amount)),
            "currency": measurement.currency,
            "held_out": who.held_out,
        }
        in_period = start <= at <= end
        had = self._count(
            who, answer, by=touch[0] if touch else "", amount=amount, at=at, in_period=in_period
        )
        self.client.set(keys.conversion_event(digest), who.job_id, ex=int(measurement.event_days * DAY))
        if had is not None:
            return {**json.loads(had), "duplicate": True}
        return {**answer, "duplicate": False}

    def _count(
        self, who: Recipient, answer: dict[str, Any], *, by: str, amount: int, at: float, in_period: bool
    ) -> bytes | None:
        """Count the conversion in the job's slot (one script, idempotent by event id): the answer
        an earlier count of the same event id got, if one did."""
        at_ms = int(at * 1000)
        had: bytes | None = self._record(
            keys=keys.job_conversion_keys(who.job_id),
            args=[
                answer["event_id"],
                who.row,
                by,
                amount,
                json.dumps(answer),
                at_ms,
                at_ms // 60_000 * 60,
                EVENT_STREAM_MAX,
                "1" if in_period else "0",
                "1" if who.held_out else "0",
            ],
        )
        return had

    def _checked(self, *, currency: str | None, occurred_at: float | None) -> float:
        """When the conversion happened (now if not said), refused in a currency not counted here
        or in the future."""
        measurement = self.settings.measurement
        if currency is not None and currency != measurement.currency:
            raise ConversionRefused(
                f"this installation counts value in {measurement.currency} (measurement.currency); "
                f"convert the value before sending it",
                code="currency_mismatch",
                field="currency",
            )
        now = self._now()
        at = now if occurred_at is None else occurred_at
        if at > now + FUTURE_SLACK:
            raise ConversionRefused(
                "occurred_at is in the future; send when the conversion happened, with its time zone",
                field="occurred_at",
            )
        return at

    def _windows(self, record: JobRecord) -> tuple[float, float]:
        """The job's click and delivery attribution windows in days (its own, else the defaults)."""
        options, measurement = record.options, self.settings.measurement
        click = options.click_window_days
        delivery = options.delivery_window_days
        return (
            click if click is not None else measurement.click_window_days,
            delivery if delivery is not None else measurement.delivery_window_days,
        )

    def _earlier(self, digest: str, event_id: str) -> dict[str, Any] | None:
        job = self.client.get(keys.conversion_event(digest))
        if job is None:
            return None
        had = self.client.hget(keys.job_conversion_ids(job.decode()), event_id)  # type: ignore[union-attr]
        return {**json.loads(had), "duplicate": True} if had is not None else None

    def _job_record(self, job_id: str) -> JobRecord:
        raw: dict[bytes, bytes] = self.client.hgetall(keys.job(job_id))  # type: ignore[assignment]
        if not raw:
            raise ConversionRefused(
                f"job {quoted(job_id, 40)} does not exist (or was purged)", 404, "job_not_found", "job_id"
            )
        return JobRecord.from_redis(raw)

    # ----------------------------------------------------------------------- finding the row

    def _recipient(
        self,
        *,
        link_code: str | None,
        job_id: str | None,
        msisdn: str | None,
        message_id: str | None,
        operator: str | None,
    ) -> Recipient:
        if link_code is not None:
            return self._by_code(link_code)
        if message_id is not None:
            return self._by_message_id(message_id, operator)
        if job_id is not None and msisdn is not None:
            return self._by_number(job_id, msisdn)
        raise ConversionRefused(
            "name the recipient: link_code, or job_id with msisdn, or message_id", field="link_code"
        )

    def _by_code(self, given: str) -> Recipient:
        code = given.rstrip("/").rpartition("/")[2]
        found = self.client.get(keys.link(code)) if links.CODE.fullmatch(code.encode()) else None
        if found is None:
            raise ConversionRefused(
                f"no tracked link {quoted(code, 40)}: unknown, or expired (links.expire_days)",
                404,
                "unknown_recipient",
                "link_code",
            )
        owner = LinkOwner.read(found)
        job, row, ledger = owner.job_id, owner.row, owner.ledger
        return Recipient(job, row, ledger)

    def _by_message_id(self, raw: str, operator: str | None) -> Recipient:
        operators = [o for o in self.settings.operators if operator is None or o.name == operator]
        if not operators:
            raise ConversionRefused(f"no operator named {quoted(operator or '', 40)}", field="operator")
        ids = {  # the id as each bind that may have sent it writes it: (ledger, SMSC, id)
            (op.ledger_name, bind.smsc, normalize_message_id(raw, bind.resp_id_format))
            for op in operators
            for bind in op.binds
        }
        now = time.time()
        candidates = [
            (ledger, key, field)
            for ledger, smsc, field in sorted(ids)
            for key, _ in keys.message_ids_near(ledger, smsc, field, now, MESSAGE_TTL)
        ]
        pipe = self.client.pipeline(transaction=False)
        for _, key, field in candidates:
            pipe.hget(key, field)
        for (ledger, _, _), value in zip(candidates, pipe.execute(), strict=True):
            if value is not None:
                sent = MessageOwner.read(value)
                job = self.client.hget(keys.message_id_jobs(ledger), f"#{sent.job_number}")
                if isinstance(job, bytes):
                    return Recipient(job.decode(), sent.row, ledger)
        raise ConversionRefused(
            f"no message {quoted(raw, 40)} is known (a message id is kept until a day after its "
            "validity period); name the recipient by link_code, or job_id and msisdn",
            404,
            "unknown_recipient",
            "message_id",
        )

    def _by_number(self, job_id: str, msisdn: str) -> Recipient:
        record = self._job_record(job_id)
        if not record.prepared:
            raise ConversionRefused(
                f"job {job_id} has not prepared its rows yet: it has no recipients to match",
                409,
                "not_ready",
                "job_id",
            )
        e164 = self._normalizer.normalize(pa.array([msisdn], pa.string())).e164
        if e164.null_count:
            raise ConversionRefused(f"{quoted(msisdn, 40)} is not a phone number", field="msisdn")
        found = self._index(job_id, record).find(int(as_uint64(e164)[0]))
        if found is None:
            raise ConversionRefused(
                f"+{e164[0].as_py()} is not a recipient of job {job_id}", 404, "unknown_recipient", "msisdn"
            )
        row, op, held = found
        return Recipient(job_id, row, record.ledgers.get(op or "", ""), held_out=held)

    def _index(self, job_id: str, record: JobRecord) -> _Numbers:
        with self._lock:
            if job_id in self._numbers:
                self._numbers.move_to_end(job_id)
                return self._numbers[job_id]
            directory = self._job_dir(record)
            columns = ["row", "msisdn", "operator"]
            table = pq.read_table(directory.open_input(ACCEPTED_FILE), columns=columns)
            held = None
            if directory.exists(HOLDOUT_FILE):
                held = pq.read_table(directory.open_input(HOLDOUT_FILE), columns=columns)
            index = self._numbers[job_id] = _Numbers(table, held)
            while len(self._numbers) > self._cached_jobs:
                self._numbers.popitem(last=False)
            return index

    def _touches(self, who: Recipient) -> Touches:
        row = who.row
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(keys.job_clicked_rows(who.job_id), [f"{row}:t", f"{row}:l"])
        if who.ledger:
            bucket = keys.job_bucket(who.job_id, who.ledger, keys.row_bucket(row))
            pipe.hget(bucket, f"{keys.row_field(row)}:1:r")
        first, last, *receipt = [
            v for group in pipe.execute() for v in (group if isinstance(group, list) else [group])
        ]
        delivered = None
        if receipt and receipt[0] is not None:
            found = Receipt.read(receipt[0])
            if found.delivered:
                delivered = found.at
        return Touches(
            first_click=int(first) / 1000 if first is not None else None,
            last_click=int(last) / 1000 if last is not None else None,
            delivered=delivered,
        )


def _attribution(touch: tuple[str, float] | None) -> dict[str, Any]:
    """How a conversion was attributed: to a click or a delivery, and when that was; or not."""
    return {
        "attributed": touch is not None,
        "by": touch[0] if touch else None,
        "touched_at": _iso(touch[1]) if touch else None,
    }


def campaign_period(record: JobRecord, *, click_window: float) -> tuple[float, float]:
    """When a recipient's conversion counts for the campaign's lift (sent and held out alike): from
    the job's first sending to its end plus the click window (no end while it runs)."""
    sending = [at for state, at in record.history if state == JobState.SENDING]
    start = sending[0] if sending else record.created_at
    ended = [at for s in TERMINAL if (at := record.entered_at(s)) is not None]
    return start, (max(ended) + click_window if ended else float("inf"))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
