"""A job as the API shows it: its record and counters read into figures that add up, rates, ETA."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cluster.jobs.record import JobRecord
from cluster.jobs.states import JobState, actions
from ulak import keys, links
from ulak.dispatch.ledger import COUNTERS
from ulak.money import from_micros
from ulak.quoting import quoted
from ulak.records import Sample

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


class JobNotFound(LookupError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def queue_view(pipe: Any, job_id: str) -> None:
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
    rec = JobRecord.from_redis(raw_rec)
    c = counters(raw_counters)
    state = rec.state
    msgs_rate, parts_rate, per_ledger = _rates(raw_samples)
    pending = c["accepted"] - c["submitted"] - c["cancelled"] - stopped(c)
    parts_left = max(0, c["parts_total"] - c["parts_sent"] - c["parts_stopped"]) if pending > 0 else 0
    eta = parts_left / parts_rate if parts_rate > 0 and state is JobState.SENDING else None
    preview = rec.preview or {}
    return {
        "id": job_id,
        "state": state.value,
        "actions": actions(state),
        "ended": state.terminal,
        "options": json.loads(rec.options_json),
        "source": rec.source,
        "error": rec.error,
        "waiting": rec.waiting,
        **_figures(c),
        **_engagement(c, clicks, conversions),
        "rates": {
            "messages_per_second": round(msgs_rate, 1),
            "parts_per_second": round(parts_rate, 1),
            "operators": _per_operator(per_ledger, rec.ledgers),
        },
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "operators": preview.get("operators", {}),
        "variants": preview.get("variant_operators", {}),
        "rejected_reasons": preview.get("rejected", {}),
        "encodings": preview.get("encodings", {}),
        "capped_at_start": preview.get("frequency_capped"),
        "send_plan": preview.get("send_plan"),
        "samples": preview.get("samples", []),
        "times": {
            s: iso_time(at)
            for s in ("created", *(x.value for x in JobState))
            if (at := rec.entered_at(s)) is not None
        },
        **_history(rec.history),
    }


def stopped(c: dict[str, int]) -> int:
    """Rows ended before they were sent: their recipients refused while the job ran, their frequency
    cap would not let them go (a job that refuses capped messages), or they were held (by a cap or
    the recipient's local window) past their validity."""
    return (
        c["stopped_opted_out"]
        + c["stopped_no_consent"]
        + c["stopped_frequency_capped"]
        + c["stopped_expired"]
    )


def _figures(c: dict[str, int]) -> dict[str, Any]:
    """The view's counts, parts and receipts: they add up by construction (the module docstring)."""
    outcomes = {o: c[o] for o in RECEIPT_OUTCOMES}
    return {
        "counts": {
            "rows": c["rows"],
            "accepted": c["accepted"],
            "rejected": c["rows_rejected"],
            "held_out": c["held_out"],
            "pending": c["accepted"] - c["submitted"] - c["cancelled"] - stopped(c),
            "cancelled": c["cancelled"],
            # stopped before they were sent: the recipient refused while the job ran (ulak.refusals)
            "opted_out": c["stopped_opted_out"],
            "no_consent": c["stopped_no_consent"],
            # ended unsent: past the recipient's frequency cap (ulak.caps), in a job that refuses those
            "frequency_capped": c["stopped_frequency_capped"],
            # ended unsent: its recipient's local window would open only past its validity
            "expired": c["stopped_expired"],
            "submitted": c["submitted"],
            "in_flight": c["submitted"] - c["acked"] - c["failed"] - c["unknown"],
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
            "stopped": c["parts_stopped"],
        },
        "receipts": {
            "awaiting": c["acked"] - sum(outcomes.values()),
            **outcomes,
            "received": c["receipts"],
            "duplicates": c["receipts_duplicate"],
        },
        "delivery_rate": round(c["delivered"] / c["acked"], 4) if c["acked"] else None,
    }


def _engagement(
    c: dict[str, int], clicks: dict[bytes, bytes], conversions: dict[bytes, bytes]
) -> dict[str, Any]:
    """The view's clicks and conversions, with their rates (per delivered, per unique click)."""
    clicked = links.clicks_view(clicks)
    converted = {n: int(conversions.get(n.encode(), 0)) for n in CONVERSION_COUNTERS}
    return {
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
    }


def _history(entries: list[tuple[str, float]]) -> dict[str, Any]:
    """Every entry into a state in order, and how long the job has been sending in all (``times``
    keeps only the last entry into each: after a pause nobody could tell how long it sent)."""
    sending = 0.0
    ends = [at for _, at in entries[1:]] + ([time.time()] if entries else [])  # each entry's end
    for (state, at), until in zip(entries, ends, strict=True):
        if state == JobState.SENDING.value:
            sending += until - at
    return {
        "history": [{"state": state, "at": iso_time(at)} for state, at in entries],
        "sending_seconds": round(sending, 3) if entries else None,
    }


def counters(hashes: Sequence[dict[bytes, bytes] | dict[str, int]]) -> dict[str, int]:
    """Counter hashes (as Redis returned them, or already decoded), summed, every counter present."""
    found: dict[str, int] = {}
    for raw in hashes:
        for k, v in raw.items():
            name = k.decode() if isinstance(k, bytes) else k
            found[name] = found.get(name, 0) + int(v)
    return {name: found.get(name, 0) for name in (*INGEST_COUNTERS, *COUNTERS)}


def _rates(raw: list[bytes], span: float = 10.0) -> tuple[float, float, dict[str, float]]:
    """Messages and parts a second over the last *span* seconds of samples, and parts a second per
    ledger (zero when the samples are stale: the job is not moving)."""
    samples = [Sample.read(s) for s in raw]
    if len(samples) < 2 or time.time() - samples[0].at > 3.0:  # no fresh samples: not moving
        return 0.0, 0.0, {}
    newest = samples[0]
    oldest = next((s for s in samples if newest.at - s.at >= span), samples[-1])
    dt = newest.at - oldest.at
    if dt <= 0:
        return 0.0, 0.0, {}
    before = dict(oldest.ledgers)
    per = {name: max(0, n - before.get(name, 0)) / dt for name, n in newest.ledgers if name in before}
    return (newest.submitted - oldest.submitted) / dt, (newest.parts_sent - oldest.parts_sent) / dt, per


def _per_operator(per_ledger: dict[str, float], ledgers: dict[str, str]) -> dict[str, float]:
    """Parts a second per operator of the job; operators that share a ledger (one SMSC account)
    share one figure, named ``a+b``."""
    names: dict[str, list[str]] = {}
    for op, ledger in sorted(ledgers.items()):
        names.setdefault(ledger, []).append(op)
    return {"+".join(names[ledger]): round(rate, 1) for ledger, rate in per_ledger.items() if ledger in names}


def iso_time(ts: float | str | None) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(float(ts), UTC).isoformat().replace("+00:00", "Z")
