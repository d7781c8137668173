"""An optimised job's send times (``send_time: optimized``): when each recipient gets it.

Planned once, as the job is prepared (its dry run plans too: the preview shows the plan), with
the model refreshed first (``cluster.engagement.sendtimes``). The horizon is the job's start (now,
or its ``send_at``) and the ``send_time_horizon_hours`` after it, cut into the recipient's local
whole hours (the start itself, then each local hour's beginning: a half-hour zone's hours begin at
:30 UTC, and a night the clocks change has one hour less or more). Of those, the hours inside the
job's ``send_window`` (in the job's zone, or the recipient's own with ``window_timezone:
recipient``) are the candidates; the recipient's is the one their score is highest at
(``ulak.sendtime``), the earliest of equals, so a recipient nobody knows anything about goes at
once. The control group (``send_time_control`` of them, by a seeded hash of the number, like an
A/B split) gets a candidate drawn at random instead.

The plan is a file beside the rows file, ``sendtimes.parquet`` (row, send_at, control), in the
same order; the runner reads the rows of each planned time when it comes (``cluster.send.rows``),
and the summary compares the two groups (``cluster.reports.summary``). A restarted runner reads
the same file: the plan never changes once made.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cluster.engagement.sendtimes import Folder
from cluster.jobs.options import in_window
from cluster.send.job import Job
from ingest.collect import ACCEPTED_FILE
from ulak import sendtime
from ulak.jobfiles import JobDir
from ulak.settings import OperatorConfig
from ulak.variants import fractions, seed_of
from ulak.zones import Zones

PLAN_FILE = "sendtimes.parquet"
PLAN_SCHEMA = pa.schema(
    [("row", pa.int64()), ("send_at", pa.int64()), ("control", pa.bool_()), ("known", pa.bool_())]
)
BATCH = 1_000_000  # rows planned at a time: a batch touches most of the model's buckets, one call each
QUARTER = 900  # every zone's hours begin at a quarter hour of UTC
HEADROOM = 0.9  # of an operator's rate a plan fills an hour with (other jobs, retries, slow-downs)


class Planner:
    """Plans one job's send times (see the module docstring)."""

    def __init__(self, job: Job, *, start: float) -> None:
        self.job = job
        self.start = start
        options = job.options
        self.horizon = options.send_time_horizon_hours * 3600
        self.control = options.send_time_control
        seed = seed_of((options.split_seed or job.job_id) + "/send_time")
        self._seeds = (seed, seed ^ 0x6A09E667F3BCC908)
        self.window = options.send_window
        self.own_zone = None if options.local_windows() else ZoneInfo(options.window_timezone)
        config = job.settings.jobs
        self.zones = Zones(main=config.recipient_zones, unknown=config.unknown_zone)
        self.weight = job.settings.send_times.prior_weight
        self.capacity = Capacity({op.name: _rate(op) for op in job.settings.operators}, start=start)
        self._slots: dict[
            ZoneInfo, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]
        ] = {}

    def plan(self) -> dict[str, Any]:
        """Refresh the model, plan every row into ``sendtimes.parquet``, and return the plan's
        figures for the preview (``send_plan``)."""
        folded = Folder(self.job.client, self.job.settings).refresh(wait=120.0)
        if folded is None:
            self.job.log.warning(
                "sendtimes.stale",
                hint="another process held the model's lock for 2 minutes: planned with the model as it was",
            )
        priors = sendtime.Priors.read(self.job.client, digits=self.job.settings.send_times.prefix_digits)
        directory = self.job.directory
        rows_file = directory.parquet(ACCEPTED_FILE)
        per_slot: Counter[tuple[int, bool]] = Counter()
        known = 0
        with (
            directory.open_output(PLAN_FILE + ".tmp") as sink,
            pq.ParquetWriter(sink, PLAN_SCHEMA) as writer,
        ):
            columns = ["row", "msisdn", "operator", "parts"]
            for batch in rows_file.iter_batches(batch_size=BATCH, columns=columns):
                numbers: list[str] = batch.column("msisdn").to_pylist()
                operators = np.asarray(batch.column("operator").to_pylist(), dtype=object)
                parts = np.asarray(batch.column("parts").to_numpy(), dtype=np.int64)
                at, control, has = self._batch(numbers, priors, operators=operators, parts=parts)
                writer.write_table(
                    pa.table(
                        [batch.column("row"), pa.array(at), pa.array(control), pa.array(has)],
                        schema=PLAN_SCHEMA,
                    )
                )
                per_slot.update(zip(at.tolist(), control.tolist(), strict=True))
                known += int(has.sum())
        directory.move(PLAN_FILE + ".tmp", PLAN_FILE)
        return self._figures(per_slot, known)

    def _batch(
        self,
        numbers: list[str],
        priors: sendtime.Priors,
        *,
        operators: np.ndarray[Any, Any],
        parts: np.ndarray[Any, Any],
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Each number's send time, whether it is in the control group, whether it had history."""
        history = sendtime.histories(self.job.client, numbers)
        score = sendtime.scores(history, priors.of(numbers, weight=self.weight), weight=self.weight)
        at, control = self._choose(numbers, score, operators=operators, parts=parts)
        return at, control, np.asarray(history.any(axis=1), dtype=bool)

    def _choose(
        self,
        numbers: list[str],
        score: np.ndarray[Any, Any],
        *,
        operators: np.ndarray[Any, Any],
        parts: np.ndarray[Any, Any],
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Each number's send time by its *score* (n, 24), within what its operator can send in
        that hour (``Capacity``), and whether it is in the control group."""
        as_ints = np.asarray([int(n) for n in numbers], dtype=np.uint64)
        control = fractions(as_ints, self._seeds[0]) < self.control
        draw = fractions(as_ints, self._seeds[1])
        at = np.full(len(numbers), int(self.start), dtype=np.int64)
        by_zone: dict[ZoneInfo, list[int]] = {}
        for i, number in enumerate(numbers):
            by_zone.setdefault(self.zones.of(number), []).append(i)
        for zone, members in by_zone.items():
            times, hours, allowed = self._zone_slots(zone)
            if not allowed.any():
                continue  # its window never opens in the horizon: sent when it does (the runner's window)
            idx = np.asarray(members)
            candidates = np.flatnonzero(allowed)
            zone_scores = np.where(allowed, score[idx][:, hours], -1.0)
            best = zone_scores.argmax(axis=1)  # the first of equal highs: the earliest
            pick = np.minimum((draw[idx] * len(candidates)).astype(np.int64), len(candidates) - 1)
            slot = np.where(control[idx], candidates[pick], best)
            slot = self.capacity.fit(
                slot, zone_scores, fixed=control[idx], times=times, operators=operators[idx], parts=parts[idx]
            )
            at[idx] = times[slot]
        return at, control

    def _zone_slots(
        self, zone: ZoneInfo
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """The horizon's slots in *zone*: their start times, local hours, and which may send."""
        cached = self._slots.get(zone)
        if cached is not None:
            return cached
        start, end = self.start, self.start + self.horizon
        times = [start]
        t = (int(start) // QUARTER + 1) * QUARTER
        while t < end:
            if datetime.fromtimestamp(t, zone).minute == 0:
                times.append(float(t))
            t += QUARTER
        local = [datetime.fromtimestamp(t, zone) for t in times]
        window_zone = self.own_zone or zone
        allowed = [
            self.window is None or in_window(self.window, window_zone, at.astimezone(UTC)) for at in local
        ]
        slots = (
            np.asarray(times, dtype=np.int64),
            np.asarray([at.hour for at in local], dtype=np.int64),
            np.asarray(allowed, dtype=bool),
        )
        self._slots[zone] = slots
        return slots

    def _figures(self, per_slot: Counter[tuple[int, bool]], known: int) -> dict[str, Any]:
        """The plan as the preview shows it: per hour (UTC, from the start), how many recipients
        go then, chosen and at random."""
        hours: dict[int, dict[str, int]] = {}
        for (at, control), n in per_slot.items():
            hour = hours.setdefault(max(at, int(self.start)) // 3600 * 3600, {"optimized": 0, "control": 0})
            hour["control" if control else "optimized"] += n
        return {
            "start": _iso(self.start),
            "horizon_hours": self.horizon // 3600,
            "control_share": self.control,
            "with_history": known,
            "over_capacity": self.capacity.over,
            "hours": [{"hour": _iso(at), **counts} for at, counts in sorted(hours.items())],
        }


class Capacity:
    """The parts each operator can still send in each clock hour of the horizon as the plan fills
    it: its rate (parts a second) times the hour's seconds (the first hour's from the start on),
    times ``HEADROOM``. An hour already full sends each next recipient at their next best hour,
    those who would gain most from it first; one with no hour left with room goes at their best
    anyway (late, counted in ``over``)."""

    def __init__(self, rates: dict[str, float], *, start: float) -> None:
        self.rates = rates
        self.start = start
        self.used: Counter[tuple[str, int]] = Counter()
        self.over = 0

    def room(self, operator: str, hour: int) -> float:
        rate = self.rates.get(operator)
        if rate is None:
            return float("inf")
        seconds = max(0.0, min(3600.0, (hour + 1) * 3600 - self.start))
        return rate * seconds * HEADROOM - self.used[operator, hour]

    def fit(
        self,
        slot: np.ndarray[Any, Any],
        scores: np.ndarray[Any, Any],
        *,
        fixed: np.ndarray[Any, Any],
        times: np.ndarray[Any, Any],
        operators: np.ndarray[Any, Any],
        parts: np.ndarray[Any, Any],
    ) -> np.ndarray[Any, Any]:
        """*slot* (each row's index into *times*) moved where an hour is full; *scores* (rows,
        slots) say the next best, -1 where a slot is not allowed; *fixed* rows (the control
        group) stay where they are and take their room first."""
        slot = slot.copy()
        first = slot.copy()
        scores = scores.copy()
        hours = times // 3600
        names, codes = np.unique(operators.astype(str), return_inverse=True)
        for op, hour, n in zip(
            codes[fixed].tolist(), hours[slot[fixed]].tolist(), parts[fixed].tolist(), strict=True
        ):
            self.used[str(names[op]), hour] += n
        free = ~fixed
        while free.any():
            rows = np.flatnonzero(free)
            row_hours = hours[slot[rows]]
            rows = rows[np.lexsort((-scores[rows, slot[rows]], row_hours, codes[rows]))]
            row_codes, row_hours = codes[rows], hours[slot[rows]]
            edges = np.flatnonzero((np.diff(row_codes) != 0) | (np.diff(row_hours) != 0)) + 1
            spilled = []
            for a, b in zip(np.r_[0, edges].tolist(), np.r_[edges, len(rows)].tolist(), strict=True):
                key = (str(names[row_codes[a]]), int(row_hours[a]))
                taken = np.cumsum(parts[rows[a:b]])
                fits = int(np.searchsorted(taken, self.room(*key), side="right"))
                if fits:
                    self.used[key] += int(taken[fits - 1])
                spilled.append(rows[a + fits : b])
            free[:] = False
            over = np.concatenate(spilled) if spilled else np.zeros(0, dtype=np.int64)
            if not over.size:
                break
            scores[over, slot[over]] = -2.0  # tried
            slot[over] = scores[over].argmax(axis=1)
            stuck = over[scores[over, slot[over]] < 0]  # no allowed hour left with room
            slot[stuck] = first[stuck]
            for i in stuck.tolist():
                self.used[str(names[codes[i]]), int(hours[slot[i]])] += int(parts[i])
            self.over += int(stuck.size)
            free[over] = True
            free[stuck] = False
        return slot


def _rate(op: OperatorConfig) -> float:
    """What an operator can send, parts a second: its account's cap, or its binds' together if less."""
    binds = [b.tps for b in op.binds]
    if all(tps is not None for tps in binds):
        return min(op.tps, sum(tps for tps in binds if tps is not None))
    return op.tps


def planned_times(directory: JobDir) -> np.ndarray[Any, Any]:
    """Each accepted row's planned send time (unix s, int64), in the rows file's order."""
    table = pq.read_table(directory.open_input(PLAN_FILE), columns=["send_at"])
    return np.asarray(table.column("send_at").to_numpy(), dtype=np.int64)


def control_rows(directory: JobDir) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
    """The planned rows and whether each is in the control group; None: the job has no plan."""
    if not directory.exists(PLAN_FILE):
        return None
    table = pq.read_table(directory.open_input(PLAN_FILE), columns=["row", "control"])
    return (
        np.asarray(table.column("row").to_numpy(), dtype=np.int64),
        np.asarray(table.column("control").to_numpy(zero_copy_only=False), dtype=bool),
    )


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
