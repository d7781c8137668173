"""A campaign's summary: what it cost and what it earned, in total, per operator, and minute by minute.

The figures come from three places, each read once:

* the rows' outcomes (status, receipt, error, times, parts the SMSC took) are the row-level report's
  (``cluster.reports.report``). A job that has ended with every receipt in keeps them as a snapshot
  in its folder (``cluster.reports.snapshot``), stamped with the ledger counters it was taken at: a
  late receipt changes the counters, and the next summary takes a new snapshot;
* each row's clicks and conversions are read from the job's per-row hashes
  (``keys.job_clicked_rows``, ``keys.job_converted_rows``): one HGETALL each. An ended job keeps
  them as a snapshot too, ``engagement.parquet``, stamped with the job's click and conversion
  counters: people click and convert long after the last receipt, and each click or conversion
  changes the counters, so the next summary reads the hashes again and takes a new snapshot;
* the per-minute clicks and conversions from their minute hashes.

Every group's figures (the total, each operator) are computed by the same function over a mask of
the same rows, so the operators add up to the total. Money is summed in millionths (``ulak.money``).
Definitions (our users'): delivery rate = delivered / sent; click rate = unique clicks / delivered;
conversion rate = conversions / unique clicks; ROI = (value − cost) / cost; cost = parts the SMSC
accepted × the operator's ``price_per_part``.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cluster.engagement.replies import survey_summary
from cluster.jobs.options import JobOptions
from cluster.jobs.record import JobRecord
from cluster.jobs.states import JobState
from cluster.jobs.store import JobStore
from cluster.reports import snapshot
from cluster.reports.tally import Fold, Joined
from cluster.reports.tally import rate as _rate
from cluster.send.sendtimes import control_rows
from cluster.send.winner import describe as winner_decision
from ulak import keys
from ulak.jobfiles import JobDir
from ulak.money import from_micros, micros
from ulak.records import read_minute_field
from ulak.settings import Settings
from ulak.variants import compare, difference_interval, two_proportion_p

ENGAGEMENT = "engagement.parquet"
BUCKETS = (60, 300, 900, 3600, 86400)  # seconds a time-series point may span


def summarize(
    store: JobStore,
    settings: Settings,
    job_id: str,
    *,
    job_dir: Callable[[JobRecord], JobDir],
    bucket: int = 60,
    now: float | None = None,
) -> dict[str, Any]:
    """The job's summary (``GET /v1/jobs/{id}/summary``); *job_dir*: the folder of a job's record;
    *bucket*: seconds per time-series point."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(map(str, BUCKETS))} seconds")
    client = store.client
    view, record = store.view_and_record(job_id)
    directory = job_dir(record)
    options = record.options
    fold = _fold(store, job_id, record, view, directory, bucket=bucket)
    prices = {op.name: micros(op.price_per_part) for op in settings.operators}
    total = fold.total.kpis(prices, iso=_iso)
    operators = {name: fold.operators[name].kpis(prices, iso=_iso) for name in sorted(fold.operators)}
    variants = {name: tally.kpis(prices, iso=_iso) for name, tally in fold.variants.items()}
    tested = {name: tally.kpis(prices, iso=_iso) for name, tally in fold.tested.items()}
    conversions = view["conversions"]
    summary: dict[str, Any] = {
        "job_id": job_id,
        "name": options.name,
        "state": view["state"],
        "currency": settings.measurement.currency,
        "as_of": _iso((now if now is not None else time.time()) * 1000),
        "rows": {
            "in_file": view["counts"]["rows"],
            "rejected": view["counts"]["rejected"],
            "pending": view["counts"]["pending"],
            "cancelled": view["counts"]["cancelled"],
            # ended unsent while the job ran: refusals (ulak.refusals) and frequency caps (ulak.caps)
            "opted_out": view["counts"]["opted_out"],
            "no_consent": view["counts"]["no_consent"],
            "frequency_capped": view["counts"]["frequency_capped"],
            "expired": view["counts"]["expired"],
            "capped_at_start": view.get("capped_at_start"),
        },
        **total,
        "bot_clicks": view["clicks"]["bots"],
        "unattributed_conversions": conversions["unattributed"],
        "windows_days": {
            "click": _or(options.click_window_days, settings.measurement.click_window_days),
            "delivery": _or(options.delivery_window_days, settings.measurement.delivery_window_days),
        },
        "goal": _goal(options, total["conversions"], fold.total.value),
        "operators": operators,
        "variants": variants,
        "ab_test": _ab_test(tested) if len(tested) >= 2 else None,
        "decision": winner_decision(record.decision),
        "holdout": _holdout(view, total) if options.holdout else None,
        "send_time": _send_time(fold, options) if options.send_time == "optimized" else None,
        "survey": (
            survey_summary(client, job_id, options.survey.kind, delivered=total["delivered"])
            if options.survey is not None
            else None
        ),
        "series": {
            "bucket_seconds": bucket,
            "points": _series(
                fold,
                clicks=client.hgetall(keys.job_click_minutes(job_id)),  # type: ignore[arg-type]
                conversions=client.hgetall(keys.job_conversion_minutes(job_id)),  # type: ignore[arg-type]
            ),
        },
    }
    return summary


