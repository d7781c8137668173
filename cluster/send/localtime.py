"""A send window in each recipient's own time (``window_timezone: recipient``): a job to Turkey,
Germany and Azerbaijan sends to each in its own evening.

The job itself is never outside its window then: the runner checks each batch it is about to hand
to a bind, message by message, in the zone of the message's number (``ulak.zones``: from its
country, or its area where a country has several), and holds the messages whose window is closed
until it opens there (``cluster.send.deferred``). A message its window would open for only after
its validity (``validity_minutes`` from when it was first held) ends as ``expired``, never sent.
Started messages (their first part sent) are finished. A window across midnight and the nights
clocks change are the window arithmetic's (``cluster.jobs.options.next_opening``).

A bind may hold minutes of a job's messages at a low cap, so when the window of a zone the job has
handed messages to closes, the runner takes the job's queued messages back from the binds
(``closed_since``) and checks them again as it hands them out: those of the closed zone wait.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cluster.jobs.options import in_window, next_opening
from cluster.send.deferred import WINDOW, Deferred
from cluster.send.job import Job
from cluster.send.rows import Row
from ulak.smpp.codec import destination_of
from ulak.zones import Zones

EXPIRED = "expired"  # the reason a row held past its validity ends with (stopped_expired)


class LocalWindows:
    """One job's send window, kept in each recipient's zone (see the module docstring)."""

    def __init__(self, job: Job, deferred: Deferred) -> None:
        self.job = job
        self.deferred = deferred
        options = job.options
        self.window = options.send_window if options.local_windows() else None
        config = job.settings.jobs
        self.zones = Zones(main=config.recipient_zones, unknown=config.unknown_zone)
        self._open: dict[ZoneInfo, bool] = {}  # zones handed to, and whether open at the last look

    def admit(self, name: str, messages: list[Row], refused: list[tuple[str, int, int, str]]) -> list[Row]:
        """The messages of *messages* whose recipient's window is open now; the others are held
        until it opens, or put in *refused* as expired (see the module docstring)."""
        window = self.window
        if window is None or not messages:
            return messages
        now = self.job.clock.time()
        at_now = datetime.fromtimestamp(now, UTC)
        openings: dict[ZoneInfo, float] = {}  # one reckoning a zone a batch
        admitted: list[Row] = []
        for message in messages:
            first = message[0]
            if first.part != 1:
                admitted.append(message)  # started: its parts belong together
                continue
            zone = self.zones.of(destination_of(first.pdu))
            at = openings.get(zone)
            if at is None:
                at = openings[zone] = next_opening(window, zone, at_now).timestamp()
            if at <= now:
                admitted.append(message)
                self._open[zone] = True
                continue
            if not self.deferred.hold(first.row, at, now=now, why=WINDOW):
                refused.append((name, first.row, first.parts, EXPIRED))
        return admitted

    def closed_since(self) -> bool:
        """Whether the window of a zone this job handed messages to has closed since the last look
        (the runner then takes its queued messages back from the binds)."""
        if self.window is None or not self._open:
            return False
        now = datetime.fromtimestamp(self.job.clock.time(), UTC)
        closed = False
        for zone, was_open in self._open.items():
            is_open = in_window(self.window, zone, now)
            closed = closed or (was_open and not is_open)
            self._open[zone] = is_open
        return closed
