"""Send-time optimisation's arithmetic (``ulak.sendtime``, ``cluster.send.sendtimes``): the
horizon's hours in each zone, the choice among them, the control group, and the lift's interval."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cluster.jobs.options import JobOptions, Variant
from cluster.send.job import Job
from cluster.send.sendtimes import Planner
from ulak import sendtime
from ulak.settings import BindConfig, OperatorConfig, Settings


def _planner(start: datetime, *, tps: float | None = None, **options: Any) -> Planner:
    opts = JobOptions(template="x", send_time="optimized", split_seed="s", **options)
    bind = BindConfig(name="t1", host="127.0.0.1", port=2775, system_id="u", password_env="P")
    operators = (OperatorConfig(name="tcell", prefixes=("90",), tps=tps, binds=(bind,)),) if tps else ()
    settings = Settings(operators=operators)
    job = Job("j", settings, "", None, None, opts, None, structlog.get_logger())  # type: ignore[arg-type]
    return Planner(job, start=start.timestamp())


def _on(n: int) -> dict[str, Any]:
    return {"operators": np.full(n, "tcell", dtype=object), "parts": np.ones(n, dtype=np.int64)}


def _local(planner: Planner, zone: str) -> list[tuple[str, bool]]:
    times, hours, allowed = planner._zone_slots(ZoneInfo(zone))
    shown = [datetime.fromtimestamp(t, ZoneInfo(zone)).strftime("%H:%M") for t in times.tolist()]
    assert [int(s[:2]) for s in shown] == hours.tolist()
    return list(zip(shown, allowed.tolist(), strict=True))


def test_the_horizon_is_the_start_then_each_local_hour() -> None:
    start = datetime(2027, 5, 10, 5, 20, tzinfo=UTC)  # 08:20 in Istanbul
    slots = _local(_planner(start, send_time_horizon_hours=4), "Europe/Istanbul")
    assert slots == [("08:20", True), ("09:00", True), ("10:00", True), ("11:00", True), ("12:00", True)]
    # India's hours begin at :30 UTC, Nepal's at :15
    assert [s for s, _ in _local(_planner(start, send_time_horizon_hours=2), "Asia/Kolkata")] == [
        "10:50",
        "11:00",
        "12:00",
    ]
    assert [s for s, _ in _local(_planner(start, send_time_horizon_hours=2), "Asia/Kathmandu")] == [
        "11:05",
        "12:00",
        "13:00",
    ]


def test_the_window_bounds_the_candidates_in_the_recipients_time_or_the_jobs() -> None:
    start = datetime(2027, 5, 10, 5, 20, tzinfo=UTC)  # 08:20 Istanbul, 07:20 Berlin
    own = _planner(start, send_time_horizon_hours=3, send_window="09:00-10:00", window_timezone="recipient")
    assert _local(own, "Europe/Berlin") == [
        ("07:20", False),
        ("08:00", False),
        ("09:00", True),
        ("10:00", False),
    ]
    theirs = _planner(start, send_time_horizon_hours=3, send_window="09:00-10:00")  # Istanbul's
    assert _local(theirs, "Europe/Berlin") == [
        ("07:20", False),
        ("08:00", True),
        ("09:00", False),
        ("10:00", False),
    ]


def test_a_night_the_clocks_go_forward_has_one_hour_less() -> None:
    start = datetime(2027, 3, 28, 0, 0, tzinfo=UTC)  # 01:00 in Berlin; at 02:00 the clocks go to 03:00
    hours = [s for s, _ in _local(_planner(start, send_time_horizon_hours=3), "Europe/Berlin")]
    assert hours == ["01:00", "03:00", "04:00"]


def test_each_recipient_gets_their_best_allowed_hour_and_the_control_a_random_one() -> None:
    start = datetime(2027, 5, 10, 5, 20, tzinfo=UTC)  # 08:20 in Istanbul
    planner = _planner(start, send_window="09:00-21:00", send_time_control=0.2)
    n = 5000
    numbers = [f"90532{i:07d}" for i in range(n)]
    history = np.zeros((n, 24), dtype=np.uint8)
    best = np.asarray([(10, 14, 19, 23)[i % 4] for i in range(n)])  # 23:00 is outside the window
    history[np.arange(n), best] = 9
    score = sendtime.scores(history, np.full((n, 24), 1 / 24), weight=4.0)
    at, control = planner._choose(numbers, score, **_on(n))
    local = np.asarray([datetime.fromtimestamp(t, ZoneInfo("Europe/Istanbul")).hour for t in at.tolist()])
    chosen = ~control
    inside = best != 23
    assert (local[chosen & inside] == best[chosen & inside]).all()
    assert (local[chosen & ~inside] == 9).all()  # a best hour outside: the earliest of the equal rest
    assert 0.18 < control.mean() < 0.22
    assert set(local[control].tolist()) == set(range(9, 21))  # random over every allowed hour
    planner.capacity.used.clear()
    again, control_again = planner._choose(numbers, score, **_on(n))
    assert (again == at).all() and (control_again == control).all()  # seeded: the same plan


def test_an_hour_holds_what_the_operator_can_send_in_it_and_the_rest_go_at_their_next_best() -> None:
    start = datetime(2027, 5, 10, 5, 20, tzinfo=UTC)  # 08:20 in Istanbul
    planner = _planner(start, tps=1.0, send_window="09:00-21:00", send_time_control=0.1)  # 3,240 an hour
    n = 8000
    numbers = [f"90532{i:07d}" for i in range(n)]
    history = np.zeros((n, 24), dtype=np.uint8)
    history[:, 19] = 9  # everyone's best: 19:00, then 18:00 for those who also engage then
    history[: n // 2, 18] = 3
    score = sendtime.scores(history, np.full((n, 24), 1 / 24), weight=4.0)
    parts = np.where(np.arange(n) % 5 == 0, 2, 1)  # a fifth of the messages are two parts
    at, control = planner._choose(numbers, score, operators=np.full(n, "tcell", dtype=object), parts=parts)
    istanbul = ZoneInfo("Europe/Istanbul")
    local = np.asarray([datetime.fromtimestamp(t, istanbul).hour for t in at.tolist()])
    per_hour = {h: int(parts[local == h].sum()) for h in set(local.tolist())}
    assert all(9 <= h < 21 for h in per_hour), per_hour
    assert all(used <= 3240 for used in per_hour.values()), per_hour
    assert per_hour[19] > 3000 and per_hour[18] > 3000  # filled, the best first
    chosen = ~control
    spilled = chosen & (local != 19)
    # Who moved to 18:00 are those who engage then too; the others went to the earliest with room.
    assert (np.flatnonzero(chosen & (local == 18)) < n // 2).all()
    assert spilled.any() and planner.capacity.over == 0


@given(
    st.integers(0, 400),
    st.integers(1, 400),
    st.integers(0, 400),
    st.integers(1, 400),
)
def test_the_lift_interval_holds_the_difference_and_stays_in_bounds(
    s1: int, n1: int, s0: int, n0: int
) -> None:
    s1, s0 = min(s1, n1), min(s0, n0)
    lift = sendtime.lift((s1, s0), (n1, n0))
    assert lift is not None
    assert -1 <= lift["low"] <= lift["difference"] <= lift["high"] <= 1  # type: ignore[operator]


def test_the_lift_matches_newcombes_worked_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17, table II, example (a): 56/70 against 48/80,
    # hybrid score interval 0.0524 to 0.3339.
    lift = sendtime.lift((56, 48), (70, 80))
    assert lift is not None
    assert lift["difference"] == pytest.approx(0.2, abs=1e-6)
    assert lift["low"] == pytest.approx(0.0524, abs=1e-4)
    assert lift["high"] == pytest.approx(0.3339, abs=1e-4)
    assert sendtime.lift((1, 0), (0, 5)) is None


def test_optimised_times_do_not_mix_with_tests_that_time_themselves() -> None:
    with pytest.raises(ValidationError, match="test_share"):
        JobOptions(
            template="x",
            variants=(Variant(name="a"), Variant(name="b")),
            test_share=0.2,
            send_time="optimized",
        )
    with pytest.raises(ValidationError, match="variants' send_at"):
        JobOptions(
            template="x",
            variants=(Variant(name="a", send_at=datetime(2027, 1, 1, tzinfo=UTC)), Variant(name="b")),
            send_time="optimized",
        )
    assert JobOptions(template="x", send_time="optimized").send_time_control == 0.1
