"""A send window in each recipient's time, as a runner applies it (``cluster.send.localtime``): what
is held and until when, what expires, and when the binds' queues must be taken back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from cluster.jobs.options import JobOptions
from cluster.send.deferred import WINDOW, Deferred
from cluster.send.job import Job
from cluster.send.localtime import EXPIRED, LocalWindows
from ulak.dispatch.part import OutboundPart, outbound_part
from ulak.settings import Settings
from ulak.smpp.codec import preencode
from ulak.smpp.pdu import SubmitSm


class Clock:
    def __init__(self, at: datetime) -> None:
        self.now = at.timestamp()

    def time(self) -> float:
        return self.now


def _message(row: int, number: str, part: int = 1) -> list[OutboundPart]:
    pdu = preencode(SubmitSm(source_addr="ULAK", destination_addr=number, short_message=b"x"))
    return [outbound_part("j", row, part, 2 if part > 1 else 1, pdu)]


def _windows(clock: Clock, **options: Any) -> tuple[LocalWindows, Deferred]:
    opts = JobOptions(template="x", send_window="09:00-20:00", window_timezone="recipient", **options)
    job = Job("j", Settings(), "", None, None, opts, None, structlog.get_logger(), clock=clock)  # type: ignore[arg-type]
    deferred = Deferred(validity_minutes=opts.validity_minutes)
    return LocalWindows(job, deferred), deferred


def test_each_recipient_waits_for_their_own_window_and_a_closing_takes_the_binds_back() -> None:
    clock = Clock(datetime(2026, 12, 5, 16, 30, tzinfo=UTC))  # Istanbul 19:30, Berlin 17:30, Baku 20:30
    windows, deferred = _windows(clock)
    refused: list[tuple[str, int, int, str]] = []
    batch = [_message(1, "905321234567"), _message(2, "4915112345678"), _message(3, "994501234567")]
    batch.append(_message(4, "994501234568", part=2))  # started: finished whatever the hour
    admitted = windows.admit("op", batch, refused)
    assert [m[0].row for m in admitted] == [1, 2, 4] and not refused
    assert len(deferred) == 1 and deferred.reasons() == [WINDOW]
    assert deferred.next_due() == datetime(2026, 12, 6, 5, tzinfo=UTC).timestamp()  # 09:00 in Baku
    assert not windows.closed_since()
    clock.now = datetime(2026, 12, 5, 17, 1, tzinfo=UTC).timestamp()  # 20:01 in Istanbul
    assert windows.closed_since() and not windows.closed_since()  # once, when it closes
    clock.now = datetime(2026, 12, 6, 5, tzinfo=UTC).timestamp()
    assert deferred.due(clock.now) == {3}


def test_a_message_its_window_reaches_only_past_its_validity_expires() -> None:
    clock = Clock(datetime(2026, 12, 5, 16, 30, tzinfo=UTC))
    windows, deferred = _windows(clock, validity_minutes=60)
    refused: list[tuple[str, int, int, str]] = []
    assert windows.admit("op", [_message(7, "994501234567")], refused) == []
    assert refused == [("op", 7, 1, EXPIRED)] and not deferred
