"""A job's history in its view: how long it sent in all, across pauses."""

from __future__ import annotations

import time

from cluster.jobs.views import _history


def test_sending_time_adds_up_every_stretch_of_sending() -> None:
    entries = [("queued", 100.0), ("sending", 110.0), ("paused", 130.0), ("sending", 200.0), ("done", 205.0)]
    found = _history(entries)
    assert found["sending_seconds"] == 25.0
    assert [e["state"] for e in found["history"]] == ["queued", "sending", "paused", "sending", "done"]


def test_a_job_still_sending_counts_up_to_now() -> None:
    start = time.time() - 10
    assert 10.0 <= _history([("sending", start)])["sending_seconds"] < 60.0


def test_a_record_without_history_has_no_sending_time() -> None:
    assert _history([]) == {"history": [], "sending_seconds": None}
