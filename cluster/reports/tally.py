"""A campaign's figures folded over its rows' outcomes one chunk at a time (``cluster.reports.summary``).

A 10M-row job's outcomes held whole took ~1.4 GiB in the API process for its first summary; folded a
chunk (≤ 100k rows) at a time, what is held is the figures so far: sums and counts per group, the
delivery times as a histogram of whole milliseconds (as many entries as distinct times, not rows),
and the time series per bucket. Every figure is exact, the percentiles too: the histogram keeps every
time at the precision it was recorded in, so the order statistics, and the interpolation between
them, are those of the whole list.

Every group (the total, each operator, each variant) is folded by the same :meth:`Tally.add` over a
mask of the same chunk, so the operators add up to the total whatever the chunks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ulak import sendtime
from ulak.money import from_micros

Array = np.ndarray[Any, Any]


class Coded:
    """A string column as dictionary codes (null: the empty string): comparing a chunk's rows to a
    value is one integer comparison, not one string comparison a row."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        encoded = pc.dictionary_encode(pc.fill_null(column, "").combine_chunks())
        self.names: list[str] = encoded.dictionary.to_pylist()
        self.codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int32)
        self._index = {name: i for i, name in enumerate(self.names)}

    def eq(self, value: str) -> Array:
        code = self._index.get(value)
        return self.codes == code if code is not None else np.zeros(len(self.codes), dtype=bool)

    def isin(self, values: list[str]) -> Array:
        return np.isin(self.codes, [self._index[v] for v in values if v in self._index])

    def distinct(self) -> set[str]:
        return {self.names[c] for c in np.unique(self.codes).tolist()}

    def count(self, mask: Array) -> Counter[str]:
        """How many of the masked rows hold each value."""
        counts = np.bincount(self.codes[mask], minlength=len(self.names))
        return Counter({self.names[c]: int(n) for c, n in enumerate(counts.tolist()) if n})


class Joined:
    """Per-row figures kept apart from the outcomes (clicks, conversions, value; the send-time plan),
    sorted by row, to be joined to each chunk by row."""

    def __init__(self, rows: Array, columns: Mapping[str, Array]) -> None:
        order = np.argsort(rows, kind="stable")
        self.rows = rows[order]
        self.columns = {name: values[order] for name, values in columns.items()}

    def at(self, rows: Array) -> tuple[Array, Array]:
        """Where each of *rows* is, and whether it is here at all."""
        if not len(self.rows):
            return np.zeros(len(rows), dtype=np.int64), np.zeros(len(rows), dtype=bool)
        at = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        return at, self.rows[at] == rows

    def column(self, name: str, rows: Array, *, default: Any = 0) -> Array:
        """*name* for each of *rows*, *default* where a row is not here."""
        values = self.columns[name]
        if not len(values):
            return np.full(len(rows), default, dtype=values.dtype)
        at, found = self.at(rows)
        return np.where(found, values[at], np.asarray(default, dtype=values.dtype))


class Chunk:
    """A chunk of the job's outcomes as numpy columns, with its rows' clicks and conversions joined."""

    def __init__(self, table: pa.Table, engagement: Joined, plan: Joined | None) -> None:
        self.n = table.num_rows
        self.row = np.asarray(table.column("row").to_numpy(), dtype=np.int64)
        self.operator = Coded(table.column("operator"))
        self.variant = Coded(table.column("variant"))
        self.phase = Coded(table.column("phase"))
        self.parts = np.asarray(table.column("parts").to_numpy(), dtype=np.int64)
        self.parts_acked = np.asarray(table.column("parts_acked").to_numpy(), dtype=np.int64)
        self.status = Coded(table.column("status"))
        self.receipt = Coded(table.column("receipt"))
        self.error = Coded(table.column("error"))
        self.acked_at = _ms(table.column("acked_at"))
        self.receipt_at = _ms(table.column("receipt_at"))
        self.clicks = engagement.column("clicks", self.row)
        self.conversions = engagement.column("conversions", self.row)
        self.value = engagement.column("value", self.row)
        self.acked = self.status.eq("acked")
        self.delivered = self.receipt.eq("delivered")
        self.timed = self.delivered & (self.acked_at >= 0) & (self.receipt_at >= 0)
        self.planned = self.control = np.zeros(self.n, dtype=bool)
        if plan is not None and len(plan.rows):
            at, self.planned = plan.at(self.row)
            self.control = self.planned & plan.columns["control"][at]


