"""When a job may send: its daily window in its zone (across midnight, through a DST change, up to
24:00) and its send_at. Exact instants, no clock of the machine's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.jobs.options import JobOptions, in_window, next_opening
from ulak.zones import Zones

BERLIN = ZoneInfo("Europe/Berlin")


def job(**options: object) -> JobOptions:
    return JobOptions.model_validate({"template": "Merhaba {ad}", **options})


def at(zone: str, *fields: int) -> datetime:
    return datetime(*fields, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


@pytest.mark.parametrize(
    ("local", "open_"),
    [
        ((2026, 12, 5, 8, 59), False),
        ((2026, 12, 5, 9, 0), True),  # the start is inside
        ((2026, 12, 5, 19, 59), True),
        ((2026, 12, 5, 20, 0), False),  # the end is not
    ],
)
def test_a_window_is_read_in_its_zone(local: tuple[int, ...], open_: bool) -> None:
    """09:00-20:00 in Istanbul (UTC+3): 06:00-17:00 UTC, whatever zone the instant is given in."""
    options = job(send_window="09:00-20:00")
    instant = at("Europe/Istanbul", *local)
    assert options.window_open(instant) is open_
    assert options.window_open(instant.astimezone(UTC)) is open_


@pytest.mark.parametrize(
    ("hour", "minute", "open_"),
    [
        (21, 59, False),
        (22, 0, True),
        (23, 59, True),
        (0, 0, True),
        (1, 59, True),
        (2, 0, False),
        (12, 0, False),
    ],
)
def test_a_window_across_midnight_is_open_on_both_sides_of_it(hour: int, minute: int, open_: bool) -> None:
    options = job(send_window="22:00-02:00")
    assert options.window_open(at("Europe/Istanbul", 2026, 12, 5, hour, minute)) is open_


def test_a_window_to_24_00_runs_to_midnight() -> None:
    options = job(send_window="18:00-24:00")
    assert options.window_open(at("Europe/Istanbul", 2026, 12, 5, 23, 59))
    assert not options.window_open(at("Europe/Istanbul", 2026, 12, 6, 0, 0))


def test_a_window_follows_its_zone_through_a_dst_change() -> None:
    """Berlin's 09:00-10:00 is 08:00-09:00 UTC in winter and 07:00-08:00 UTC in summer: the window
    moves with the wall clock (2026-03-29 02:00 CET became 03:00 CEST)."""
    options = job(send_window="09:00-10:00", window_timezone="Europe/Berlin")
    winter, summer = datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC)
    assert options.window_open(winter.replace(hour=8, minute=30))
    assert not options.window_open(winter.replace(hour=7, minute=30))
    assert options.window_open(summer.replace(hour=7, minute=30))
    assert not options.window_open(summer.replace(hour=8, minute=30))


def test_the_hour_a_dst_change_skips_is_never_mistaken_for_another() -> None:
    """02:00-03:00 does not exist in Berlin on 2026-03-29: a window of 02:00-03:00 is closed through
    the jump (01:59 CET is followed by 03:00 CEST), and open the next night."""
    options = job(send_window="02:00-03:00", window_timezone="Europe/Berlin")
    jump = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, the instant after 01:59:59 CET
    assert not options.window_open(jump - timedelta(seconds=1))
    assert not options.window_open(jump)
    assert options.window_open(datetime(2026, 3, 30, 0, 30, tzinfo=UTC))  # 02:30 CEST


def test_a_job_may_send_from_its_send_at_and_inside_its_window() -> None:
    options = job(send_at="2026-12-10T19:00:00+03:00", send_window="09:00-20:00")
    assert not options.may_send(at("Europe/Istanbul", 2026, 12, 10, 18, 59))  # before send_at
    assert options.may_send(at("Europe/Istanbul", 2026, 12, 10, 19, 0))
    assert not options.may_send(at("Europe/Istanbul", 2026, 12, 10, 20, 0))  # the window closed
    assert options.may_send(at("Europe/Istanbul", 2026, 12, 11, 9, 0))  # and opens again


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_a_window_and_its_complement_cover_every_instant_once(instant: datetime) -> None:
    """22:00-02:00 and 02:00-22:00 split every day exactly: each instant is in one of them."""
    night = job(send_window="22:00-02:00", window_timezone="Europe/Berlin")
    day = job(send_window="02:00-22:00", window_timezone="Europe/Berlin")
    assert night.window_open(instant) != day.window_open(instant)


WINDOWS = ["09:00-20:00", "22:00-02:00", "00:00-24:00", "02:30-05:00", "23:59-00:01", "08:15-08:16"]
ZONES = ["Europe/Istanbul", "Europe/Berlin", "America/New_York", "Asia/Baku", "Australia/Lord_Howe"]


@given(
    window=st.sampled_from(WINDOWS),
    zone=st.sampled_from(ZONES),
    instant=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
)
def test_the_next_opening_is_the_first_open_minute_from_now(
    window: str, zone: str, instant: datetime
) -> None:
    """Across midnight, through DST changes (Lord Howe moves by half an hour), to 24:00: the
    opening is open, not before now, and no minute between now and it is open."""
    tz = ZoneInfo(zone)
    opening = next_opening(window, tz, instant)
    assert opening >= instant and in_window(window, tz, opening)
    assert opening - instant < timedelta(days=2)
    minute = instant.replace(second=0, microsecond=0)
    if opening > instant:
        assert not in_window(window, tz, instant)
        while minute + timedelta(minutes=1) < opening:
            minute += timedelta(minutes=1)
            assert not in_window(window, tz, minute), (minute, opening)


def test_openings_in_three_countries_and_on_the_nights_clocks_change() -> None:
    evening = datetime(2026, 12, 5, 16, 30, tzinfo=UTC)  # Istanbul 19:30, Berlin 17:30, Baku 20:30
    zones = Zones()
    assert next_opening("09:00-20:00", zones.of("+905321234567"), evening) == evening
    assert next_opening("09:00-20:00", zones.of("+4915112345678"), evening) == evening
    baku = next_opening("09:00-20:00", zones.of("+994501234567"), evening)
    assert baku == datetime(2026, 12, 6, 5, 0, tzinfo=UTC)  # 09:00 in Baku
    # Berlin goes from 02:00 to 03:00 on 2026-03-29: a window from 02:30 opens as the clocks jump,
    # at 03:00, when the wall time is past 02:30 (found by the test above, in New York's 2027 jump).
    spring = next_opening("02:30-05:00", BERLIN, datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert spring.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 29, 3, 0)
    assert spring == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    new_york = ZoneInfo("America/New_York")
    jump = next_opening("02:30-05:00", new_york, datetime(2027, 3, 14, 6, 59, tzinfo=UTC))
    assert jump == datetime(2027, 3, 14, 7, 0, tzinfo=UTC)  # 01:59 EST, then 03:00 EDT
    # Lord Howe moves by half an hour (02:00 -> 02:30) on 2026-10-04: 02:15 opens at the jump.
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    half = next_opening("02:15-05:00", lord_howe, datetime(2026, 10, 3, 12, tzinfo=UTC))
    assert half.replace(tzinfo=None) == datetime(2026, 10, 4, 2, 30)
    # ... and from 03:00 back to 02:00 on 2026-10-25: it opens at the first 02:30.
    autumn = next_opening("02:30-05:00", BERLIN, datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert autumn.timestamp() == datetime(2026, 10, 25, 0, 30, tzinfo=UTC).timestamp()  # an hour that
    # comes twice is never == to another zone's instant (PEP 495): compare the instants
    # A window across midnight, closed at noon, opens that evening.
    assert next_opening("22:00-02:00", BERLIN, datetime(2026, 12, 5, 11, tzinfo=UTC)) == datetime(
        2026, 12, 5, 21, tzinfo=UTC
    )


def test_a_recipients_zone_comes_from_their_number() -> None:
    zones = Zones(main={"US": "America/Chicago"}, unknown="Europe/Istanbul")
    assert str(zones.of("905321234567")) == "Europe/Istanbul"
    assert str(zones.of("+4915112345678")) == "Europe/Berlin"
    assert str(zones.of("+994501234567")) == "Asia/Baku"
    assert str(zones.of("+12125551234")) == "America/New_York"  # geographic: its area's
    assert str(zones.of("+34612345678")) == "Europe/Madrid"  # a Spanish mobile: not the Canaries
    assert str(zones.of("+79161234567")) == "Europe/Moscow"
    assert str(zones.of("+999")) == "Europe/Istanbul"  # nobody's: the configured unknown_zone


def test_recipient_windows_leave_the_job_always_open() -> None:
    options = job(send_window="09:00-20:00", window_timezone="recipient")
    assert options.local_windows() and options.window_open(datetime(2026, 12, 5, 23, tzinfo=UTC))
    assert not job(send_window="09:00-20:00").local_windows()
    with pytest.raises(ValueError, match="'recipient'"):
        job(send_window="09:00-20:00", window_timezone="Mars/Olympus")
