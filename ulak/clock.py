"""The time a job's runner goes by: the system's, or for tests and rehearsals of a schedule the
system's plus an offset kept in Redis (``jobs.clock: offset``, ``keys.CLOCK_OFFSET``).

Everything a runner decides by the wall clock goes through one ``Clock``: its send window and
``send_at``, an A/B test's send times and decision, frequency caps (what a recipient got in the
last day), the time a stopped row is stamped with. An end-to-end test can then move a whole stack a
day ahead, or to the night a DST change happens, without waiting for it; the binds, the SMSC and
Redis's own expiries keep real time. Never set ``jobs.clock: offset`` on a cluster that sends to
real people: whoever can write the key decides what time it is.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from ulak import keys


class Clock(Protocol):
    def time(self) -> float:
        """Now, as unix seconds."""
        ...


class SystemClock:
    """The system's time."""

    def time(self) -> float:
        return time.time()


class OffsetClock:
    """The system's time plus the seconds in ``keys.CLOCK_OFFSET`` (absent: none), read at most
    every *refresh* seconds."""

    def __init__(self, client: Any, *, refresh: float = 0.1) -> None:
        self.client = client
        self.refresh = refresh
        self._offset = 0.0
        self._read_at = -float("inf")

    def time(self) -> float:
        mono = time.monotonic()
        if mono - self._read_at >= self.refresh:
            raw = self.client.get(keys.CLOCK_OFFSET)
            self._offset = float(raw) if raw else 0.0
            self._read_at = mono
        return time.time() + self._offset


def clock(kind: str, client: Any) -> Clock:
    """The clock ``jobs.clock`` names."""
    return OffsetClock(client) if kind == "offset" else SystemClock()


def set_offset(client: Any, seconds: float) -> None:
    """Move every offset clock to the system's time plus *seconds* (tests, rehearsals)."""
    client.set(keys.CLOCK_OFFSET, repr(float(seconds)))