class Took:
    """Delivery times in whole milliseconds as a histogram: sorted distinct times and their counts.
    Times are gathered and merged once they outnumber the histogram, so a job whose every time is
    distinct is sorted a few times over, not once a chunk."""

    def __init__(self) -> None:
        self.values = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)
        self._pending: list[Array] = []
        self._waiting = 0

    def add(self, ms: Array) -> None:
        self._pending.append(ms.astype(np.int64, copy=False))
        self._waiting += len(ms)
        if self._waiting >= max(len(self.values), 1 << 20):
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        added, added_counts = np.unique(np.concatenate(self._pending), return_counts=True)
        values, inverse = np.unique(np.concatenate([self.values, added]), return_inverse=True)
        weights = np.concatenate([self.counts, added_counts])
        self.counts = np.bincount(inverse, weights=weights, minlength=len(values)).astype(np.int64)
        self.values = values
        self._pending, self._waiting = [], 0

    def seconds(self, qs: list[float]) -> list[float] | None:
        """The *qs* percentiles in seconds, as ``numpy.percentile`` (linear) gives them over the whole
        list of times in seconds, to the last bit; None if the list is empty."""
        self._merge()
        if not self.values.size:
            return None
        ends = np.cumsum(self.counts)
        last = int(ends[-1]) - 1
        out = []
        for q in qs:
            at = last * (q / 100)
            low = int(np.floor(at))
            t = at - low
            below = float(self.values[np.searchsorted(ends, low, side="right")]) / 1000
            above = float(self.values[np.searchsorted(ends, min(low + 1, last), side="right")]) / 1000
            step = above - below
            out.append(above - step * (1 - t) if t >= 0.5 else below + step * t)  # numpy's _lerp
        return out


class Tally:
    """One group's figures over the chunks folded so far."""

    def __init__(self) -> None:
        self.recipients = self.sent = self.failed = self.unknown = self.delivered = 0
        self.parts = self.parts_sent = 0
        self.unique_clicks = self.clicks = self.conversions = self.converters = self.value = 0
        self.parts_by_operator: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.took = Took()
        self.completed_ms = -1

    def add(self, chunk: Chunk, mask: Array) -> None:
        self.recipients += int(np.count_nonzero(mask))
        sent = mask & chunk.acked
        self.sent += int(np.count_nonzero(sent))
        failed = mask & chunk.status.eq("failed")
        self.failed += int(np.count_nonzero(failed))
        unknown = int(np.count_nonzero(mask & chunk.status.eq("unknown")))
        self.unknown += unknown
        self.delivered += int(np.count_nonzero(mask & chunk.delivered))
        self.parts += int(chunk.parts[mask].sum())
        self.parts_sent += int(chunk.parts_acked[mask].sum())
        per_operator = np.bincount(
            chunk.operator.codes[mask], weights=chunk.parts_acked[mask], minlength=len(chunk.operator.names)
        )
        for name, parts in zip(chunk.operator.names, per_operator.tolist(), strict=True):
            if parts:
                self.parts_by_operator[name] += int(parts)
        self.unique_clicks += int(np.count_nonzero(mask & (chunk.clicks > 0)))
        self.clicks += int(chunk.clicks[mask].sum())
        self.conversions += int(chunk.conversions[mask].sum())
        self.converters += int(np.count_nonzero(mask & (chunk.conversions > 0)))
        self.value += int(chunk.value[mask].sum())
        # Why rows were not delivered: the SMSC's error for a refused submit (``ESME_RINVDSTADR``),
        # the receipt's outcome for a negative one, ``unknown`` for a submit never answered.
        for error, n in chunk.error.count(failed).items():
            self.reasons[error.partition(" ")[2] or error or "failed"] += n
        self.reasons.update(chunk.receipt.count(sent & ~chunk.receipt.isin(["", "delivered"])))
        if unknown:
            self.reasons["unknown"] += unknown
        timed = mask & chunk.timed
        if timed.any():
            self.took.add((chunk.receipt_at[timed] - chunk.acked_at[timed]).clip(min=0))
            self.completed_ms = max(self.completed_ms, int(chunk.receipt_at[timed].max()))

    def kpis(self, prices: Mapping[str, int], *, iso: Any) -> dict[str, Any]:
        """The group's figures as the summary gives them; *iso*: unix ms to the summary's time text."""
        cost = sum(parts * prices.get(name, 0) for name, parts in self.parts_by_operator.items())
        return {
            "recipients": self.recipients,
            "sent": self.sent,
            "failed": self.failed,
            "unknown": self.unknown,
            "delivered": self.delivered,
            "delivery_rate": rate(self.delivered, self.sent),
            "delivery_time": self._delivery_time(iso),
            "failed_by_reason": dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            "parts": self.parts,
            "parts_sent": self.parts_sent,
            "cost": str(from_micros(cost)),
            "clicks": {"unique": self.unique_clicks, "total": self.clicks},
            "click_rate": rate(self.unique_clicks, self.delivered),
            "conversions": self.conversions,
            "converters": self.converters,
            "conversion_rate": rate(self.conversions, self.unique_clicks),
            "value": str(from_micros(self.value)),
            "roi": round((self.value - cost) / cost, 4) if cost else None,
        }

    def _delivery_time(self, iso: Any) -> dict[str, Any]:
        """Seconds from the SMSC's acceptance (its submit_sm_resp) to the delivery receipt, and when
        the last delivery came."""
        found = self.took.seconds([50, 90])
        if found is None:
            return {"p50_seconds": None, "p90_seconds": None, "completed_at": None}
        p50, p90 = found
        return {
            "p50_seconds": round(p50, 3),
            "p90_seconds": round(p90, 3),
            "completed_at": iso(float(self.completed_ms)),
        }


