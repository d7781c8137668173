"""``/metrics``: the cluster's figures as a ``prometheus_client`` collector.

A scrape reads one :class:`Snapshot` (a handful of batched reads: one pipeline for the jobs' states,
one view per *active* job, one call to the bind pool, one per operator's throttle, one pipeline for
the receipt histograms, one for the webhook endpoints) and turns it into metric families with
:func:`families`, a pure function the unit tests and the dashboard test call on constructed data.

Labels are bounded: operator and bind (from the configuration), job *state* (never a job id: a
finished job would leave a series behind forever), reply kind, and webhook endpoint (one per
customer URL).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from api.schemas import BIND_DOWN
from cluster import webhooks
from cluster.engagement import replies
from cluster.jobs.states import ACTIVE, JobState
from cluster.plane import ControlPlane
from ulak import keys
from ulak.dispatch.bindstate import UP, BindState
from ulak.records import read_bind_field

# Every state a bind reports, its own and the pool's (ulak.dispatch.bindstate).
BIND_STATES = tuple(BindState)
# The ledger script's receipt-latency buckets (ulak/dispatch/ledger.lua), in seconds.
LATENCY_BUCKETS = ("1", "5", "15", "60", "300", "1800", "3600", "21600", "86400")
MESSAGE_STATES = (
    "pending",
    "in_flight",
    "acked",
    "failed",
    "unknown",
    "cancelled",
    "opted_out",
    "no_consent",
    "frequency_capped",
    "expired",
)
PART_STATES = ("total", "sent", "acked", "failed", "unknown", "stopped")
REPLY_KINDS = ("optout", "optin", "keyword", "answer", "reply")
JOBS_SCANNED = 1000

_BIND_GAUGES: dict[str, tuple[str, Any]] = {
    "ulak_bind_up": (
        "1 when the bind is bound (or bound and throttled)",
        lambda b: b.get("state") in UP,
    ),
    "ulak_bind_in_flight": ("PDUs awaiting a response (window use)", lambda b: len(b.get("in_flight", []))),
    "ulak_bind_window": ("the bind's window", lambda b: b.get("window", 0)),
    "ulak_bind_queued": ("parts queued in the bind", lambda b: b.get("queued", 0)),
    "ulak_bind_failed": (
        "1 when the bind cannot send: failed, refused, missing, unplaced or unreachable (see last_error)",
        lambda b: b.get("state") in BIND_DOWN,
    ),
    "ulak_bind_paused_seconds": (
        "how long the bind still waits after a 'slow down' answer",
        lambda b: b.get("paused_for", 0.0),
    ),
    "ulak_bind_learned_tps": (
        "the rate the bind sends at, learned from the SMSC's 'slow down' answers (ulak_bind_tps: its cap)",
        lambda b: b.get("learned_tps", 0.0),
    ),
    "ulak_bind_down_seconds": (
        "how long the bind has not been bound (0: it is)",
        lambda b: b.get("down_for", 0.0),
    ),
}
_BIND_COUNTERS = {
    "submitted": "submit_sm written",
    "throttled": "ESME_RTHROTTLED (0x58) and ESME_RMSGQFUL (0x14) answers",
    "slowed": "times the SMSC's 'slow down' answers lowered the bind's learned rate",
    "receipts": "delivery receipts received",
    "mo": "MO deliver_sm (replies) read",
    "mo_durable": "MO parts written to Redis, then answered",
    "rows_stopped": "queued messages dropped unsent: their recipients refused while the job ran",
    "disconnects": "connections lost",
    "connects": "connections made (reconnects = connects - 1)",
    "failures": "unexpected errors in the send loop (logged with a traceback)",
    "binds_refused": "bind requests the SMSC refused",
    "limiter_errors": "failed calls to the operator's limiter (retried)",
    "inbox_errors": "failed writes of receipts to Redis (they waited, unanswered, and came again)",
    "protocol_errors": "PDUs the SMSC sent that could not be read",
}


@dataclass(frozen=True)
class Snapshot:
    """What one scrape read. Plain data: :func:`families` is tested on constructed ones."""

    jobs: dict[str, int] = field(default_factory=dict)  # state -> jobs (of the latest JOBS_SCANNED)
    messages: dict[str, int] = field(default_factory=dict)  # state -> messages, active jobs summed
    parts: dict[str, int] = field(default_factory=dict)  # PART_STATES -> parts, active jobs summed
    binds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # operator -> described binds
    bind_tps: dict[tuple[str, str], float] = field(default_factory=dict)  # (operator, bind) -> its cap
    throttles: dict[str, dict[str, Any]] = field(default_factory=dict)  # operator -> described throttle
    latency: dict[str, float] = field(default_factory=dict)  # bucket "le" or "sum" -> count or seconds
    receipts: dict[str, int] = field(default_factory=dict)  # keys.receipt_stats, ledgers summed
    replies: dict[str, int] = field(default_factory=dict)  # cluster.engagement.replies.counts
    webhooks: list[dict[str, Any]] = field(default_factory=list)  # cluster.webhooks.endpoints
    ingest: dict[str, float] = field(default_factory=dict)  # keys.INGEST_STATS
    replaced: dict[tuple[str, str], int] = field(default_factory=dict)  # keys.BIND_REPLACEMENTS
    send_times: dict[str, float] = field(default_factory=dict)  # keys.SENDTIME_STATS


def read_snapshot(plane: ControlPlane) -> Snapshot:
    store = plane.store
    states = store.states(store.ids(limit=JOBS_SCANNED))
    jobs = dict.fromkeys((s.value for s in JobState), 0)
    messages = dict.fromkeys(MESSAGE_STATES, 0)
    parts = dict.fromkeys(PART_STATES, 0)
    for job_id, state in states.items():
        jobs[state.value] += 1
        if state not in ACTIVE:
            continue
        view = store.view(job_id)
        for name in MESSAGE_STATES:
            messages[name] += view["counts"][name]
        for name in PART_STATES:
            parts[name] += view["parts"][name]
    raw_ingest: dict[bytes, bytes] = plane.client.hgetall(keys.INGEST_STATS)  # type: ignore[assignment]
    raw_replaced: dict[bytes, bytes] = plane.client.hgetall(keys.BIND_REPLACEMENTS)  # type: ignore[assignment]
    raw_send_times: dict[bytes, bytes] = plane.client.hgetall(keys.SENDTIME_STATS)  # type: ignore[assignment]
    return Snapshot(
        jobs=jobs,
        messages=messages,
        parts=parts,
        binds=plane.binds(),
        bind_tps={
            (op.name, b.name): float(b.tps or op.tps) for op in plane.settings.operators for b in op.binds
        },
        throttles=plane.throttles(),
        latency=plane.receipt_latency(),
        receipts=plane.receipt_stats(),
        replies=replies.counts(plane.client),
        webhooks=webhooks.endpoints(plane.client),
        ingest={k.decode(): float(v) for k, v in raw_ingest.items()},
        replaced={read_bind_field(k): int(v) for k, v in raw_replaced.items()},
        send_times={k.decode(): float(v) for k, v in raw_send_times.items()},
    )


def families(snap: Snapshot) -> Iterator[Metric]:
    """The metric families of *snap*: jobs, binds, throttles, receipts, replies, webhooks, ingest."""
    yield _gauge("ulak_jobs", "Jobs by state (of the latest 1000).", ["state"], snap.jobs.items())
    yield _gauge(
        "ulak_active_messages",
        "Messages of the jobs not yet ended, by state, all jobs summed.",
        ["state"],
        snap.messages.items(),
    )
    yield _gauge(
        "ulak_active_parts",
        "Parts of the jobs not yet ended: total planned, sent, acked, failed, unknown.",
        ["state"],
        snap.parts.items(),
    )
    yield from _bind_families(snap)
    yield from _throttle_families(snap)
    yield _latency(snap.latency)
    for key, doc in (
        ("held", "Receipts that came before their submit_sm_resp was recorded, held to be matched."),
        ("matched_late", "Receipts held early and matched when their submit_sm_resp was recorded."),
        (
            "unowned",
            "Receipts whose message id names a job number nothing names (keys deleted by hand): not applied.",
        ),
    ):
        yield _counter(f"ulak_receipts_{key}_total", doc, [], [((), snap.receipts.get(key, 0))])
    yield from _reply_families(snap.replies)
    yield from _webhook_families(snap.webhooks)
    for name, key, doc in (
        ("ulak_ingest_jobs_total", "jobs", "Uploads prepared."),
        ("ulak_ingest_rows_total", "rows", "Rows read from uploads."),
        ("ulak_ingest_accepted_total", "accepted", "Rows accepted for sending."),
        ("ulak_ingest_seconds_total", "seconds", "Time spent preparing uploads (rows/s = rows / seconds)."),
    ):
        counter = CounterMetricFamily(name, doc)
        counter.add_metric([], snap.ingest.get(key, 0.0))
        yield counter
    replaced = CounterMetricFamily(
        "ulak_bind_replacements",
        "Bind processes found dead (their node lost, or a crash) and made again.",
        labels=["operator", "bind"],
    )
    for (op, bind), count in sorted(snap.replaced.items()):
        replaced.add_metric([op, bind], count)
    yield replaced
    folded = CounterMetricFamily(
        "ulak_send_time_events", "Engagements folded into the send-time model (clicks, replies, conversions)."
    )
    folded.add_metric([], snap.send_times.get("events", 0.0))
    yield folded
    refreshed = GaugeMetricFamily(
        "ulak_send_time_refreshed_timestamp_seconds",
        "When the send-time model was last refreshed (unix s; 0: never). It is refreshed every hour.",
    )
    refreshed.add_metric([], snap.send_times.get("refreshed", 0.0))
    yield refreshed


def _bind_families(snap: Snapshot) -> Iterator[Metric]:
    rows = [(op, b) for op, described in sorted(snap.binds.items()) for b in described]
    labels = ["operator", "bind"]
    state = GaugeMetricFamily(
        "ulak_bind_state", "1 for the state the bind is in, 0 for the others.", labels=[*labels, "state"]
    )
    for op, b in rows:
        for bind_state in BIND_STATES:
            state.add_metric([op, b["bind"], bind_state.value], float(b.get("state") == bind_state))
    yield state
    tps = GaugeMetricFamily(
        "ulak_bind_tps",
        "The bind's cap in parts per second (the operator's, when the bind has none of its own).",
        labels=labels,
    )
    for op, b in rows:
        tps.add_metric([op, b["bind"]], snap.bind_tps.get((op, b["bind"]), 0.0))
    yield tps
    for name, (doc, get) in _BIND_GAUGES.items():
        yield _gauge(name, doc + ".", labels, (((op, b["bind"]), float(get(b))) for op, b in rows))
    for field_name, doc in _BIND_COUNTERS.items():
        counter = CounterMetricFamily(f"ulak_bind_{field_name}_total", doc + ".", labels=labels)
        for op, b in rows:
            counter.add_metric([op, b["bind"]], float(b.get(field_name, 0)))
        yield counter


def _throttle_families(snap: Snapshot) -> Iterator[Metric]:
    throttles = sorted(snap.throttles.items())
    rate = GaugeMetricFamily(
        "ulak_throttle_rate", "The operator's cap in parts per second.", labels=["operator"]
    )
    leases = CounterMetricFamily(
        "ulak_throttle_leases_total", "Token leases the binds asked for.", labels=["operator"]
    )
    waits = CounterMetricFamily(
        "ulak_throttle_waits_total", "Leases refused for now: a bind had to wait.", labels=["operator"]
    )
    for op, described in throttles:
        for family, key in ((rate, "rate"), (leases, "leases"), (waits, "waits")):
            if key in described:
                family.add_metric([op], float(described[key]))
    yield from (rate, leases, waits)


def _latency(latency: dict[str, float]) -> Metric:
    cumulative = 0.0
    buckets = []
    for le in (*LATENCY_BUCKETS, "+Inf"):
        cumulative += latency.get(le, 0.0)
        buckets.append((le, cumulative))
    return HistogramMetricFamily(
        "ulak_receipt_latency_seconds",
        "From a part's submit_sm_resp to its final receipt.",
        buckets=buckets,
        sum_value=latency.get("sum", 0.0),
    )


def _reply_families(counts: dict[str, int]) -> Iterator[Metric]:
    yield _counter(
        "ulak_replies_total",
        "Replies (MO) put together, by what they meant.",
        ["kind"],
        ((k, counts.get(k, 0)) for k in REPLY_KINDS),
    )
    for name, doc in (
        ("parts", "MO parts the binds made durable and the processor read"),
        ("incomplete", "concatenated replies kept without all their parts (replies.concat_timeout)"),
        ("duplicate", "MO parts the SMSC sent again (counted once)"),
    ):
        yield _counter(f"ulak_reply_{name}_total", doc + ".", [], [((), counts.get(name, 0))])


def _webhook_families(endpoints: list[dict[str, Any]]) -> Iterator[Metric]:
    rows = [(e["id"], e) for e in endpoints]
    yield _gauge(
        "ulak_webhook_queued",
        "Events waiting for their endpoint.",
        ["endpoint"],
        ((i, e["queued"]) for i, e in rows),
    )
    yield _gauge(
        "ulak_webhook_dead",
        "Dead letters (replay with POST /v1/webhooks/{id}/replay).",
        ["endpoint"],
        ((i, e["dead"]) for i, e in rows),
    )
    yield _gauge(
        "ulak_webhook_failing",
        "1 while the endpoint's last attempt failed (it is being retried with backoff).",
        ["endpoint"],
        ((i, float(bool(e.get("last_error")))) for i, e in rows),
    )
    yield _counter(
        "ulak_webhook_delivered_total",
        "Events the endpoint accepted.",
        ["endpoint"],
        ((i, e["delivered"]) for i, e in rows),
    )


def _gauge(name: str, doc: str, labels: list[str], values: Iterable[tuple[Any, float]]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for label_values, value in values:
        family.add_metric(_labels(label_values), float(value))
    return family


def _counter(name: str, doc: str, labels: list[str], values: Iterable[tuple[Any, float]]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for label_values, value in values:
        family.add_metric(_labels(label_values), float(value))
    return family


def _labels(values: Any) -> list[str]:
    return [values] if isinstance(values, str) else [str(v) for v in values]


class UlakCollector(Collector):
    """Reads a :class:`Snapshot` per scrape."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def collect(self) -> Iterator[Metric]:
        return families(read_snapshot(self.plane))

    def describe(self) -> Iterator[Metric]:
        return iter(())  # nothing read at registration: the families come at each scrape


def registry(plane: ControlPlane) -> CollectorRegistry:
    found = CollectorRegistry(auto_describe=False)
    found.register(UlakCollector(plane))
    return found
