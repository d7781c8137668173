"""When a job may send, over SMPP with an injected clock (``jobs.clock: offset``): a send window in
each recipient's own time (numbers in Turkey, Germany and Azerbaijan), a message its window would
reach only past its validity (never sent: ``expired``), a job-level ``send_at``, a job-level
window across midnight, and one that opens the night the clocks go forward. Judged on what the
simulator recorded and when."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import SimProcess, wait_for
from tests.integration.stack import (
    Stack,
    assert_adds_up,
    campaign_rows,
    post_job,
    running_stack,
    wait_state,
)
from ulak.clock import set_offset

TEXT = "Merhaba {ad}, {kampanya} bugün başladı"


def _got(stack: Stack, campaign: str) -> list[dict[str, Any]]:
    return [r for r in stack.sim.records() if f" {campaign} bugün" in r["text"]]


def _job(http: httpx.Client, path: Path, **options: Any) -> str:
    answer = post_job(http, path, template=TEXT, **options)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _view(http: httpx.Client, job: str) -> dict[str, Any]:
    view: dict[str, Any] = http.get(f"/v1/jobs/{job}").json()
    return view


def test_windows_in_each_recipients_time_send_at_and_midnight(ray_session: Any, tmp_path: Path) -> None:
    sim = SimProcess(tmp_path, "--account", "test:secret", "--seed", "9")
    # Tomorrow 16:30 UTC: Istanbul 19:30, Berlin 17:30, Baku 20:30 (in December: no DST anywhere).
    base = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)
    base += timedelta(hours=16, minutes=30)
    with (
        running_stack(
            tmp_path,
            sim,
            tps=200,
            name="localtime",
            jobs={"clock": "offset"},
            tcell_prefixes=("90532", "90533", "4915", "99450"),
        ) as stack,
        stack.client() as http,
    ):
        set_offset(stack.redis, base.timestamp() - time.time())
        turkey = [f"90532{i:07d}" for i in range(60)]
        germany = [f"49151{i:08d}" for i in range(60)]
        azerbaijan = [f"99450{i:07d}" for i in range(60)]
        local = _job(
            http,
            campaign_rows(tmp_path / "l.csv", turkey + germany + azerbaijan, "Yılbaşı"),
            send_window="09:00-20:00",
            window_timezone="recipient",
        )
        # send_at two hours ahead on the injected clock: it waits, whatever the machine's time.
        later = _job(
            http,
            campaign_rows(tmp_path / "s.csv", turkey[:20], "Sonra"),
            send_at=(base + timedelta(hours=2)).isoformat(),
        )
        # Baku's window opens in 12.5 h, past this job's validity of an hour: never sent.
        short = _job(
            http,
            campaign_rows(tmp_path / "e.csv", azerbaijan[:10], "Kısa"),
            send_window="09:00-20:00",
            window_timezone="recipient",
            validity_minutes=60,
        )

        def waiting() -> dict[str, Any] | None:
            view = _view(http, local)
            held = "local send window" in (view["waiting"] or "")
            return view if held and view["counts"]["acked"] == 120 else None

        view = wait_for(waiting, timeout=120, what="Turkey and Germany sent, Azerbaijan held")
        assert view["state"] == "sending" and "60 messages wait" in view["waiting"], view
        assert_adds_up(view)
        assert {r["dst"] for r in _got(stack, "Yılbaşı")} == set(turkey + germany)

        view = wait_state(http, short, "done", timeout=60)
        assert_adds_up(view)
        assert view["counts"]["expired"] == 10 and view["counts"]["submitted"] == 0, view["counts"]
        report = list(csv.DictReader(io.StringIO(http.get(f"/v1/jobs/{short}/report").text)))
        assert {r["status"] for r in report} == {"expired"} and "validity" in report[0]["error"]
        # Ingested in its own time (three jobs were uploaded at once): then it waits for its hour.
        assert wait_state(http, later, "scheduled", timeout=60)["state"] == "scheduled"
        assert not _got(stack, "Sonra")

        # 13 hours on: 09:30 in Baku (08:30 in Istanbul). The held messages go, the send_at job too.
        moved_at = time.time()
        set_offset(stack.redis, (base + timedelta(hours=13)).timestamp() - moved_at)
        assert_adds_up(wait_state(http, local, "done", timeout=120))
        assert sorted(r["dst"] for r in _got(stack, "Yılbaşı")) == sorted(turkey + germany + azerbaijan)
        assert all(r["t"] >= moved_at for r in _got(stack, "Yılbaşı") if r["dst"] in azerbaijan)
        assert all(r["t"] < moved_at for r in _got(stack, "Yılbaşı") if r["dst"] not in azerbaijan)
        assert_adds_up(wait_state(http, later, "done", timeout=120))
        assert len(_got(stack, "Sonra")) == 20

        # A job-level window across midnight (22:00-02:00 Istanbul) waits through the day and
        # sends once it opens.
        night = _job(http, campaign_rows(tmp_path / "n.csv", turkey[:15], "Gece"), send_window="22:00-02:00")
        wait_for(lambda: _view(http, night)["state"] == "scheduled", timeout=60, what="the night job to wait")
        opened_at = time.time()
        set_offset(stack.redis, (base + timedelta(hours=27)).timestamp() - opened_at)  # 22:30 there
        assert_adds_up(wait_state(http, night, "done", timeout=120))
        assert len(_got(stack, "Gece")) == 15 and all(r["t"] >= opened_at for r in _got(stack, "Gece"))

        # The night Berlin's clocks go from 02:00 to 03:00 (2027-03-28): a 03:00-05:00 window there
        # opens at 01:00 UTC, half an hour of real time after 01:59:30 CET.
        set_offset(stack.redis, datetime(2027, 3, 28, 0, 59, 30, tzinfo=UTC).timestamp() - time.time())
        dst = campaign_rows(tmp_path / "d.csv", germany[:10], "Yaz saati")
        spring = _job(http, dst, send_window="03:00-05:00", window_timezone="Europe/Berlin")
        wait_for(lambda: _view(http, spring)["state"] == "scheduled", timeout=60, what="the DST job to wait")
        opened_at = time.time()
        set_offset(stack.redis, datetime(2027, 3, 28, 1, 0, 30, tzinfo=UTC).timestamp() - opened_at)
        assert_adds_up(wait_state(http, spring, "done", timeout=120))
        assert len(_got(stack, "Yaz saati")) == 10
        assert all(r["t"] >= opened_at for r in _got(stack, "Yaz saati"))