class Engaged:
    """Recipients, delivered, and of those delivered how many clicked and converted (send-time lift)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter(recipients=0, delivered=0, clicked=0, converted=0)

    def add(self, chunk: Chunk, mask: Array) -> None:
        delivered = mask & chunk.delivered
        self.counts["recipients"] += int(np.count_nonzero(mask))
        self.counts["delivered"] += int(np.count_nonzero(delivered))
        self.counts["clicked"] += int(np.count_nonzero(delivered & (chunk.clicks > 0)))
        self.counts["converted"] += int(np.count_nonzero(delivered & (chunk.conversions > 0)))

    def figures(self) -> dict[str, int]:
        return {name: self.counts[name] for name in ("recipients", "delivered", "clicked", "converted")}


class Fold:
    """The summary's figures over a job's outcomes, added a chunk at a time (:meth:`add`): the total,
    each operator, each variant (and on the test slice alone when the job tested variants before
    sending the rest), the send-time groups when the job has a plan, and the rows sent and delivered
    per *bucket* seconds."""

    def __init__(
        self,
        *,
        variants: list[str],
        tested: bool,
        engagement: Joined,
        plan: Joined | None,
        bucket: int,
    ) -> None:
        self.variant_names, self.tested_apart = variants, tested
        self.engagement, self.plan, self.bucket = engagement, plan, bucket
        self.total = Tally()
        self.operators: dict[str, Tally] = {}
        self.variants = {name: Tally() for name in variants}
        self.tested = {name: Tally() for name in variants} if tested else self.variants
        self.send_times: dict[tuple[str, str], dict[str, Engaged]] = {}
        self.points: dict[int, Counter[str]] = {}

    def add(self, table: pa.Table) -> None:
        chunk = Chunk(table, self.engagement, self.plan)
        every = np.ones(chunk.n, dtype=bool)
        scopes: list[tuple[tuple[str, str], Array]] = [(("total", ""), every)]
        self.total.add(chunk, every)
        for name in sorted(chunk.operator.distinct() - {""}):
            mask = chunk.operator.eq(name)
            self.operators.setdefault(name, Tally()).add(chunk, mask)
            scopes.append((("operator", name), mask))
        for name in self.variant_names:
            mask = chunk.variant.eq(name)
            self.variants[name].add(chunk, mask)
            if self.tested_apart:
                self.tested[name].add(chunk, mask & ~chunk.phase.eq("rest"))
            scopes.append((("variant", name), mask))
        if self.plan is not None:
            optimized = chunk.planned & ~chunk.control
            for scope, mask in scopes:
                groups = self.send_times.setdefault(scope, {"optimized": Engaged(), "control": Engaged()})
                groups["optimized"].add(chunk, mask & optimized)
                groups["control"].add(chunk, mask & chunk.control)
        self._count(chunk.acked_at[chunk.acked & (chunk.acked_at >= 0)] // 1000, "sent")
        self._count(chunk.receipt_at[chunk.delivered & (chunk.receipt_at >= 0)] // 1000, "delivered")

    def _count(self, at_s: Array, name: str) -> None:
        if not at_s.size:
            return
        starts, counts = np.unique(at_s // self.bucket * self.bucket, return_counts=True)
        for start, n in zip(starts.tolist(), counts.tolist(), strict=True):
            self.points.setdefault(int(start), Counter())[name] += int(n)

    def send_time(self) -> dict[str, Any]:
        """The optimised rows against the control group, in all, per operator and per variant: per
        delivered recipient, with each lift's 95 % interval (``ulak.sendtime.lift``)."""

        def compared(scope: tuple[str, str]) -> dict[str, Any]:
            found = self.send_times.get(scope) or {"optimized": Engaged(), "control": Engaged()}
            groups = {kind: found[kind].figures() for kind in ("optimized", "control")}
            delivered = (groups["optimized"]["delivered"], groups["control"]["delivered"])
            return {
                **groups,
                "clicks": sendtime.lift(
                    (groups["optimized"]["clicked"], groups["control"]["clicked"]), delivered
                ),
                "conversions": sendtime.lift(
                    (groups["optimized"]["converted"], groups["control"]["converted"]), delivered
                ),
            }

        return {
            **compared(("total", "")),
            "operators": {op: compared(("operator", op)) for op in sorted(self.operators)},
            "variants": {name: compared(("variant", name)) for name in self.variant_names},
        }


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _ms(column: pa.ChunkedArray) -> Array:
    """Timestamps as unix ms, -1 where there is none."""
    ints = pc.fill_null(pc.cast(column, pa.int64()), -1)
    return np.asarray(ints.to_numpy(), dtype=np.int64)