def _ab_test(variants: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Whether the variants differ: per delivered recipient, in clicking and in converting (a rate
    over the same recipients, so the two-proportion test applies), with each one's sample."""
    names = list(variants)
    delivered = [v["delivered"] for v in variants.values()]
    clicked = [v["clicks"]["unique"] for v in variants.values()]
    converted = [v["converters"] for v in variants.values()]
    return {
        "samples": dict(zip(names, delivered, strict=True)),
        "clicks": {"rate": "unique clicks / delivered", **compare(names, clicked, delivered)},
        "conversions": {"rate": "converters / delivered", **compare(names, converted, delivered)},
    }


def _holdout(view: Mapping[str, Any], total: Mapping[str, Any]) -> dict[str, Any]:
    """The campaign's lift: how much more often its recipients converted than the held-out ones in
    the same period (first send to end + click window), with a 95 % interval and a p-value."""
    conversions = view["conversions"]
    held, held_converted = view["counts"]["held_out"], conversions["holdout_converters"]
    sent, sent_converted = total["sent"], conversions["period_converters"]
    sent_rate, held_rate = _rate(sent_converted, sent), _rate(held_converted, held)
    lift = round(sent_rate - held_rate, 4) if sent_rate is not None and held_rate is not None else None
    p = two_proportion_p([sent_converted, held_converted], [sent, held])
    return {
        "sent": {"recipients": sent, "converters": sent_converted, "rate": sent_rate},
        "held_out": {"recipients": held, "converters": held_converted, "rate": held_rate},
        "lift": lift,
        "lift_interval_95": difference_interval([sent_converted, held_converted], [sent, held]),
        "relative_lift": round(lift / held_rate, 4) if lift is not None and held_rate else None,
        "p_value": round(p, 6) if p is not None else None,
    }


def _send_time(fold: Fold, options: JobOptions) -> dict[str, Any] | None:
    """An optimised job's lift over its random-time control group (``cluster.send.sendtimes``): per
    delivered recipient, how much more often the optimised ones clicked and converted, with a 95 %
    interval; in all, per operator and per variant. None: the job has no plan (yet)."""
    if fold.plan is None:
        return None
    return {
        "control_share": options.send_time_control,
        "rate": "per delivered recipient; lift: optimized − control, with a 95 % interval",
        **fold.send_time(),
    }


def _or(value: float | None, default: float) -> float:
    return value if value is not None else default


def _goal(options: JobOptions, conversions: int, value: int) -> dict[str, Any] | None:
    """Progress to the job's goal (conversions, value in millionths), when it has one."""
    goal: dict[str, Any] = {}
    if options.goal_conversions is not None:
        goal["conversions"] = {
            "target": options.goal_conversions,
            "reached": conversions,
            "progress": round(conversions / options.goal_conversions, 4),
        }
    if options.goal_value is not None:
        target = micros(options.goal_value)
        goal["value"] = {
            "target": str(from_micros(target)),
            "reached": str(from_micros(value)),
            "progress": round(value / target, 4),
        }
    return goal or None


# ---------------------------------------------------------------------------------- the rows


def _fold(
    store: JobStore,
    job_id: str,
    record: JobRecord,
    view: Mapping[str, Any],
    directory: JobDir,
    *,
    bucket: int,
) -> Fold:
    """The rows' outcomes folded a chunk at a time (``cluster.reports.tally``): the snapshot's when it
    is still true, else the ledgers' (kept as the snapshot when nothing but a late receipt can change
    them any more)."""
    table = _engagement(store, job_id, record, view, directory)
    engagement = Joined(
        np.asarray(table.column("row").to_numpy(), dtype=np.int64),
        {
            name: np.asarray(table.column(name).to_numpy(), dtype=np.int64)
            for name in ("clicks", "conversions", "value")
        },
    )
    found = control_rows(directory) if record.options.send_time == "optimized" else None
    plan = Joined(found[0], {"control": found[1]}) if found is not None else None

    def start() -> Fold:  # once more if the snapshot is replaced under the fold: the joins are kept
        return Fold(
            variants=[v.name for v in record.options.variants or ()],
            tested=record.options.test_share is not None,
            engagement=engagement,
            plan=plan,
            bucket=bucket,
        )

    if not record.prepared:
        return start()
    if snapshot.ensure(store, job_id, record, view, directory):
        kept = snapshot.fold(store, job_id, directory, start)
        if kept is not None:
            return kept
    fold = start()
    for batch in snapshot.from_ledgers(store, job_id, record, directory, JobState(view["state"])):
        fold.add(pa.Table.from_batches([batch]).select(snapshot.SUMMARY_COLUMNS))
    return fold


def warm(store: JobStore, job_id: str, directory: JobDir) -> None:
    """Take an ended job's snapshots now (what its first summary read would otherwise do), so that
    the first read is as quick as the next: the job's actor calls this as the job ends."""
    view, record = store.view_and_record(job_id)
    if record.prepared:
        snapshot.ensure(store, job_id, record, view, directory)
    _engagement(store, job_id, record, view, directory)


_ENGAGEMENT = pa.schema(
    [("row", pa.int64()), ("clicks", pa.int64()), ("conversions", pa.int64()), ("value", pa.int64())]
)


def _engagement(
    store: JobStore, job_id: str, record: JobRecord, view: Mapping[str, Any], directory: JobDir
) -> pa.Table:
    """Each clicked or converted row's clicks, conversions and value (millionths): the snapshot
    while the job's click and conversion counters are what it was taken at, else the per-row
    hashes (kept as the snapshot once the job has ended). The stamp is read before the hashes, so
    a click between the two only makes the next read take the snapshot again."""
    if not record.prepared:
        return _ENGAGEMENT.empty_table()
    stamp = "e1|" + json.dumps([view["clicks"], view["conversions"]], sort_keys=True)
    if record.engagement_stamp == stamp and directory.exists(ENGAGEMENT):
        return pq.read_table(directory.open_input(ENGAGEMENT))
    client = store.client
    clicked, clicks, _ = _counts(client.hgetall(keys.job_clicked_rows(job_id)), None)  # type: ignore[arg-type]
    converted, conversions, value = _counts(
        client.hgetall(keys.job_converted_rows(job_id)),  # type: ignore[arg-type]
        b":v",
    )
    rows = np.union1d(clicked, converted)
    columns = {name: np.zeros(len(rows), dtype=np.int64) for name in ("clicks", "conversions", "value")}
    columns["clicks"][np.searchsorted(rows, clicked)] = clicks
    at = np.searchsorted(rows, converted)
    columns["conversions"][at] = conversions
    columns["value"][at] = value
    table = pa.Table.from_pydict({"row": rows, **columns}, schema=_ENGAGEMENT)
    if JobState(view["state"]).terminal:
        with directory.open_output(ENGAGEMENT + ".tmp") as sink:
            pq.write_table(table, sink, compression="zstd")
        directory.move(ENGAGEMENT + ".tmp", ENGAGEMENT)
        store.update(job_id, engagement_stamp=stamp)
    return table


def _counts(raw: dict[bytes, bytes], suffix: bytes | None) -> tuple[np.ndarray[Any, Any], ...]:
    """A per-row hash's rows (sorted), their counts, and their *suffix* field (zeros without one):
    a row's count is the field named by its number alone, its other fields have a suffix."""
    names = [k for k in raw if b":" not in k]
    rows = np.array(names or [b"0"], dtype=np.bytes_).astype(np.int64)[: len(names)]
    counts = np.array([raw[k] for k in names] or [b"0"], dtype=np.bytes_).astype(np.int64)[: len(names)]
    extra = np.zeros(len(names), dtype=np.int64)
    if suffix is not None:
        fields = [raw.get(k + suffix, b"0") for k in names] or [b"0"]
        extra = np.array(fields, dtype=np.bytes_).astype(np.int64)[: len(names)]
    order = np.argsort(rows, kind="stable")
    return rows[order], counts[order], extra[order]


def _series(
    fold: Fold, *, clicks: dict[bytes, bytes], conversions: dict[bytes, bytes]
) -> list[dict[str, Any]]:
    """Per bucket with anything in it: rows sent (acked), delivered, clicks (all and first of a row),
    conversions and their value."""
    points = {start: Counter(counts) for start, counts in fold.points.items()}
    for raw, names in ((clicks, ("clicks", "unique_clicks")), (conversions, ("conversions", "value"))):
        for field, count in raw.items():  # already per minute: a few thousand fields at most
            minute, second_kind = read_minute_field(field)
            start = minute // fold.bucket * fold.bucket
            points.setdefault(start, Counter())[names[1] if second_kind else names[0]] += int(count)
    counted = ("sent", "delivered", "clicks", "unique_clicks", "conversions")
    return [
        {
            "at": _iso(start * 1000),
            **{n: counts[n] for n in counted},
            "value": str(from_micros(counts["value"])),
        }
        for start, counts in sorted(points.items())
    ]


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------ export

CSV_COLUMNS = (
    "group",
    "recipients",
    "sent",
    "failed",
    "unknown",
    "delivered",
    "delivery_rate",
    "delivery_p50_seconds",
    "delivery_p90_seconds",
    "parts",
    "parts_sent",
    "cost",
    "unique_clicks",
    "total_clicks",
    "click_rate",
    "conversions",
    "converters",
    "conversion_rate",
    "value",
    "roi",
)


def flat(group: str, kpis: Mapping[str, Any]) -> dict[str, Any]:
    """A group's figures as one flat row (the CSV export's and the CLI table's)."""
    return {
        "group": group,
        **{k: kpis[k] for k in CSV_COLUMNS if k in kpis},
        "delivery_p50_seconds": kpis["delivery_time"]["p50_seconds"],
        "delivery_p90_seconds": kpis["delivery_time"]["p90_seconds"],
        "unique_clicks": kpis["clicks"]["unique"],
        "total_clicks": kpis["clicks"]["total"],
    }


def groups(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The total, each operator and each variant, flat (``flat``), total first."""
    out = [flat("total", summary)]
    out += [flat(f"operator:{name}", kpis) for name, kpis in summary["operators"].items()]
    out += [flat(f"variant:{name}", kpis) for name, kpis in summary.get("variants", {}).items()]
    return out


def as_csv(summary: Mapping[str, Any]) -> bytes:
    """The summary's groups as CSV (one row each: total, then the operators)."""
    rows = groups(summary)
    table = pa.table({c: pa.array([r[c] for r in rows]) for c in CSV_COLUMNS})
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    return buffer.getvalue()
