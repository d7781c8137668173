"""The job ledger: what happened to every part and row, and counters that always add up.

Connection actors report *events* in batches: a part was sent, acknowledged (with the SMSC's message
id), failed permanently, lost with an unknown fate, or a delivery receipt arrived. The ledger turns them
into per-row states and per-job counters. :class:`MemoryLedger` is the reference model, plain Python;
:class:`RedisLedger` applies the same rules atomically inside Redis, one Lua call per batch (one round
trip however many events). ``tests/integration/test_ledger.py`` holds the two to the same results over
random event orders.

Rules (per row of a job; a row is one logical message of ``parts`` PDUs):

* ``submitted`` counts rows with at least one part sent; a resent part is not counted again.
* A row is ``acked`` once every part is acknowledged, ``failed`` once any part fails permanently,
  ``unknown`` once any part's fate is lost (at-most-once after a disconnect); the first of these wins
  and a row is never in two. So ``submitted = acked + failed + unknown + in flight`` at all times.
* Receipts count only for acked rows, once per row: ``delivered`` when every part is delivered, else
  the first negative receipt (``undelivered``, ``expired``, ``rejected``, ``deleted``,
  ``receipt_unknown``). A duplicate receipt for a part is counted in ``receipts_duplicate`` and changes
  nothing else.
* A part answered ESME_RTHROTTLED or ESME_RMSGQFUL is *returned* (``PartReturned``): the SMSC does
  not have it, so the ledger forgets its send (``parts_sent`` and, when no other part of its row was
  sent, the row's ``submitted``), as a bind does with a send it had not written yet. A runner that
  takes the job back then sends it again rather than skipping it as sent (issue 14: parts
  throttled, then taken back by a pause, were never sent). A part not seen sent, or with an
  outcome already, is left as it is.
* A row not sent yet may be *stopped* (``RowStopped``: its recipient opted out or withdrew consent
  while the job ran, ``ulak.refusals``): its state and every part's become ``x``, its reason and
  time are kept, and ``stopped_<reason>`` counts it (``parts_stopped`` its parts). A stopped row
  is final: nothing sent later (there should be nothing) changes it, and a row with a part sent is
  never stopped.
* A receipt whose message id is not known yet (it overtook its submit_sm_resp) is held and applied
  when the acknowledgement records the id; held receipts are counted, never dropped silently.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from ulak import keys

# Cumulative per-job counters (messages unless the name says parts).
COUNTERS = (
    "submitted",
    "acked",
    "failed",
    "unknown",
    "delivered",
    "undelivered",
    "expired",
    "rejected",
    "deleted",
    "receipt_unknown",
    "parts_sent",
    "parts_acked",
    "parts_failed",
    "parts_unknown",
    "receipts",
    "receipts_duplicate",
    "stopped_opted_out",
    "stopped_no_consent",
    "stopped_frequency_capped",
    "stopped_expired",
    "parts_stopped",
)

# Receipt status (SMPP appendix B text) → the counter a row's outcome goes to; None = not final.
OUTCOME = {
    "DELIVRD": "delivered",
    "UNDELIV": "undelivered",
    "EXPIRED": "expired",
    "REJECTD": "rejected",
    "DELETED": "deleted",
    "UNKNOWN": "receipt_unknown",
    "ENROUTE": None,
    "ACCEPTD": None,
}


def outcome_of(status: str) -> str | None:
    """The counter a final receipt status goes to (unrecognised ones count as ``receipt_unknown``)."""
    return OUTCOME.get(status, "receipt_unknown")


@dataclass(slots=True)
class PartSent:
    job: str
    row: int
    part: int
    parts: int


@dataclass(slots=True)
class PartAcked:
    job: str
    row: int
    part: int
    parts: int
    smsc: str  # the bind's SMSC identity: message ids are unique only per SMSC
    message_id: str  # normalised (ulak.smpp.receipt.normalize_message_id)
    raw_id: str = ""  # as the SMSC wrote it, when that differs (the report shows this one)


@dataclass(slots=True)
class PartFailed:
    job: str
    row: int
    part: int
    parts: int
    status: int  # the SMPP command_status


@dataclass(slots=True)
class PartReturned:
    """Sent, and answered "slow down": not at the SMSC, to be sent again."""

    job: str
    row: int
    part: int
    parts: int


@dataclass(slots=True)
class PartUnknown:
    job: str
    row: int
    part: int
    parts: int


@dataclass(slots=True)
class RowStopped:
    """Not sent, and never to be: its recipient refused (``ulak.refusals``) while it waited."""

    job: str
    row: int
    parts: int
    reason: str  # opted_out, no_consent (ulak.refusals), frequency_capped (ulak.caps), expired
    at_ms: int  # when it was stopped (unix ms)


@dataclass(slots=True)
class ReceiptSeen:
    smsc: str
    message_id: str  # normalised
    status: str  # DELIVRD, UNDELIV, …
    error: str = ""


Event = PartSent | PartAcked | PartFailed | PartReturned | PartUnknown | ReceiptSeen | RowStopped
# Events are not frozen: a bind makes two or three per message, and a frozen dataclass's __init__
# costs ~4× a plain one (2.6 µs against 0.6 for a PartAcked). Nothing mutates them after creation.


class MemoryLedger:
    """The reference model of the rules above, in plain Python."""

    def __init__(self) -> None:
        self.counters: dict[str, Counter[str]] = defaultdict(Counter)
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}
        self.parts: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.message_ids: dict[tuple[str, str], tuple[str, int, int, int]] = {}
        self.early: dict[tuple[str, str], tuple[str, str]] = {}
        self.receipt_stats: Counter[str] = Counter()

    def apply(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, ReceiptSeen):
                self._receipt(event.smsc, event.message_id, event.status, event.error)
                continue
            if isinstance(event, RowStopped):
                self._stop(event)
                continue
            job, row, part, parts = event.job, event.row, event.part, event.parts
            c = self.counters[job]
            r = self.rows.setdefault((job, row), {"state": None, "acked": 0, "delivered": 0})
            p = self.parts.setdefault((job, row, part), {"state": None, "receipt": None})
            if isinstance(event, PartSent):
                if p["state"] is None:
                    p["state"] = "s"
                    c["parts_sent"] += 1
                if r["state"] is None:
                    r["state"] = "s"
                    c["submitted"] += 1
            elif isinstance(event, PartReturned):
                if p["state"] == "s":
                    p["state"] = None
                    c["parts_sent"] -= 1
                    siblings = (self.parts.get((job, row, i), {}).get("state") for i in range(1, parts + 1))
                    if r["state"] == "s" and all(state is None for state in siblings):
                        r["state"] = None
                        c["submitted"] -= 1
            elif isinstance(event, PartAcked):
                if p["state"] in (None, "s"):
                    if p["state"] is None:  # an ack implies the send
                        c["parts_sent"] += 1
                        if r["state"] is None:
                            r["state"] = "s"
                            c["submitted"] += 1
                    p["state"] = "a"
                    c["parts_acked"] += 1
                    r["acked"] += 1
                    if r["acked"] == parts and r["state"] == "s":
                        r["state"] = "a"
                        c["acked"] += 1
                        self._outcome(job, row, parts)
                self.message_ids[(event.smsc, event.message_id)] = (job, row, part, parts)
                held = self.early.pop((event.smsc, event.message_id), None)
                if held is not None:
                    self.receipt_stats["matched_late"] += 1
                    self._apply_receipt((job, row, part, parts), held[0])
            else:
                terminal = "f" if isinstance(event, PartFailed) else "u"
                if p["state"] in (None, "s"):
                    if p["state"] is None:
                        c["parts_sent"] += 1
                        if r["state"] is None:
                            r["state"] = "s"
                            c["submitted"] += 1
                    p["state"] = terminal
                    c["parts_failed" if terminal == "f" else "parts_unknown"] += 1
                    if r["state"] == "s":
                        r["state"] = terminal
                        c["failed" if terminal == "f" else "unknown"] += 1

    def _stop(self, event: RowStopped) -> None:
        r = self.rows.setdefault((event.job, event.row), {"state": None, "acked": 0, "delivered": 0})
        if r["state"] is not None:
            return
        r["state"] = "x"
        r["stopped"] = f"{event.reason}|{event.at_ms}"
        for part in range(1, event.parts + 1):
            p = self.parts.setdefault((event.job, event.row, part), {"state": None, "receipt": None})
            p["state"] = "x"
        self.counters[event.job][f"stopped_{event.reason}"] += 1
        self.counters[event.job]["parts_stopped"] += event.parts

    def _receipt(self, smsc: str, message_id: str, status: str, error: str) -> None:
        target = self.message_ids.get((smsc, message_id))
        if target is None:
            if (smsc, message_id) not in self.early or outcome_of(status) is not None:
                if (smsc, message_id) not in self.early:
                    self.receipt_stats["held"] += 1
                self.early[(smsc, message_id)] = (status, error)
            return
        self._apply_receipt(target, status)

    def _apply_receipt(self, target: tuple[str, int, int, int], status: str) -> None:
        job, row, part, parts = target
        c = self.counters[job]
        c["receipts"] += 1
        outcome = outcome_of(status)
        if outcome is None:
            return
        p = self.parts.setdefault((job, row, part), {"state": None, "receipt": None})
        if p["receipt"] is not None:
            c["receipts_duplicate"] += 1
            return
        p["receipt"] = status
        r = self.rows.setdefault((job, row), {"state": None, "acked": 0, "delivered": 0})
        if outcome == "delivered":
            r["delivered"] += 1
        elif "negative" not in r:
            r["negative"] = outcome
        if r["state"] == "a":
            self._outcome(job, row, parts)

    def _outcome(self, job: str, row: int, parts: int) -> None:
        r = self.rows[(job, row)]
        if "outcome" in r:
            return
        if "negative" in r:
            r["outcome"] = r["negative"]
        elif r["delivered"] == parts:
            r["outcome"] = "delivered"
        else:
            return
        self.counters[job][r["outcome"]] += 1


_SCRIPT = keys.ROW_PLACE_LUA + (Path(__file__).with_name("ledger.lua")).read_text(encoding="utf-8")


def coalesce(events: list[Event]) -> list[Event]:
    """Drops each PartSent whose part is acked, failed, lost or returned later in *events*: those
    events imply the send (the rules count it there; a part returned before the ledger saw it sent
    is as if never sent), so the ledger reaches the same state with less work. A bind
    keeps this rule as its events arrive (``BindClient._answered``); this is its reference, which
    the ledger tests write their batches through."""
    settled: set[tuple[str, int, int]] = set()
    stopped: set[tuple[str, int]] = set()  # a send before its row's stop decides it: kept
    kept: list[Event] = []
    for e in reversed(events):
        if isinstance(e, PartSent):
            if (e.job, e.row, e.part) in settled and (e.job, e.row) not in stopped:
                continue
        elif isinstance(e, RowStopped):
            stopped.add((e.job, e.row))
        elif not isinstance(e, ReceiptSeen):
            settled.add((e.job, e.row, e.part))
        kept.append(e)
    kept.reverse()
    return kept


def _pack(events: list[Event]) -> bytes:
    """One batch as a single MessagePack array, 9 values per event: Lua's cmsgpack decodes it in C
    (splitting a delimited string with Lua patterns cost ~4 µs per event, as much as the rules), and
    one argument instead of 9 per event keeps redis-py's command packing off the bind's CPU. Row, part
    and parts go as decimal strings, and a message id with its map key's end (``keys.message_ids``,
    ``keys.message_ids_suffix``; see ledger.lua)."""
    flat: list[object] = []
    for e in events:
        if isinstance(e, ReceiptSeen):
            flat += ("R", e.status, "0", "0", "0", e.smsc, e.message_id, f"{e.status}|{e.error}", _in_map(e))
            continue
        if isinstance(e, RowStopped):
            flat += ("X", e.job, str(e.row), "1", str(e.parts), e.reason, str(e.at_ms), "", "")
            continue
        row, part, parts = str(e.row), str(e.part), str(e.parts)
        if isinstance(e, PartAcked):
            flat += ("A", e.job, row, part, parts, e.smsc, e.message_id, e.raw_id or e.message_id, _in_map(e))
        elif isinstance(e, PartSent):
            flat += ("S", e.job, row, part, parts, "", "", "", "")
        elif isinstance(e, PartFailed):
            flat += ("F", e.job, row, part, parts, str(e.status), "", "", "")
        elif isinstance(e, PartReturned):
            flat += ("T", e.job, row, part, parts, "", "", "", "")

        else:
            flat += ("U", e.job, row, part, parts, "", "", "", "")
    return msgpack.packb(flat)  # type: ignore[no-any-return]


def _in_map(event: PartAcked | ReceiptSeen) -> str:
    """The end of the map's key that keeps *event*'s message id, as the ledger script takes it (a
    string.format there costs ~1 µs)."""
    return keys.message_ids_suffix(event.smsc, keys.message_id_bucket(event.message_id))


MESSAGE_TTL = 3 * 86400  # how long a message id stays matchable, at least: the validity period plus a day

# Events per script call: ~2.5 ms of Redis. 128 left the API's p99 where 64 had it and sent 9 % more;
# 256 raised the p99 by half (BENCHMARKS.md, third and fourth sessions of 2026-11-28).
BATCH = 128


class RedisLedger:
    """One ledger in Redis (``OperatorConfig.ledger``: an operator's, or that of the operators that
    share an SMSC account): one atomic Lua call per batch of events.

    Every key a call touches is in *ledger*'s hash slot (``ulak.keys.tag``), so on a Redis Cluster
    a call is one slot; the events of one call must all be of rows that go to *ledger*'s operators
    (a bind's are), and the receipts of ids those operators' binds were given. Works with
    ``redis.Redis`` or ``redis.cluster.RedisCluster`` (``apply``) and their asyncio twins
    (``apply_async``). ``message_ttl`` bounds how long a message id stays matchable: the
    validity period plus a margin.
    """

    def __init__(self, client: Any, *, ledger: str, message_ttl: int = MESSAGE_TTL) -> None:
        self._client = client
        self._script = client.register_script(_SCRIPT)
        self.ledger = ledger
        self.message_ttl = message_ttl
        # The script names its keys from arguments; one in KEYS routes the call to the slot's node.
        self._route = [keys.receipt_stats(ledger)]
        self._fixed = (
            *keys.ledger_templates(ledger),
            keys.message_ids_prefix(ledger),
            keys.early_receipt_prefix(ledger),
            keys.receipt_stats(ledger),
            message_ttl,
        )
        self._hooks = (
            keys.webhook_jobs(ledger),
            keys.webhook_outbox(ledger),
            keys.receipt_latency(ledger),
            keys.early_receipts_held(ledger),
        )

    def _args(
        self, events: list[Event], inbox: str = "", fence: tuple[str, str, str] | None = None
    ) -> list[str | int | bytes]:
        return [*self._fixed, _pack(events), *self._hooks, inbox, *(fence or ())]

    def apply(self, events: list[Event]) -> None:
        if events:
            self._script(keys=self._route, args=self._args(events))

    def apply_in_batches(self, events: Sequence[Event]) -> None:
        """Apply *events* ``BATCH`` at a time, as binds write: Redis runs each script alone, so one
        long call would hold up every other client."""
        for i in range(0, len(events), BATCH):
            self.apply(list(events[i : i + BATCH]))

    async def apply_async(
        self, events: list[Event], inbox: str = "", fence: tuple[str, str, str] | None = None
    ) -> None:
        """Apply *events*; with *inbox* (a bind's, ``ulak.dispatch.inbox``), drop from its head, in
        the same atomic call, one entry per receipt applied: they were its oldest. With *fence*
        (key, expected, new: ``ulak.dispatch.fence``), only if the key holds what is expected,
        moving it to the new value; else nothing, and a ``FENCE <value>`` error."""
        if events:
            await self._script(keys=self._route, args=self._args(events, inbox, fence))

    def counters(self, job: str) -> dict[str, int]:
        """This ledger's counters of *job*'s rows."""
        raw = self._client.hgetall(keys.job_op_counters(job, self.ledger))
        return {k.decode(): int(v) for k, v in raw.items()}


class LedgerReader:
    """Reads back what :class:`RedisLedger` wrote, for a job whose rows go to several operators: the
    one module that knows the layout (``ulak.keys``: rows and parts per ledger) reads it. *ledgers*
    maps each of the job's operators to its ledger (the job record keeps it: ``cluster.jobs``).

    Each read is one round trip (a pipeline; on a Redis Cluster the client sends each operator's part
    to its shard). Figures summed over operators are each operator's atomic snapshot, so every sum
    that adds up per operator adds up in total."""

    def __init__(self, client: Any, job: str, ledgers: Mapping[str, str]) -> None:
        self._client = client
        self.job = job
        self.ledgers = dict(ledgers)

    def names(self) -> list[str]:
        """The job's ledgers, each once however many of its operators share it, sorted."""
        return sorted(set(self.ledgers.values()))

    def counter_keys(self) -> list[str]:
        """The job's counter hash in each of its ledgers."""
        return [keys.job_op_counters(self.job, name) for name in self.names()]

    def counters(self) -> dict[str, int]:
        """The ledgers' counters of the job, summed."""
        return sum_counters(list(self.per_ledger().values()))

    def per_ledger(self) -> dict[str, dict[bytes, bytes]]:
        """Each of the job's ledgers' counters of it, as Redis returned them (one round trip)."""
        names, found = self.names(), self.counter_keys()
        if not found:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for key in found:
            pipe.hgetall(key)
        return dict(zip(names, pipe.execute(), strict=True))

    def fields(
        self,
        operators: Sequence[str],
        rows: Sequence[int],
        names: Sequence[Sequence[str | bytes]],
    ) -> list[list[bytes | None]]:
        """For each row *rows[i]*, the values of its fields *names[i]* (named as ``keys.job_bucket``
        names them: ``keys.row_field`` first) in the job's bucket hash of its operator
        *operators[i]*'s ledger, in order (:meth:`hashes`)."""
        wanted = [i for i, n in enumerate(names) if n]
        found = self.hashes([operators[i] for i in wanted], [rows[i] for i in wanted])
        out: list[list[bytes | None]] = [[] for _ in operators]
        for i, values in zip(wanted, found, strict=True):
            out[i] = [values.get(f if isinstance(f, bytes) else f.encode()) for f in names[i]]
        return out

    def hashes(self, operators: Sequence[str], rows: Sequence[int]) -> list[dict[bytes, bytes]]:
        """For each row *rows[i]*, the job's hash of its bucket (``keys.job_bucket``) in its operator
        *operators[i]*'s ledger, as Redis returned it (rows of one bucket share the dict; fields as
        ``ulak.keys`` names them): one HGETALL per bucket, one round trip. A bucket's every field,
        not just those wanted: sending the names cost more than the fields not asked for (200k rows'
        report fields in 1.42 s, against 1.79 by HMGET and 2.26 by a script making the HMGETs)."""
        at: dict[tuple[str, int], int] = {}
        where = [
            at.setdefault((self.ledgers.get(op, op), keys.row_bucket(row)), len(at))
            for op, row in zip(operators, rows, strict=True)
        ]
        if not at:
            return []
        pipe = self._client.pipeline(transaction=False)
        for ledger, bucket in at:
            pipe.hgetall(keys.job_bucket(self.job, ledger, bucket))
        found: list[dict[bytes, bytes]] = pipe.execute()
        return [found[w] for w in where]

    def ledger_keys(self, rows: int, extra: Sequence[str] = ()) -> list[str]:
        """Every key of the job in its ledgers (to delete them), for a job of *rows* rows (numbered
        1 to *rows*: its buckets), and its counters in *extra* ledgers too."""
        names = sorted({*self.ledgers.values(), *extra})
        buckets = range(keys.row_bucket(rows) + 1)
        return [
            *(keys.job_op_counters(self.job, n) for n in names),
            *(keys.job_bucket(self.job, n, b) for n in self.names() for b in buckets),
        ]


def sum_counters(hashes: Sequence[dict[bytes, bytes]]) -> dict[str, int]:
    """Counter hashes as Redis returned them, summed field by field."""
    total: Counter[str] = Counter()
    for raw in hashes:
        for k, v in raw.items():
            total[k.decode()] += int(v)
    return dict(total)
